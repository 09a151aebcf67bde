package h3m

import (
	"log/slog"
	"time"
)

// capLogEvery is how often at most the log says that a cap bit again.
const capLogEvery = time.Minute

// capLog rate-limits the log line of each cap that bites: a receiver under
// a flood would otherwise log per packet. It is used under Receiver.mu.
type capLog struct {
	log  *slog.Logger
	last map[string]time.Time
	n    map[string]uint64
}

// bit records that the cap named name bit, and logs it unless it was
// logged within capLogEvery.
func (c *capLog) bit(name string) {
	if c.last == nil {
		c.last, c.n = make(map[string]time.Time), make(map[string]uint64)
	}
	c.n[name]++
	now := time.Now()
	if t, seen := c.last[name]; seen && now.Sub(t) < capLogEvery {
		return
	}
	c.last[name] = now
	c.log.Warn("receiver cap reached (spec/http.md, \"Caps\"); a flood of forged pushes, or a cap too small for the session", "cap", name, "times", c.n[name])
	c.n[name] = 0
}
