package manifest

import (
	"testing"
	"time"
)

// BenchmarkSum is the per-packet hash of a 1200-byte packet.
func BenchmarkSum(b *testing.B) {
	p := make([]byte, 1200)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		Sum(p)
	}
}

// BenchmarkSign signs a full manifest (33 digests, what fits in a 1200-byte
// packet).
func BenchmarkSign(b *testing.B) {
	key := testKey(b)
	m := Manifest{StreamID: 1, FirstPN: 1, Digests: testDigests(33, 1)}
	buf := make([]byte, 0, 2048)
	scratch := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Append(buf[:0], key, scratch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/33, "ns/packet")
}

// BenchmarkVerify verifies a full manifest.
func BenchmarkVerify(b *testing.B) {
	key := testKey(b)
	m := Manifest{StreamID: 1, FirstPN: 1, Digests: testDigests(33, 1)}
	enc, _ := m.Append(nil, key, nil)
	p, _, _ := Parse(enc, DigestSHA256)
	scratch := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if scratch, err = key.Public().verify(&p, scratch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/33, "ns/packet")
}

// BenchmarkAuthenticate is the receiver's authentication work per packet in
// a steady session: hash, hold, and release when the manifest (verified
// once, its copy recognized) arrives. One op is one packet.
func BenchmarkAuthenticate(b *testing.B) {
	h := newAuthHarness(b, AuthConfig{})
	h.a.release = func(uint64, []byte, int, bool) {}
	const per, n = 33, 64
	pkts := make([][]byte, n*per)
	mans := make([]*Manifest, n)
	for i := range pkts {
		pkts[i] = append(packet(uint64(i), "real"), make([]byte, 1150)...)
	}
	for i := range mans {
		var ds []byte
		for j := range per {
			d := Sum(pkts[i*per+j])
			ds = append(ds, d[:]...)
		}
		m := Manifest{StreamID: 42, Seq: uint32(i), FirstPN: uint64(i * per), Digests: ds}
		enc, _ := m.Append(nil, h.key, nil)
		p, _, _ := Parse(enc, DigestSHA256)
		mans[i] = &p
	}
	now := time.Now()
	b.SetBytes(int64(len(pkts[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(pkts) {
			b.StopTimer()
			h = newAuthHarness(b, AuthConfig{})
			h.a.release = func(uint64, []byte, int, bool) {}
			i = 0
			b.StartTimer()
		}
		pn := uint64(i)
		d := Sum(pkts[i])
		if !h.a.Authenticate(&d, pn, now) {
			h.a.Hold(&d, pn, pkts[i], len(pkts[i]), false, now)
		}
		if i%per == per-1 {
			k := i / per
			now = time.Now()
			if err := h.a.HandleManifest(mans[k], now); err != nil {
				b.Fatal(err)
			}
			_ = h.a.HandleManifest(mans[k], now) // the copy
		}
		i++
	}
}
