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
	Time    time.Duration // how long verifying took (its share of a batch)
	Batched bool          // verified in a batch with others
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
// Check verifies one manifest; Claim and VerifyClaimed split that in two, so
// that a receiver can claim the manifests of a read as it opens its packets
// and verify them together. It is safe for concurrent use.
type Prechecker struct{ a *Authenticator }

// Prechecker returns the authenticator's prechecker.
func (a *Authenticator) Prechecker() *Prechecker { return &Prechecker{a} }

// Check verifies m's signature at now if it should be verified ahead
// (Checked false otherwise). scratch is reused, and returned, for the
// signed bytes.
func (p *Prechecker) Check(m *Manifest, now time.Time, scratch []byte) (Signature, []byte) {
	if !p.Claim(m, now) {
		return Signature{}, scratch
	}
	t0 := time.Now()
	scratch, err := p.a.prof.Key.verify(m, scratch)
	if err != nil {
		p.a.failed(m.Seq, p.a.ticks(now))
	}
	return Signature{Checked: true, Err: err, Time: time.Since(t0)}, scratch
}

// Claim is the first half of Check: it reports whether m's signature is to
// be verified ahead, and if so claims m's sequence number and a token of
// the verification budget for it. The caller must then verify it, with
// VerifyClaimed, and hand the outcome to the Authenticator.
func (p *Prechecker) Claim(m *Manifest, now time.Time) bool {
	a := p.a
	if m.StreamID != a.prof.StreamID || m.Alg != a.prof.Key.alg || m.KeyID != a.prof.Key.id {
		return false
	}
	slot := &a.claims[m.Seq%claimSlots]
	c := slot.Load()
	if c == uint64(m.Seq)+1 || !slot.CompareAndSwap(c, uint64(m.Seq)+1) {
		return false // another copy is verified, or being verified
	}
	if !a.takeToken(&a.inBand, a.ticks(now), false) {
		slot.CompareAndSwap(uint64(m.Seq)+1, c) // the Authenticator will see it rate-limited
		return false
	}
	return true
}

// batchQuiet is how long after a failed verification the Prechecker
// verifies signatures one by one: under a flood of forged manifests a
// batch would fail, and its signatures would be verified again one by one,
// so that the budget would cost more CPU than its count of verifications.
const batchQuiet = time.Second

// minBatch is the fewest signatures verified in a batch: below it, one by
// one is as fast (BenchmarkVerifyBatch: a batch of n takes about 33 + 12n
// µs, one signature alone 26 µs, so two gain nothing and three save an
// eighth).
const minBatch = 3

// VerifyClaimed verifies, at now, the signatures of the manifests ms that
// Claim claimed, and writes each outcome to sigs[i] (len(sigs) must be
// len(ms)), with b's working space. Three or more Ed25519 signatures
// are verified in one batch (a dozen take about half the time of one-by-one
// verification) unless a signature failed verification within the last
// second; a batch that fails is verified one by one.
func (p *Prechecker) VerifyClaimed(ms []*Manifest, sigs []Signature, now time.Time, b *Batch) {
	a := p.a
	t := a.ticks(now)
	var failedBatch time.Duration // spread over the signatures verified again
	if len(ms) >= minBatch {
		if last := a.lastFailure.Load(); last == 0 || t-(last-1) >= int64(batchQuiet) {
			t0 := time.Now()
			ok := a.prof.Key.verifyBatch(ms, b)
			each := time.Since(t0) / time.Duration(len(ms))
			if ok {
				for i := range ms {
					sigs[i] = Signature{Checked: true, Time: each, Batched: true}
				}
				return
			}
			failedBatch = each
		}
	}
	for i, m := range ms {
		t0 := time.Now()
		var err error
		if b.msg, err = a.prof.Key.verify(m, b.msg); err != nil {
			a.failed(m.Seq, t)
		}
		sigs[i] = Signature{Checked: true, Err: err, Time: time.Since(t0) + failedBatch}
	}
}
