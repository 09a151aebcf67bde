package unicast

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
)

// testManifests signs n manifests of per digests each, sequence numbers
// from seq0 and packet numbers from pn0, as a signer would.
func testManifests(t testing.TB, n, per int, seq0 uint32, pn0 uint64) [][]byte {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, err := manifest.NewSigningKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]byte, n)
	for i := range n {
		ds := make([]byte, per*manifest.DigestLen)
		rand.Read(ds)
		m := manifest.Manifest{StreamID: 1, Seq: seq0 + uint32(i), FirstPN: pn0 + uint64(i*per), Digests: ds}
		if out[i], err = m.Append(nil, key, nil); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestManifestsStore(t *testing.T) {
	ms := &Manifests{MaxBytes: 10 * 1200}
	ms.Open("01")
	if err := ms.Add("02", testManifests(t, 1, 1, 0, 0)[0]); err == nil {
		t.Fatal("manifest for a session not opened accepted")
	}
	if err := ms.Add("01", []byte("not a manifest")); err == nil {
		t.Fatal("garbage accepted")
	}
	ms1 := testManifests(t, 30, 33, 1<<32-5, 100) // sequence numbers wrap
	for _, m := range ms1 {
		if err := ms.Add("01", m); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := ms.Stats("01")
	// 1150-byte manifests: 10 fit in 12000 bytes.
	if st.Kept != 10 || st.Bytes > 12000 || st.Dropped != 20 || st.First != 15 || st.Last != 24 {
		t.Fatalf("after 30 manifests: %+v", st)
	}
	l := ms.log("01")
	got := l.collect(manifestQuery{kind: "seq", from: 1<<32 - 1, to: 20})
	if want := bytes.Join(ms1[20:26], nil); !bytes.Equal(got, want) {
		t.Fatalf("seq range across the wrap: %d bytes, want %d (dropped ones left out)", len(got), len(want))
	}
	// Manifest 25 lists packets 100+25*33 .. +32.
	pn := uint64(100 + 25*33)
	got = l.collect(manifestQuery{kind: "pn", pns: []ranges.Range{{Start: pn + 32, End: pn + 34}, {Start: pn + 3*33, End: pn + 3*33 + 1}, {Start: 1 << 40, End: 1<<40 + 1}}})
	if want := bytes.Join([][]byte{ms1[25], ms1[26], ms1[28]}, nil); !bytes.Equal(got, want) {
		t.Fatalf("pn ranges: %d bytes, want manifests 25, 26 and 28", len(got))
	}
	// A discontinuity restarts the log.
	other := testManifests(t, 1, 2, 7, 5)[0]
	ms.Add("01", other)
	if st, _ := ms.Stats("01"); st.Kept != 1 || st.Restarts != 1 || st.First != 7 {
		t.Fatalf("after a discontinuity: %+v", st)
	}
	// Steady state: no allocation per manifest.
	more := testManifests(t, 200, 33, 8, 1000)
	i := 0
	if a := testing.AllocsPerRun(150, func() { ms.Add("01", more[i]); i++ }); a > 0 {
		t.Fatalf("%.1f allocations per manifest", a)
	}
	// Ended sessions beyond MaxEnded are forgotten.
	ms2 := &Manifests{MaxEnded: 2}
	for _, id := range []string{"a1", "a2", "a3"} {
		ms2.Open(id)
		ms2.End(id)
	}
	if ms2.Has("a1") || !ms2.Has("a2") || !ms2.Has("a3") {
		t.Fatal("ended sessions not pruned")
	}
}

func TestParseManifestQuery(t *testing.T) {
	good := map[string]manifestQuery{
		"":                       {kind: "live"},
		"from=7":                 {kind: "from", from: 7},
		"from=4294967295":        {kind: "from", from: 1<<32 - 1},
		"seq=4294967290-5":       {kind: "seq", from: 1<<32 - 6, to: 5},
		"seq=3-3":                {kind: "seq", from: 3, to: 3},
		"pn=5-9,1-2,9-12":        {kind: "pn", pns: []ranges.Range{{Start: 1, End: 3}, {Start: 5, End: 13}}},
		"pn=4611686018427387903": {kind: "pn", pns: []ranges.Range{{Start: 1<<62 - 1, End: 1 << 62}}},
	}
	for q, want := range good {
		got, err := parseManifestQuery(q)
		if err != nil || got.kind != want.kind || got.from != want.from || got.to != want.to {
			t.Fatalf("%q: %+v %v, want %+v", q, got, err, want)
		}
		if len(got.pns) != len(want.pns) {
			t.Fatalf("%q: ranges %v, want %v", q, got.pns, want.pns)
		}
		for i := range got.pns {
			if got.pns[i] != want.pns[i] {
				t.Fatalf("%q: ranges %v, want %v", q, got.pns, want.pns)
			}
		}
	}
	for _, q := range []string{
		"from=-1", "from=4294967296", "from=1&from=2", "from=1&seq=1-2", "seq=5", "seq=1-70000", "seq=a-b",
		"pn=9-5", "pn=4611686018427387904", "pn=1-2,,", "pn=" + strings.Repeat("1,", 17) + "1", "x=1", "%zz",
	} {
		if _, err := parseManifestQuery(q); err == nil {
			t.Errorf("%q accepted", q)
		}
	}
}

// FuzzParseManifestQuery: any query is parsed or refused with an error,
// never a panic, and what is accepted is within the limits.
func FuzzParseManifestQuery(f *testing.F) {
	for _, s := range []string{"", "from=7", "seq=4294967290-5", "pn=5-9,1-2,9-12", "pn=9-5", "from=1&seq=2-3", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got, err := parseManifestQuery(q)
		if err != nil {
			return
		}
		switch got.kind {
		case "live", "from":
		case "seq":
			if got.to-got.from >= MaxSeqRange {
				t.Fatalf("%q: range %d-%d", q, got.from, got.to)
			}
		case "pn":
			if len(got.pns) == 0 || len(got.pns) > MaxPNRanges {
				t.Fatalf("%q: %d ranges", q, len(got.pns))
			}
			for _, r := range got.pns {
				if r.Start >= r.End || r.End > wire.MaxPacketNumber+1 {
					t.Fatalf("%q: range %v", q, r)
				}
			}
		default:
			t.Fatalf("%q: kind %q", q, got.kind)
		}
	})
}

// TestManifestsHTTP serves a session's manifests over HTTP/3: ranges by
// sequence and packet number, a stream from a sequence number that
// delivers manifests as they are added and ends with the session, the live
// stream, and the errors.
func TestManifestsHTTP(t *testing.T) {
	h := newHarness(t, harnessOpts{files: 1})
	hc := h.httpClient()
	const id = "0a0b"
	h.manifests.Open(id)
	ms := testManifests(t, 40, 33, 100, 0)
	for _, m := range ms[:10] {
		h.manifests.Add(id, m)
	}
	base := "https://" + h.addr + ManifestsPath + "/" + id
	fetch := func(q string) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := get(ctx, hc, http.MethodGet, base+q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := fetch("?seq=102-104")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != manifest.MediaType || !bytes.Equal(b, bytes.Join(ms[2:5], nil)) {
		t.Fatalf("seq range: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(b))
	}
	if _, b := fetch("?pn=70-70,300-301"); !bytes.Equal(b, bytes.Join([][]byte{ms[2], ms[9]}, nil)) {
		t.Fatalf("pn ranges: %d bytes", len(b))
	}
	for q, code := range map[string]int{"?seq=1-2-3": 400, "?bogus=1": 400} {
		if resp, _ := fetch(q); resp.StatusCode != code {
			t.Fatalf("%s: %s", q, resp.Status)
		}
	}
	for _, p := range []string{ManifestsPath + "/0a0c", ManifestsPath + "/xyz"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := get(ctx, hc, http.MethodGet, "https://"+h.addr+p)
		cancel()
		if err != nil || resp.StatusCode != 404 {
			t.Fatalf("%s: %v %v", p, resp.Status, err)
		}
		resp.Body.Close()
	}

	// Streams: from 105 (five kept ones, then the new ones as they come),
	// and live (from the newest kept one).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(q string) *manifest.StreamReader {
		resp, err := get(ctx, hc, http.MethodGet, base+q)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %s: %v", q, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return manifest.NewStreamReader(resp.Body, 0)
	}
	from, live := open("?from=105"), open("")
	expect := func(sr *manifest.StreamReader, want []byte) {
		t.Helper()
		done := make(chan error, 1)
		var raw []byte
		go func() {
			var err error
			_, raw, err = sr.Next()
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil || !bytes.Equal(raw, want) {
				t.Fatalf("stream: %v, manifest %x...", err, raw[:min(len(raw), 8)])
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stream: no manifest within 5 s")
		}
	}
	for _, m := range ms[5:10] {
		expect(from, m)
	}
	expect(live, ms[9])
	for _, m := range ms[10:40] {
		h.manifests.Add(id, m)
		expect(from, m)
		expect(live, m)
	}
	if st, _ := h.manifests.Stats(id); st.StreamsServing != 2 {
		t.Fatalf("%d streams served, want 2", st.StreamsServing)
	}
	h.manifests.End(id)
	for _, sr := range []*manifest.StreamReader{from, live} {
		if _, _, err := sr.Next(); err != io.EOF {
			t.Fatalf("after the session ended: %v, want EOF", err)
		}
	}
	// A stream of an ended session sends what is kept and ends.
	resp, b = fetch("?from=138")
	if resp.StatusCode != 200 || !bytes.Equal(b, bytes.Join(ms[38:], nil)) {
		t.Fatalf("stream of an ended session: %s, %d bytes", resp.Status, len(b))
	}

	// Never without TLS.
	srv := &Server{Manifests: h.manifests, Handler: http.NotFoundHandler()}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, ManifestsPath+"/"+id+"?seq=100-101", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("without TLS: %d", rec.Code)
	}
}
