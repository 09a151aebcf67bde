package origin

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/h3m-project/h3m/unicast/wellknown"
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
	ms.Open("01", manifest.DigestSHA256)
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
		ms2.Open(id, manifest.DigestSHA256)
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
			if len(got.pns) == 0 || len(got.pns) > wellknown.MaxPNRanges {
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
