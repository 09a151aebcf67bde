package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// A Prechecker verifies each sequence number once, on any goroutine; the
// Authenticator then takes its verdict without verifying again, recognizes
// the copies, and verifies itself what was left to it.
func TestPrechecker(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{})
	now := time.Now()
	pc := h.a.Prechecker()
	m := h.manifest(1, 100, 4, "real")
	cp := h.manifest(1, 100, 4, "real") // the copy
	var wg sync.WaitGroup
	sigs := make([]Signature, 2)
	for i, x := range []*Manifest{m, cp} {
		wg.Go(func() { sigs[i], _ = pc.Check(x, now, nil) })
	}
	wg.Wait()
	if sigs[0].Checked == sigs[1].Checked {
		t.Fatalf("both copies or neither verified ahead: %+v", sigs)
	}
	// The copy verified ahead comes first (in a receiver, the first copy
	// read is the one its openers usually meet first).
	if !sigs[0].Checked {
		m, cp, sigs[0], sigs[1] = cp, m, sigs[1], sigs[0]
	}
	for i, x := range []*Manifest{m, cp} {
		err := h.a.HandleChecked(x, now, sigs[i])
		if want := map[bool]error{true: nil, false: ErrRepeat}[i == 0]; !errors.Is(err, want) {
			t.Fatalf("manifest %d: %v, want %v", i, err, want)
		}
	}
	if s := h.a.Stats(); s.Verified != 1 || s.Manifests != 1 || s.Repeats != 1 {
		t.Fatalf("one verification expected: %s", s)
	}
	for pn := uint64(100); pn < 104; pn++ {
		if auth, _ := h.arrive(pn, "real", now); !auth {
			t.Fatalf("packet %d not authenticated", pn)
		}
	}

	// A forgery claims sequence number 2 first: the real manifest 2 is then
	// left to the Authenticator, which verifies it.
	forged := h.manifest(2, 104, 4, "real")
	forged.Signature = append([]byte(nil), forged.Signature...)
	forged.Signature[0] ^= 1
	sig, _ := pc.Check(forged, now, nil)
	if !sig.Checked || !errors.Is(sig.Err, ErrBadSignature) {
		t.Fatalf("forged manifest: %+v", sig)
	}
	if err := h.a.HandleChecked(forged, now, sig); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged manifest handled: %v", err)
	}
	real2 := h.manifest(2, 104, 4, "real")
	if sig, _ := pc.Check(real2, now, nil); sig.Checked {
		t.Fatal("a claimed sequence number verified ahead again")
	}
	if err := h.a.HandleChecked(real2, now, Signature{}); err != nil {
		t.Fatalf("real manifest 2: %v", err)
	}
	if s := h.a.Stats(); s.Verified != 3 || s.Manifests != 2 || s.BadSignature != 1 {
		t.Fatalf("%s", s)
	}

	// Another manifest stream, or another key: nothing verified ahead.
	other := h.manifest(3, 108, 1, "real")
	other.StreamID++
	if sig, _ := pc.Check(other, now, nil); sig.Checked {
		t.Fatal("another manifest stream verified ahead")
	}
}

// Verifying ahead draws on the same budget as the Authenticator
// (MaxVerifyRate): forged manifests with fresh sequence numbers cannot make
// the receiver verify more.
func TestPrecheckerBudget(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{MaxVerifyRate: 64}) // a burst of 16
	now := time.Now()
	pc := h.a.Prechecker()
	checked := 0
	for seq := range uint32(100) {
		if sig, _ := pc.Check(h.manifest(seq, uint64(seq)*4, 4, "real"), now, nil); sig.Checked {
			checked++
		}
	}
	if checked != 8 {
		t.Fatalf("%d of 100 manifests verified ahead at once, want half the burst of 16", checked)
	}
	// The other half is left for expected manifests: one that lists a held
	// packet gets verified, one that does not is rate-limited.
	if err := h.a.HandleChecked(h.manifest(100, 400, 4, "real"), now, Signature{}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("a manifest of no held packet after the budget: %v", err)
	}
	h.arrive(404, "real", now)
	if err := h.a.HandleChecked(h.manifest(101, 404, 4, "real"), now, Signature{}); err != nil {
		t.Fatalf("a manifest of a held packet: %v", err)
	}
}

