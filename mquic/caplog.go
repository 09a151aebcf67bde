package mquic

import (
	"log/slog"
	"time"
)

// capLogEvery is how often at most the log says that a cap bit again.
const capLogEvery = time.Minute

// capLog rate-limits the log line of each cap that bites: a receiver under
// a flood would otherwise log per packet.
type capLog struct {
	log   *slog.Logger
	clock func() time.Time
	last  map[string]capBites
}

type capBites struct {
	at     time.Time
	missed uint64 // bites since the last line
}

// bit records that the cap named name bit, and logs it unless it was
// logged within capLogEvery.
func (c *capLog) bit(name string) {
	now := c.clock()
	b, seen := c.last[name]
	if seen && now.Sub(b.at) < capLogEvery {
		b.missed++
		c.last[name] = b
		return
	}
	if c.last == nil {
		c.last = make(map[string]capBites)
	}
	c.last[name] = capBites{at: now}
	c.log.Warn("receiver cap reached (spec/transport.md, \"Caps\"); a flood of forged packets, or a cap too small for the session", "cap", name, "times_since_last_line", b.missed+1)
}

// capBit is the reassembler's and authenticator's bite callback; it runs
// under the Receiver's lock, at the time of the packets being handled.
func (r *Receiver) capBit(name string) {
	r.caps.bit(name)
}
