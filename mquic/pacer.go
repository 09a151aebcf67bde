package mquic

import "time"

// pacer is a token bucket over bytes that lets the sender stay within the
// session's peak flow rate. Tokens may go negative: the caller then sleeps
// for the debt, so the average rate holds even when sleeps overshoot.
type pacer struct {
	bytesPerSec float64 // 0 means unlimited
	burst       float64 // bucket depth in bytes
	tokens      float64
	last        time.Time
}

// pacingBurst is how much the bucket may hold: enough for a write batch at
// high rates, little enough to keep bursts short at low ones.
const pacingBurst = 2 * time.Millisecond

func newPacer(bitsPerSec uint64, minBurst int) pacer {
	if bitsPerSec == 0 {
		return pacer{}
	}
	rate := float64(bitsPerSec) / 8
	burst := max(rate*pacingBurst.Seconds(), float64(minBurst))
	return pacer{bytesPerSec: rate, burst: burst, tokens: burst}
}

// take consumes n bytes at time now and returns how long the caller must
// wait before sending them.
func (p *pacer) take(now time.Time, n int) time.Duration {
	if p.bytesPerSec == 0 {
		return 0
	}
	if !p.last.IsZero() {
		p.tokens = min(p.burst, p.tokens+now.Sub(p.last).Seconds()*p.bytesPerSec)
	}
	p.last = now
	p.tokens -= float64(n)
	if p.tokens >= 0 {
		return 0
	}
	return time.Duration(-p.tokens / p.bytesPerSec * float64(time.Second))
}

// batchPackets is how many packets of size bytes to gather before a write at
// this rate: about a millisecond's worth, between 1 and max.
func (p *pacer) batchPackets(size, max int) int {
	if p.bytesPerSec == 0 {
		return max
	}
	n := int(p.bytesPerSec * 0.001 / float64(size))
	return min(max, n+1)
}