// A flood of forged manifests in the session uses up the session's
// verification budget, not that of the manifests from outside it
// (HandleManifest, over unicast from the origin), and forged manifests
// that list no held packet leave the budget's second half to those that
// do.
func TestVerificationBudgetPerSource(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{MaxVerifyRate: 400}) // a burst of 100
	now := time.Now()
	_, forgerPriv, _ := ed25519.GenerateKey(rand.Reader)
	forgerKey, _ := NewSigningKey(forgerPriv, nil)
	forged := func(seq uint32, first uint64) *Manifest {
		m := Manifest{StreamID: 42, Seq: seq, FirstPN: first, Digests: testDigests(4, byte(seq))}
		b, _ := m.Append(nil, forgerKey, nil)
		id := h.key.Public().ID()
		copy(b[HeaderLen+4*DigestLen+2:], id[:])
		f, _, err := Parse(b, DigestSHA256)
		if err != nil {
			t.Fatal(err)
		}
		return &f
	}
	for i := range uint32(1000) {
		h.a.HandleChecked(forged(5000+i, uint64(i)*4), now, Signature{})
	}
	st := h.a.Stats()
	if st.Verified != 50 || st.RateLimited != 950 || st.Unexpected != 1000 {
		t.Fatalf("flood: verified %d, rate-limited %d, unexpected %d; want half the burst verified", st.Verified, st.RateLimited, st.Unexpected)
	}
	// In the session: a real manifest of held packets still gets through.
	for pn := uint64(8000); pn < 8004; pn++ {
		h.arrive(pn, "real", now)
	}
	if err := h.a.HandleChecked(h.manifest(1, 8000, 4, "real"), now, Signature{}); err != nil {
		t.Fatalf("real manifest during the flood: %v", err)
	}
	// From outside the session: a budget of its own.
	for pn := uint64(8004); pn < 8008; pn++ {
		h.arrive(pn, "real", now)
	}
	for i := range uint32(50) {
		h.a.HandleManifest(forged(9000+i, 9000), now)
	}
	if err := h.a.HandleManifest(h.manifest(2, 8004, 4, "real"), now); err != nil {
		t.Fatalf("real manifest over unicast after the in-band flood: %v", err)
	}
	if len(h.released) != 8 {
		t.Fatalf("released %v", h.released)
	}
}

// VerifyClaimed verifies the claimed manifests of a read in one batch; a
// batch with a forgery in it is verified one by one, so that exactly the
// forgery fails, and for a second after a failure signatures are verified
// one by one (a flood of forgeries would make every batch fail).
func TestVerifyClaimedBatch(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{})
	now := time.Now()
	pc := h.a.Prechecker()
	var b Batch
	claim := func(ms []*Manifest) {
		t.Helper()
		for _, m := range ms {
			if !pc.Claim(m, now) {
				t.Fatalf("manifest %d not claimed", m.Seq)
			}
		}
	}
	var ms []*Manifest
	for i := range 12 {
		ms = append(ms, h.manifest(uint32(1+i), uint64(100+4*i), 4, "real"))
	}
	claim(ms)
	sigs := make([]Signature, len(ms))
	pc.VerifyClaimed(ms, sigs, now, &b)
	for i, s := range sigs {
		if !s.Checked || s.Err != nil || !s.Batched {
			t.Fatalf("manifest %d: %+v, want verified in the batch", i, s)
		}
		if err := h.a.HandleChecked(ms[i], now, s); err != nil {
			t.Fatalf("manifest %d handled: %v", i, err)
		}
	}
	if st := h.a.Stats(); st.Verified != 12 || st.Batched != 12 || st.Manifests != 12 {
		t.Fatalf("%s; verified %d, batched %d", st, st.Verified, st.Batched)
	}

	ms = ms[:0]
	for i := range 8 {
		ms = append(ms, h.manifest(uint32(20+i), uint64(200+4*i), 4, "real"))
	}
	ms[5].Signature = append([]byte(nil), ms[5].Signature...)
	ms[5].Signature[40] ^= 1
	claim(ms)
	sigs = sigs[:len(ms)]
	pc.VerifyClaimed(ms, sigs, now, &b)
	for i, s := range sigs {
		bad := i == 5
		if !s.Checked || s.Batched || (s.Err != nil) != bad || bad && !errors.Is(s.Err, ErrBadSignature) {
			t.Fatalf("manifest %d: %+v, want verified alone, failing: %v", i, s, bad)
		}
	}

	// Within a second of the failure: one by one; after it, batches again.
	for _, tc := range []struct {
		at      time.Time
		batched bool
	}{{now.Add(batchQuiet / 2), false}, {now.Add(2 * batchQuiet), true}} {
		ms = ms[:0]
		for i := range minBatch {
			seq := uint32(30 + i)
			if tc.batched {
				seq += 10
			}
			ms = append(ms, h.manifest(seq, uint64(4*seq), 4, "real"))
		}
		claim(ms)
		sigs = sigs[:len(ms)]
		pc.VerifyClaimed(ms, sigs, tc.at, &b)
		for i, s := range sigs {
			if !s.Checked || s.Err != nil || s.Batched != tc.batched {
				t.Fatalf("at +%v, manifest %d: %+v, want batched %v", tc.at.Sub(now), i, s, tc.batched)
			}
		}
	}
}

