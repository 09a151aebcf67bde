package manifest

import (
	"crypto/rand"
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

// BenchmarkSign signs a full sha-256 manifest (33 digests, what fits in a 1200-byte
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
// once, its copy recognized) arrives, with full manifests of each digest
// algorithm. One op is one packet.
func BenchmarkAuthenticate(b *testing.B) {
	eachDigestAlg(b, func(b *testing.B, prof *Profile, per int) { benchmarkAuthenticate(b, prof, per, false) })
}

// eachDigestAlg runs f for each digest algorithm, with full manifests of it
// (per packets each).
func eachDigestAlg(b *testing.B, f func(b *testing.B, prof *Profile, per int)) {
	for _, tc := range []struct {
		prof *Profile
		per  int
	}{
		{saltedProfile(b), 65},
		{testProfile(b), 33},
	} {
		b.Run(tc.prof.Digest.String(), func(b *testing.B) { f(b, tc.prof, tc.per) })
	}
}

// BenchmarkAuthenticateBookkeeping is BenchmarkAuthenticate without what
// does not depend on the Authenticator's structures: the packets' SHA-256
// digests are taken beforehand and the signatures count as verified ahead
// (HandleChecked, as a Prechecker's batches leave them). What is left is
// holding each packet (a copy of its payload), matching the manifest's
// digests (salting them, with DigestSalted128), releasing, and recognizing
// the manifest's copy. One op is one packet.
func BenchmarkAuthenticateBookkeeping(b *testing.B) {
	eachDigestAlg(b, func(b *testing.B, prof *Profile, per int) { benchmarkAuthenticate(b, prof, per, true) })
}

// benchmarkAuthenticate runs a steady session through an Authenticator
// (a new one each 64 manifests); bookkeeping leaves out hashing and
// verifying.
func benchmarkAuthenticate(b *testing.B, prof *Profile, per int, bookkeeping bool) {
	h := newAlgHarness(b, AuthConfig{}, prof)
	pkts, sums, mans := steadySession(h, 64, per, 1150)
	fresh := func() {
		h = newAlgHarness(b, AuthConfig{}, prof)
		h.a.release = func(uint64, []byte, int, bool) {}
	}
	fresh()
	now := time.Now()
	b.SetBytes(int64(len(pkts[0])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(pkts) {
			b.StopTimer()
			fresh()
			i = 0
			b.StartTimer()
		}
		pn := uint64(i)
		d := &sums[i]
		if !bookkeeping {
			d = new(Sum(pkts[i]))
		}
		if !h.a.Authenticate(d, pn, now) {
			h.a.Hold(d, pn, pkts[i], len(pkts[i]), false, now)
		}
		if i%per != per-1 {
			i++
			continue
		}
		k := i / per
		if bookkeeping {
			if err := h.a.HandleChecked(mans[k], now, Signature{Checked: true}); err != nil {
				b.Fatal(err)
			}
			_ = h.a.HandleChecked(mans[k], now, Signature{}) // the copy
		} else {
			now = time.Now()
			if err := h.a.HandleManifest(mans[k], now); err != nil {
				b.Fatal(err)
			}
			_ = h.a.HandleManifest(mans[k], now) // the copy
		}
		i++
	}
}

// steadySession returns the packets of n full manifests of per packets each
// (packet i numbered i, with pad bytes after its name), their SHA-256
// digests, and the manifests, signed with h's key and parsed.
func steadySession(h *authHarness, n, per, pad int) (pkts [][]byte, sums []Digest, mans []*Manifest) {
	h.t.Helper()
	pkts, sums, mans = make([][]byte, n*per), make([]Digest, n*per), make([]*Manifest, n)
	for i := range pkts {
		pkts[i] = append(packet(uint64(i), "real"), make([]byte, pad)...)
		sums[i] = Sum(pkts[i])
	}
	for i := range mans {
		m := Manifest{DigestAlg: h.alg, StreamID: 42, Seq: uint32(i), FirstPN: uint64(i * per)}
		if h.alg == DigestSalted128 {
			m.Salt = make([]byte, SaltLen)
			rand.Read(m.Salt)
		}
		for j := range per {
			m.Digests = h.alg.list(m.Digests, m.Salt, &sums[i*per+j])
		}
		enc, err := m.Append(nil, h.key, nil)
		if err != nil {
			h.t.Fatal(err)
		}
		p, _, err := Parse(enc, h.alg)
		if err != nil {
			h.t.Fatal(err)
		}
		mans[i] = &p
	}
	return pkts, sums, mans
}
