package mquic

import "time"

// SetClock makes the receiver read the time from now instead of time.Now
// (for tests that must not depend on the wall clock). Set it before Run.
func (r *Receiver) SetClock(now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = now
}

// Tick makes the receiver look at its timers (holes, held packets and
// digests) at its clock's time now, as Run does when a deadline passes.
func (r *Receiver) Tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.clock()
	r.afterBatchLocked(r.now)
}

// PaceCatchUp is how far behind its schedule the pacer at bitsPerSec lets a
// busy writer of minBurst-byte writes fall and catch up.
func PaceCatchUp(bitsPerSec uint64, minBurst int) time.Duration {
	p := newPacer(bitsPerSec, minBurst)
	return time.Duration(p.catchUp)
}

// BatchPackets is how many packets of size bytes the sender writes at once
// at bitsPerSec, with BatchSize max.
func BatchPackets(bitsPerSec uint64, size, max int) int { return batchPackets(bitsPerSec, size, max) }

// OnWrite has fn called, on the writer's goroutine (set it before Run
// starts), with the time at which the pacer booked each write, its bytes,
// and the pacing schedule given up so far.
func (s *Sender) OnWrite(fn func(at time.Time, bytes int, lost time.Duration)) { s.onWrite = fn }

// Running reports whether Run was called.
func (r *Receiver) Running() bool { return r.running.Load() }