// Batch and one-by-one verification follow RFC 8032's cofactored equation
// alike: a signature whose R carries a small-order component (which only
// the key holder can make) verifies both ways, and a batch that verifies
// has no signature that fails alone. crypto/ed25519's cofactorless check
// refuses that signature; nothing else tells the two apart.
func TestBatchAgreesWithSingle(t *testing.T) {
	key := testKey(t)
	seed := ed25519.NewKeyFromSeed(unhex(t, rfc8032Seed)).Seed()
	hs := sha512.Sum512(seed)
	hs[0] &= 248 // RFC 8032 §5.1.5: the secret scalar
	hs[31] &= 127
	hs[31] |= 64
	a, err := scalar.New().SetBytesModOrder(hs[:32])
	if err != nil {
		t.Fatal(err)
	}
	// A point of order 8 ("Taming the many EdDSAs", table 6).
	var ty curve.CompressedEdwardsY
	ty.SetBytes(unhex(t, "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"))
	var torsion, small curve.EdwardsPoint
	if _, err := torsion.SetCompressedY(&ty); err != nil {
		t.Fatal(err)
	}
	if !small.MulByCofactor(&torsion).IsIdentity() || torsion.IsIdentity() {
		t.Fatal("not a small-order point")
	}
	// Sign with R = rB + T, S = r + H(R || A || M) a.
	m := Manifest{StreamID: 5, Seq: 6, FirstPN: 7, Digests: testDigests(3, 9)}
	enc, err := m.Append(nil, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _, _ := Parse(enc, DigestSHA256)
	var rb [64]byte
	rand.Read(rb[:])
	r, _ := scalar.New().SetBytesModOrderWide(rb[:])
	var R curve.EdwardsPoint
	R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r)
	R.Add(&R, &torsion)
	var rEnc curve.CompressedEdwardsY
	rEnc.SetEdwardsPoint(&R)
	msg := append(append(append([]byte(nil), rEnc[:]...), key.Public().Bytes()...), signatureContext...)
	msg = append(msg, p.SignedBytes()...)
	kh := sha512.Sum512(msg)
	k, _ := scalar.New().SetBytesModOrderWide(kh[:])
	S := scalar.New().Mul(k, a)
	S.Add(S, r)
	sig := append([]byte(nil), rEnc[:]...)
	sig = append(sig, make([]byte, 32)...)
	if err := S.ToBytes(sig[32:]); err != nil {
		t.Fatal(err)
	}
	copy(enc[len(enc)-64:], sig)
	odd, _, _ := Parse(enc, DigestSHA256)

	if ed25519.Verify(ed25519.PublicKey(key.Public().Bytes()), append([]byte(signatureContext), odd.SignedBytes()...), odd.Signature) {
		t.Fatal("crypto/ed25519 takes a signature with a small-order component in R")
	}
	if err := key.Public().Verify(&odd); err != nil {
		t.Fatalf("one by one: %v", err)
	}
	var b Batch
	var goods []*Manifest
	for i := range 3 {
		other := Manifest{StreamID: 5, Seq: uint32(7 + i), FirstPN: uint64(10 + 3*i), Digests: testDigests(3, byte(10+i))}
		enc2, _ := other.Append(nil, key, nil)
		good, _, _ := Parse(enc2, DigestSHA256)
		goods = append(goods, &good)
	}
	if !key.Public().verifyBatch(append([]*Manifest{&odd}, goods...), &b) {
		t.Fatal("the batch refuses what one-by-one verification takes")
	}
	// And a batch refuses what one-by-one verification refuses.
	bad := odd
	bad.Signature = append([]byte(nil), odd.Signature...)
	bad.Signature[33] ^= 1
	if key.Public().Verify(&bad) == nil || key.Public().verifyBatch(append(goods, &bad), &b) {
		t.Fatal("a changed signature verifies")
	}
}

// Batch verification allocates only the multiplication's tables (four
// slices), once per batch.
func TestBatchAllocations(t *testing.T) {
	key := testKey(t)
	var ms []*Manifest
	for i := range 16 {
		m := Manifest{StreamID: 5, Seq: uint32(i), FirstPN: uint64(33 * i), Digests: testDigests(33, byte(i))}
		enc, _ := m.Append(nil, key, nil)
		p, _, _ := Parse(enc, DigestSHA256)
		ms = append(ms, &p)
	}
	var b Batch
	key.Public().verifyBatch(ms, &b) // sizes b
	if n := testing.AllocsPerRun(20, func() {
		if !key.Public().verifyBatch(ms, &b) {
			t.Fatal("batch refused")
		}
	}); n > 4 {
		t.Fatalf("%.0f allocations per batch of 16", n)
	}
}

// BenchmarkVerifyBatch verifies full manifests in batches of n, per
// signature, next to BenchmarkVerify's one by one.
func BenchmarkVerifyBatch(b *testing.B) {
	key := testKey(b)
	for _, n := range []int{2, 3, 4, 8, 16} {
		var ms []*Manifest
		for i := range n {
			m := Manifest{StreamID: 1, Seq: uint32(i), FirstPN: uint64(33 * i), Digests: testDigests(33, byte(i))}
			enc, _ := m.Append(nil, key, nil)
			p, _, _ := Parse(enc, DigestSHA256)
			ms = append(ms, &p)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			var bt Batch
			b.ReportAllocs()
			for b.Loop() {
				if !key.Public().verifyBatch(ms, &bt) {
					b.Fatal("batch refused")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/signature")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n)/33, "ns/packet")
		})
	}
}
