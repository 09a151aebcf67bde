package mquic

import "time"

// SetClock makes the receiver read the time from now instead of time.Now
// (for tests that must not depend on the wall clock).
func (r *Receiver) SetClock(now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clock = now
}
