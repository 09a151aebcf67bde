package mquic

import "time"

// pacer keeps a sender within the session's peak flow rate. It is a token
// bucket kept as a schedule in virtual time: next is when the bytes sent so
// far are paid for at the rate. A write may go once next has come (so one
// write may overdraw the bucket by its own size); a writer that wakes late
// catches up by writing at once until it is back on schedule, but never by
// more than burst, which is also what a writer that was idle may send at
// once. The schedule is kept in float nanoseconds from an epoch, so no
// rounding is lost per write: over any window the bytes sent stay within
// rate × window + burst + one write, and a writer that keeps the queue full
// sends exactly at the rate unless it falls behind by more than burst.
type pacer struct {
	nsPerByte float64 // 0: unlimited
	burst     float64 // ns of schedule a late or idle writer may catch up
	next      float64 // ns after epoch when the next write may go
	epoch     time.Time
}

// pacingBurst is how far behind schedule a writer may fall and still catch
// up: enough for a write batch at high rates and for a late timer on a
// loaded machine, little enough to keep bursts short at low rates.
const pacingBurst = 2 * time.Millisecond

// newPacer returns a pacer for bitsPerSec (0: unlimited) whose burst is at
// least minBurst bytes.
func newPacer(bitsPerSec uint64, minBurst int) pacer {
	if bitsPerSec == 0 {
		return pacer{}
	}
	p := pacer{nsPerByte: 8e9 / float64(bitsPerSec), epoch: time.Now()}
	p.burst = max(float64(pacingBurst), float64(minBurst)*p.nsPerByte)
	return p
}

// take books n bytes to be written at now and returns how long the writer
// must wait before writing them.
func (p *pacer) take(now time.Time, n int) time.Duration {
	if p.nsPerByte == 0 {
		return 0
	}
	t := float64(now.Sub(p.epoch))
	if p.next < t-p.burst {
		p.next = t - p.burst // idle, or later than the burst covers
	}
	wait := p.next - t
	p.next += float64(n) * p.nsPerByte
	if wait <= 0 {
		return 0
	}
	return time.Duration(wait)
}

// batchPackets is how many packets of size bytes to gather before a write at
// bitsPerSec (0: unlimited): about a millisecond's worth, between 1 and max.
func batchPackets(bitsPerSec uint64, size, max int) int {
	if bitsPerSec == 0 {
		return max
	}
	n := int(float64(bitsPerSec) / 8 * 0.001 / float64(size))
	return min(max, n+1)
}
