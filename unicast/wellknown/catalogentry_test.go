package wellknown

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"
)

func testEntry() *CatalogEntry {
	return &CatalogEntry{Path: "/a/b.bin", Size: 1000, ETag: `"e1"`,
		ContentDigest: "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:",
		Pushed:        time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC), Session: "0a0b", PushID: 7, StreamID: 31}
}

func TestCatalogEntrySignature(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := SignCatalogEntry(priv, testEntry())
	if err != nil {
		t.Fatal(err)
	}
	key, err := ParseCatalogKey(EncodeCatalogKey(pub))
	if err != nil {
		t.Fatal(err)
	}
	e, err := VerifyCatalogEntry(key, doc, "0a0b", 7)
	if err != nil {
		t.Fatal(err)
	}
	if *e != *testEntry() {
		t.Fatalf("entry %+v, want %+v", e, testEntry())
	}
	// Another push than the one asked for: refused, though signed.
	if _, err := VerifyCatalogEntry(key, doc, "0a0b", 8); !errors.Is(err, ErrMalformed) {
		t.Errorf("entry of push 7 for push 8: %v, want ErrMalformed", err)
	}
	// One byte of the entry changed: the signature fails.
	bad := bytes.Replace(doc, []byte(`"size":1000`), []byte(`"size":1001`), 1)
	if bytes.Equal(bad, doc) {
		t.Fatal("test did not change the document")
	}
	if _, err := VerifyCatalogEntry(key, bad, "0a0b", 7); !errors.Is(err, ErrEntrySignature) {
		t.Errorf("altered entry: %v, want ErrEntrySignature", err)
	}
	// Another key: the signature fails.
	other, _, _ := ed25519.GenerateKey(nil)
	if _, err := VerifyCatalogEntry(other, doc, "0a0b", 7); !errors.Is(err, ErrEntrySignature) {
		t.Errorf("other key: %v, want ErrEntrySignature", err)
	}
	// A signed entry that Parse would refuse is refused.
	e2 := testEntry()
	e2.Path = "no-slash"
	doc2, _ := SignCatalogEntry(priv, e2)
	if _, err := VerifyCatalogEntry(key, doc2, "0a0b", 7); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad path: %v, want ErrMalformed", err)
	}
}

func TestCatalogEntryPath(t *testing.T) {
	p := CatalogEntryPath("0a0b", 42)
	if p != "/.well-known/h3m/catalog/0a0b/42" {
		t.Fatalf("path %q", p)
	}
	if s, id, ok := ParseCatalogEntryPath(p); !ok || s != "0a0b" || id != 42 {
		t.Fatalf("parse: %q %d %v", s, id, ok)
	}
	for _, bad := range []string{"/.well-known/h3m/catalog/0a0b", "/.well-known/h3m/catalog/0A0B/1", "/.well-known/h3m/catalog/0a0b/01",
		"/.well-known/h3m/catalog/0a0b/1/x", "/.well-known/h3m/catalog//1", "/.well-known/h3m/catalog/xyz/1", "/.well-known/h3m/catalog/0a0b/-1"} {
		if _, _, ok := ParseCatalogEntryPath(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCatalogStreamEntryPath(t *testing.T) {
	ref := EntryRef{Session: "0a0b", StreamID: 207, ByStream: true}
	p := ref.Path()
	if p != "/.well-known/h3m/catalog/0a0b/stream/207" {
		t.Fatalf("path %q", p)
	}
	if got, ok := ParseCatalogEntryRef(p); !ok || got != ref {
		t.Fatalf("parse: %+v %v", got, ok)
	}
	if _, _, ok := ParseCatalogEntryPath(p); ok {
		t.Fatalf("a stream's path parsed as a push ID's")
	}
	if got, ok := ParseCatalogEntryRef(CatalogEntryPath("0a0b", 3)); !ok || got != (EntryRef{Session: "0a0b", PushID: 3}) {
		t.Fatalf("push path: %+v %v", got, ok)
	}
	for _, bad := range []string{"/.well-known/h3m/catalog/0a0b/stream/0", "/.well-known/h3m/catalog/0a0b/stream/07",
		"/.well-known/h3m/catalog/0a0b/stream/", "/.well-known/h3m/catalog/0a0b/stream", "/.well-known/h3m/catalog/0a0b/streams/7",
		"/.well-known/h3m/catalog/0a0b/stream/7/x", "/.well-known/h3m/catalog/0a0b/Stream/7"} {
		if r, ok := ParseCatalogEntryRef(bad); ok {
			t.Errorf("%q accepted: %+v", bad, r)
		}
	}
}

// TestVerifyCatalogEntryByStream: an entry asked by stream ID must be of
// that stream and session, whatever its push ID.
func TestVerifyCatalogEntryByStream(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	e := testEntry()
	e.StreamID = 31
	doc, err := SignCatalogEntry(priv, e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyCatalogEntryRef(pub, doc, EntryRef{Session: "0a0b", StreamID: 31, ByStream: true})
	if err != nil || got.PushID != 7 || got.StreamID != 31 {
		t.Fatalf("verify: %+v, %v", got, err)
	}
	for _, ref := range []EntryRef{{Session: "0a0b", StreamID: 35, ByStream: true}, {Session: "0a0c", StreamID: 31, ByStream: true}} {
		if _, err := VerifyCatalogEntryRef(pub, doc, ref); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: %v", ref, err)
		}
	}
	e.StreamID = 0
	doc, _ = SignCatalogEntry(priv, e)
	if _, err := VerifyCatalogEntryRef(pub, doc, EntryRef{Session: "0a0b", ByStream: true}); !errors.Is(err, ErrMalformed) {
		t.Errorf("an entry without a stream ID taken for stream 0: %v", err)
	}
}

func TestParseCatalogKey(t *testing.T) {
	for _, bad := range []string{"", "!!", EncodeCatalogKey(make([]byte, 31))} {
		if _, err := ParseCatalogKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	d := []byte(`{"version":1,"sessions":[],"resources":[],"catalog_key":"short"}`)
	if _, err := Parse(d); !errors.Is(err, ErrMalformed) {
		t.Errorf("description with a bad catalog_key: %v", err)
	}
}

// FuzzVerifyCatalogEntry feeds signed entry documents as a cache could
// serve them: nothing but a document signed by the key passes.
func FuzzVerifyCatalogEntry(f *testing.F) {
	seed := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	doc, err := SignCatalogEntry(seed, testEntry())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(doc)
	f.Add([]byte(`{"entry":{},"signature":""}`))
	f.Add([]byte(`{}`))
	pub := seed.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := VerifyCatalogEntryRef(pub, b, EntryRef{Session: "0a0b", StreamID: 31, ByStream: true}); err == nil &&
			(e.Session != "0a0b" || e.StreamID != 31 || checkPath(e.Path) != nil) {
			t.Fatalf("accepted by stream %+v", e)
		}
		e, err := VerifyCatalogEntry(pub, b, "0a0b", 7)
		if err != nil {
			return
		}
		if e.Session != "0a0b" || e.PushID != 7 || checkPath(e.Path) != nil {
			t.Fatalf("accepted %+v", e)
		}
	})
}
