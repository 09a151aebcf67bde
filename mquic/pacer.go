package mquic

import "time"

// pacer keeps a sender within the session's peak flow rate. It is a token
// bucket kept as a schedule in virtual time: next is when the bytes sent so
// far are paid for at the rate. A write may go once next has come (so one
// write may overdraw the bucket by its own size). A writer that comes back
// from idle may send burst at once; a writer that always had packets queued
// but woke late (a loaded machine) catches up by writing at once until it
// is back on schedule, by up to pacingCatchUp. The schedule is kept in float nanoseconds
// from an epoch, so no rounding is lost per write: over any window the
// bytes sent stay within rate × window + catch-up + one write, and a writer
// that keeps the queue full sends exactly at the rate unless it falls
// behind by more than the catch-up, which lostTime accounts for.
type pacer struct {
	nsPerByte float64 // 0: unlimited
	burst     float64 // ns of schedule a writer coming back from idle may send at once
	catchUp   float64 // ns of schedule a busy writer that woke late may catch up
	next      float64 // ns after epoch when the next write may go
	epoch     time.Time
	lost      float64 // ns of schedule given up (see take)
}

// pacingBurst is what a writer that was idle may send at once: enough for a
// write batch at high rates, little enough to keep bursts short at low ones.
const pacingBurst = 2 * time.Millisecond

// pacingCatchUp is how far behind schedule a writer that always had
// packets queued may fall, because its timer fired late (a loaded
// machine), and still catch up: the bytes it sends at once then are those
// it owed.
const pacingCatchUp = 10 * time.Millisecond

// newPacer returns a pacer for bitsPerSec (0: unlimited) whose burst is at
// least minBurst bytes.
func newPacer(bitsPerSec uint64, minBurst int) pacer {
	if bitsPerSec == 0 {
		return pacer{}
	}
	p := pacer{nsPerByte: 8e9 / float64(bitsPerSec), epoch: time.Now()}
	p.burst = max(float64(pacingBurst), float64(minBurst)*p.nsPerByte)
	p.catchUp = max(float64(pacingCatchUp), p.burst)
	return p
}

// delay returns how long the writer must wait at now before its next write.
func (p *pacer) delay(now time.Time) time.Duration {
	if p.nsPerByte == 0 {
		return 0
	}
	if wait := p.next - float64(now.Sub(p.epoch)); wait > 0 {
		return time.Duration(wait)
	}
	return 0
}

// sent books a write of n bytes that starts at now (after the wait delay
// asked for: the real time, late or not, so that a write is never booked
// earlier than the burst allows). idle says whether the writer had nothing
// to send at some point since its last write.
func (p *pacer) sent(now time.Time, n int, idle bool) {
	if p.nsPerByte == 0 {
		return
	}
	t := float64(now.Sub(p.epoch))
	behind := p.catchUp
	if idle {
		behind = p.burst
	}
	if p.next < t-behind {
		// Idle (nothing to send), or woken later than catching up covers:
		// the schedule moves on, and what it skips is lost for good.
		p.lost += t - behind - p.next
		p.next = t - behind
	}
	p.next += float64(n) * p.nsPerByte
}

// lostTime is how much of the schedule was given up so far: the writer
// sends bytes at the rate over any stretch of time but this.
func (p *pacer) lostTime() time.Duration { return time.Duration(p.lost) }

// batchPackets is how many packets of size bytes to gather before a write at
// bitsPerSec (0: unlimited): about a millisecond's worth, between 1 and max.
func batchPackets(bitsPerSec uint64, size, max int) int {
	if bitsPerSec == 0 {
		return max
	}
	n := int(float64(bitsPerSec) / 8 * 0.001 / float64(size))
	return min(max, n+1)
}
