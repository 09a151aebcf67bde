package manifest

import "time"

// claimSlots is how many recent sequence numbers Prechecker remembers as
// verified or being verified: far more than the manifests in flight.
const claimSlots = 256

// Signature is the outcome of a signature a Prechecker verified ahead of
// the Authenticator (Checked), for Authenticator.HandleChecked.
type Signature struct {
	Checked bool
	Err     error         // nil: the signature verifies
	Time    time.Duration // how long verifying took
}

// Prechecker verifies manifest signatures on other goroutines than the
// Authenticator's, ahead of it: a receiver that opens packets on several
// goroutines verifies there too, so that verification does not hold up the
// packets in order. It checks what needs no state (the Manifest Stream ID
// and the key), verifies each sequence number once (a copy of a manifest
// being verified or verified already is left to the Authenticator, which
// recognizes it without verifying), and draws on the Authenticator's
// verification budget, MaxVerifyRate, so that forged manifests cannot make
// it verify more: it verifies ahead only while more than half of the burst
// is left, so that under a flood the rest goes to the manifests the
// Authenticator finds expected. Everything else (repeats, conflicts,
// plausibility, priority) is still the Authenticator's, in HandleChecked.
// It is safe for concurrent use.
type Prechecker struct{ a *Authenticator }

// Prechecker returns the authenticator's prechecker.
func (a *Authenticator) Prechecker() *Prechecker { return &Prechecker{a} }

// Check verifies m's signature at now if it should be verified ahead
// (Checked false otherwise). scratch is reused, and returned, for the
// signed bytes.
func (p *Prechecker) Check(m *Manifest, now time.Time, scratch []byte) (Signature, []byte) {
	a := p.a
	if m.StreamID != a.prof.StreamID || m.Alg != a.prof.Key.alg || m.KeyID != a.prof.Key.id {
		return Signature{}, scratch
	}
	slot := &a.claims[m.Seq%claimSlots]
	c := slot.Load()
	if c == uint64(m.Seq)+1 || !slot.CompareAndSwap(c, uint64(m.Seq)+1) {
		return Signature{}, scratch // another copy is verified, or being verified
	}
	if !a.takeToken(&a.inBand, a.ticks(now), false) {
		slot.CompareAndSwap(uint64(m.Seq)+1, c) // the Authenticator will see it rate-limited
		return Signature{}, scratch
	}
	t0 := time.Now()
	scratch, err := a.prof.Key.verify(m, scratch)
	if err != nil {
		a.failed(m.Seq)
	}
	return Signature{Checked: true, Err: err, Time: time.Since(t0)}, scratch
}
