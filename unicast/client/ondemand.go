package client

import (
	"context"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// On-demand channels (Config.ChannelIdle, spec/unicast.md "Channels"): a
// session whose description names a channel (a path prefix, one rendition
// of a DASH ladder) is joined only while something uses the paths under
// it. A gateway calls Use with each path its players request; the session
// of the longest channel holding it is joined then, and left once the
// channel has gone unused for ChannelIdle. A session without a channel is
// joined at once, as every session is when ChannelIdle is 0.
//
// A session joined on demand expects only the pushes from the first one
// its receiver sees: what was pushed before (while it was not joined) is
// no loss, and is not fetched. A player that asks for such a path gets it
// as the gateway gets anything it does not hold, over unicast.

// demandState is the on-demand state of a csession, guarded by its mu.
type demandState struct {
	// channel is the session's channel (zero: none); name its form in the
	// description.
	channel wellknown.Target
	name    string
	// parked: not joined because its channel is unused (joined again by
	// Use, never by the monitor's probes).
	parked bool
	// want: Use unparked it, to be joined by joinDemanded (no receiver)
	// or at the end of its stopping receiver (receiverDone). Whoever
	// joins sets joining first, under mu: one join at a time.
	want bool
	// idleStop is the receiver stopped because its channel went unused:
	// its end is a leave, not a failure.
	idleStop *h3m.Receiver
	// from is the first push ID the receiver saw since it was joined
	// (seen: any), before which nothing is expected.
	from uint64
	seen bool
}

// onDemand reports whether sessions with a channel are joined on demand.
func (c *Client) onDemand() bool { return c.cfg.ChannelIdle > 0 }

// initDemandLocked sets up the channel of a new session (c.mu and nothing
// else held): with ChannelIdle, a session of a channel unused now starts
// parked.
func (c *Client) initDemandLocked(cs *csession, si *wellknown.SessionInfo, now time.Time) {
	if si.Channel == "" {
		return
	}
	t, err := wellknown.ParseChannel(si.Channel)
	if err != nil {
		return // Parse checked it; a Config.Sessions one may not be: no channel
	}
	cs.od.channel, cs.od.name = t, si.Channel
	if c.onDemand() && !c.channelInUseLocked(si.Channel, now) {
		cs.od.parked, cs.joining = true, false
	}
}

func (c *Client) channelInUseLocked(channel string, now time.Time) bool {
	last, ok := c.channelUse[channel]
	return ok && now.Sub(last) < c.cfg.ChannelIdle
}

// Use tells the client that path (decoded, as URL.Path) is wanted now: with
// ChannelIdle set, the sessions of the longest channel that holds it are
// joined if they are not, and stay joined until that channel has gone
// unused for ChannelIdle. It returns the channel ("" when path is in none,
// or ChannelIdle is 0), and missed: the catalogue lists path as pushed on
// its channel while this client was not receiving it, so multicast will
// not bring it (a gateway then fetches it at once rather than wait). Safe
// for concurrent use; it does not block on the network (Run joins).
func (c *Client) Use(path string) (channel string, missed bool) {
	if !c.onDemand() {
		return "", false
	}
	now := time.Now()
	c.mu.Lock()
	best := ""
	var bestLen int
	for _, cs := range c.sessions {
		if cs.od.name != "" && len(cs.od.channel.Path) > bestLen && wellknown.InChannel(cs.od.channel, path) {
			best, bestLen = cs.od.name, len(cs.od.channel.Path)
		}
	}
	if best == "" {
		c.mu.Unlock()
		return "", false
	}
	if c.channelUse == nil {
		c.channelUse = map[string]time.Time{}
	}
	c.channelUse[best] = now
	woke := false
	for _, cs := range c.sessions {
		if cs.od.name != best {
			continue
		}
		cs.mu.Lock()
		if cs.od.parked && !cs.left && cs.state != wellknown.StateEnded {
			cs.od.parked, woke = false, true
			switch {
			case cs.rcv == nil:
				cs.od.want = true // joinDemanded joins it
				cs.freshStartLocked()
			case cs.od.idleStop == cs.rcv:
				cs.od.want = true // its receiver is stopping: its end joins it again (receiverDone)
			} // else its receiver runs on
		}
		cs.mu.Unlock()
	}
	if e, ok := c.currentLocked(wellknown.EscapeTarget(path)); ok {
		if cs := c.sessions[e.Session]; cs != nil && cs.od.name == best {
			missed = !c.demandExpectedLocked(&e) && !c.settledEntryLocked(&e)
		}
	}
	c.mu.Unlock()
	if woke {
		select {
		case c.demand <- struct{}{}:
		default:
		}
		// A fresh catalogue tells sooner which paths of the channel were
		// pushed while it was not joined (missed).
		select {
		case c.pollNow <- struct{}{}:
		default:
		}
	}
	return best, missed
}

// joinDemanded joins the sessions Use unparked; ctx is the client's.
func (c *Client) joinDemanded(ctx context.Context) {
	var joins []*csession
	c.mu.Lock()
	for _, cs := range c.sessions {
		cs.mu.Lock()
		if cs.od.want && cs.rcv == nil {
			cs.od.want = false
			if !cs.od.parked && !cs.joining { // else someone else joins it
				cs.joining = true
				joins = append(joins, cs)
			}
		}
		cs.mu.Unlock()
	}
	c.mu.Unlock()
	for _, cs := range joins {
		c.log.Info("joining a channel's session: a player uses it", "session", cs.id, "channel", cs.od.name)
		c.join(ctx, cs)
	}
}

// parkIdle parks the sessions whose channel has gone unused for
// ChannelIdle and stops their receivers (the monitor calls it).
func (c *Client) parkIdle(now time.Time) {
	if !c.onDemand() {
		return
	}
	var stops []func()
	c.mu.Lock()
	for ch := range c.channelUse {
		if !c.channelInUseLocked(ch, now) {
			delete(c.channelUse, ch)
		}
	}
	for _, cs := range c.sessions {
		if cs.od.name == "" {
			continue
		}
		idle := !c.channelInUseLocked(cs.od.name, now)
		cs.mu.Lock()
		if idle && !cs.od.parked && !cs.left {
			cs.od.parked, cs.od.want = true, false
			c.log.Info("leaving a channel's session: unused", "session", cs.id, "channel", cs.od.name, "idle", c.cfg.ChannelIdle)
		}
		// Also a receiver that a join in progress started after the park.
		if cs.od.parked && cs.rcv != nil && cs.od.idleStop != cs.rcv && cs.cancel != nil {
			cs.od.idleStop = cs.rcv
			stops = append(stops, cs.cancel)
		}
		cs.mu.Unlock()
	}
	c.mu.Unlock()
	for _, stop := range stops {
		stop() // the multicast socket leaves the group on its interface as it closes
	}
}

// idleStoppedLocked reports whether rcv was stopped by parkIdle (cs.mu
// held), and forgets it.
func (cs *csession) idleStoppedLocked(rcv *h3m.Receiver) bool {
	if rcv == nil || cs.od.idleStop != rcv {
		return false
	}
	cs.od.idleStop = nil
	return true
}

// freshStartLocked makes the next receiver of cs start afresh (cs.mu held,
// no receiver running): what was pushed while it was not joined is neither
// lost nor expected.
func (cs *csession) freshStartLocked() {
	cs.od.seen, cs.promised, cs.gaps = false, false, nil
}

// sawPushLocked records a push ID the receiver saw (cs.mu held).
func (cs *csession) sawPushLocked(id uint64) {
	if !cs.od.seen {
		cs.od.from, cs.od.seen = id, true
	}
}

// demandExpectedLocked reports whether e may be expected as far as
// on-demand joining goes (c.mu held): not a push of a session parked now,
// nor one pushed before its receiver's first push since it was joined.
func (c *Client) demandExpectedLocked(e *wellknown.CatalogEntry) bool {
	if !c.onDemand() {
		return true
	}
	cs := c.sessions[e.Session]
	if cs == nil || cs.od.name == "" {
		return true
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return !cs.od.parked && cs.od.seen && e.PushID >= cs.od.from
}
