package mquic

import (
	"math/rand/v2"
	"testing"
	"time"
)

// simulatePacer drives a pacer with a simulated clock: a writer that always
// has a batch of n bytes ready, sleeps exactly as told plus a lateness
// drawn by late, and spends writeTime per write. It returns the write
// times (ns after the start) and the pacer.
func simulatePacer(bitsPerSec uint64, n, writes int, writeTime time.Duration, late func() time.Duration) ([]float64, *pacer) {
	p := newPacer(bitsPerSec, n)
	start := p.epoch
	now := start
	times := make([]float64, writes)
	for i := range writes {
		if wait := p.delay(now); wait > 0 {
			now = now.Add(wait + late())
		}
		p.sent(now, n, false)
		times[i] = float64(now.Sub(start))
		now = now.Add(writeTime)
	}
	return times, &p
}

// The pacer loses nothing to rounding: a writer that wakes on time sends
// at exactly the rate, whatever the batch size and rate.
func TestPacerExactRate(t *testing.T) {
	for _, tc := range []struct {
		rate uint64
		n    int
	}{{200_000_000, 1200 * 21}, {500_000_000, 1200 * 32}, {2_000_000_000, 1200 * 32}, {7_777_777, 1187}} {
		const writes = 100_000
		times, p := simulatePacer(tc.rate, tc.n, writes, 3*time.Microsecond, func() time.Duration { return 0 })
		// Write i goes when the bytes before it are paid for.
		elapsed := times[writes-1] - times[0]
		got := float64(writes-1) * float64(tc.n) * 8 / (elapsed / 1e9)
		if d := got/float64(tc.rate) - 1; d > 1e-6 || d < -1e-6 || p.lost > float64(pacingBurst) {
			t.Errorf("rate %d, %d-byte writes: %.0f bit/s (%+.2e), lost %v", tc.rate, tc.n, got, d, p.lostTime())
		}
	}
}

// A busy writer that wakes late catches up (within pacingCatchUp), never
// exceeds rate × window + catch-up + one write over any window, and what it
// cannot catch up is accounted for in lostTime: bytes × 8 / rate =
// elapsed - lost within the catch-up.
func TestPacerLateWakeups(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rate, n, writes = 500_000_000, 1200 * 32, 50_000
	late := func() time.Duration {
		switch rng.IntN(20) {
		case 0:
			return time.Duration(rng.IntN(int(15 * time.Millisecond))) // a badly loaded machine
		case 1, 2, 3:
			return time.Duration(rng.IntN(int(time.Millisecond)))
		}
		return time.Duration(rng.IntN(50_000))
	}
	times, p := simulatePacer(rate, n, writes, 10*time.Microsecond, late)
	nsPerByte := 8e9 / rate
	burst := p.catchUp
	// Never above the rate: every window from write i to write j.
	for i := 0; i < writes; i += 97 {
		for j := i + 1; j < writes; j++ {
			window := times[j] - times[i]
			bytes := float64((j - i + 1) * n)
			if bytes*nsPerByte > window+burst+float64(n)*nsPerByte+1 {
				t.Fatalf("writes %d..%d: %.0f bytes in %.0f ns, over rate×window+burst+write", i, j, bytes, window)
			}
		}
	}
	// The deficit is exactly the schedule given up.
	paid := float64(writes-1) * float64(n) * nsPerByte
	if d := times[writes-1] - p.lost - paid; d < -1 || d > burst {
		t.Fatalf("elapsed %.0f ns - lost %.0f ns = %.0f ns of schedule, %.0f ns paid for", times[writes-1], p.lost, times[writes-1]-p.lost, paid)
	}
	achieved := float64(writes-1) * float64(n) * 8 / (times[writes-1] / 1e9)
	t.Logf("set %d, achieved %.0f bit/s (%.3f) with late wake-ups; %v of %v lost beyond the burst",
		rate, achieved, achieved/rate, p.lostTime(), time.Duration(times[writes-1]))
}
