package manifest

import (
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
	if checked != 16 {
		t.Fatalf("%d of 100 manifests verified ahead at once, want the burst of 16", checked)
	}
	if err := h.a.HandleChecked(h.manifest(100, 400, 4, "real"), now, Signature{}); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("after the budget: %v", err)
	}
}
