package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"
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
		f, _, err := Parse(b)
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
