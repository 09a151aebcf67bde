package client

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The receiver circuit breaker (spec/unicast.md, "Circuit breaker"): a
// receiver whose network cannot carry a session leaves its group, so that
// the session stops congesting the receiver's links, gets the resources over
// unicast (congestion-controlled) and joins again after a back-off. It is
// the receiver's half of the circuit-breaker-assisted congestion control
// the IETF describes for multicast: the sender advertises its peak flow
// rate, and a receiver that measures more, or keeps losing much of what
// is sent, disconnects.

// Defaults of BreakerConfig.
const (
	DefaultBreakerRateMargin = 0.25
	DefaultBreakerLoss       = 0.3
	DefaultBreakerWindow     = time.Second
	DefaultBreakerSustain    = 5 * time.Second
	DefaultBreakerBackoff    = 10 * time.Second
	DefaultBreakerMaxBackoff = 5 * time.Minute
)

// breakerMinPackets is how many packets (received and lost) a window needs
// before its loss counts: a few packets say nothing about a link.
const breakerMinPackets = 16

// ErrBreakerOpen is the join error of a session whose circuit breaker
// tripped, until its back-off ends.
var ErrBreakerOpen = errors.New("client: circuit breaker open: the session is left until its back-off ends")

// BreakerConfig configures the receiver circuit breaker. Every window the
// breaker measures, over the trailing Window, the session's rate (UDP
// payload of the packets accepted, as the sender paces its peak flow rate)
// and its loss (packet numbers skipped and not received, over those plus
// the packets accepted). A window is bad when the rate exceeds the
// advertised peak flow rate by more than RateMargin or the loss exceeds
// LossThreshold; when every window has been bad for Sustain, the breaker
// trips: the client leaves the session, fetches what it would have
// brought over unicast, and joins again after the back-off.
type BreakerConfig struct {
	// Disabled turns the breaker off.
	Disabled bool
	// RateMargin is the fraction by which the measured rate may exceed the
	// session's peak flow rate (DefaultBreakerRateMargin). A session that
	// advertises no peak flow rate is never over rate.
	RateMargin float64
	// LossThreshold is the fraction of the session's packets a window may
	// lose (DefaultBreakerLoss). Windows with fewer than 16 packets
	// (received and lost) do not measure loss.
	LossThreshold float64
	// Window is the time rate and loss are measured over
	// (DefaultBreakerWindow).
	Window time.Duration
	// Sustain is how long every window must be bad before the breaker
	// trips (DefaultBreakerSustain).
	Sustain time.Duration
	// Backoff is how long the session stays left after a trip
	// (DefaultBreakerBackoff). It doubles with every trip that follows
	// the previous one within MaxBackoff, up to MaxBackoff
	// (DefaultBreakerMaxBackoff), and starts again from Backoff after a
	// longer quiet time.
	Backoff, MaxBackoff time.Duration
}

// withDefaults fills the zero fields.
func (b BreakerConfig) withDefaults() BreakerConfig {
	setDefault(&b.RateMargin, DefaultBreakerRateMargin)
	setDefault(&b.LossThreshold, DefaultBreakerLoss)
	setDefault(&b.Window, DefaultBreakerWindow)
	setDefault(&b.Sustain, DefaultBreakerSustain)
	setDefault(&b.Backoff, DefaultBreakerBackoff)
	setDefault(&b.MaxBackoff, DefaultBreakerMaxBackoff)
	b.MaxBackoff = max(b.MaxBackoff, b.Backoff)
	return b
}

// check reports a configuration the breaker cannot work with.
func (b BreakerConfig) check() error {
	if b.Disabled {
		return nil
	}
	if b.LossThreshold >= 1 {
		return fmt.Errorf("client: breaker loss threshold %v: want a fraction below 1", b.LossThreshold)
	}
	return nil
}

// breakerSample is a receiver's counters at one check.
type breakerSample struct {
	at                   time.Time
	bytes, packets, lost uint64
}

// breaker is one session's circuit breaker. It works on the times and
// counters given to it (no clock of its own), under its session's lock.
type breaker struct {
	cfg  BreakerConfig
	peak uint64 // the session's peak flow rate, bit/s (0: not advertised)

	samples  []breakerSample // oldest first; the first is at least Window old once there is history
	badSince time.Time       // start of the run of bad windows (zero: none)

	trips    int
	lastTrip time.Time
	backoff  time.Duration // the last trip's back-off
}

func newBreaker(cfg BreakerConfig, peak uint64) *breaker {
	return &breaker{cfg: cfg, peak: peak}
}

// restart forgets the measurements: the session was joined again (a new
// receiver counts from zero).
func (b *breaker) restart() {
	b.samples = b.samples[:0]
	b.badSince = time.Time{}
}

// observe takes the receiver's counters at now (bytes and packets
// accepted, packets lost, each counted since the receiver started) and
// reports whether the breaker trips, and why.
func (b *breaker) observe(now time.Time, bytes, packets, lost uint64) (trip bool, why string) {
	if b.cfg.Disabled {
		return false, ""
	}
	b.samples = append(b.samples, breakerSample{now, bytes, packets, lost})
	// Keep one sample at least Window old as the window's base.
	drop := 0
	for drop+1 < len(b.samples) && !now.Before(b.samples[drop+1].at.Add(b.cfg.Window)) {
		drop++
	}
	if drop > 0 {
		b.samples = append(b.samples[:0], b.samples[drop:]...)
	}
	base := b.samples[0]
	span := now.Sub(base.at)
	if span < b.cfg.Window || bytes < base.bytes || packets < base.packets {
		return false, "" // not a window of history yet (or a new receiver's counters)
	}
	got := packets - base.packets
	var lostIn uint64
	if lost > base.lost {
		lostIn = lost - base.lost
	}
	rate := float64(bytes-base.bytes) * 8 / span.Seconds()
	var bad string
	switch {
	case b.peak > 0 && rate > float64(b.peak)*(1+b.cfg.RateMargin):
		bad = fmt.Sprintf("measured %.1f Mbit/s, over the session's peak flow rate of %.1f Mbit/s by more than %.0f %%",
			rate/1e6, float64(b.peak)/1e6, b.cfg.RateMargin*100)
	case got+lostIn >= breakerMinPackets && float64(lostIn) > b.cfg.LossThreshold*float64(got+lostIn):
		bad = fmt.Sprintf("lost %.0f %% of the session's packets (%d of %d), over the %.0f %% threshold",
			100*float64(lostIn)/float64(got+lostIn), lostIn, got+lostIn, b.cfg.LossThreshold*100)
	}
	if bad == "" {
		b.badSince = time.Time{}
		return false, ""
	}
	if b.badSince.IsZero() {
		b.badSince = now
	}
	if now.Sub(b.badSince) < b.cfg.Sustain {
		return false, ""
	}
	return true, fmt.Sprintf("%s for %v", bad, now.Sub(b.badSince).Round(time.Millisecond))
}

// tripped records a trip at now and returns how long the session stays
// left.
func (b *breaker) tripped(now time.Time) time.Duration {
	switch {
	case b.trips == 0 || now.Sub(b.lastTrip) > b.cfg.MaxBackoff:
		b.backoff = b.cfg.Backoff
	default:
		b.backoff = min(2*b.backoff, b.cfg.MaxBackoff)
	}
	b.trips++
	b.lastTrip = now
	b.restart()
	return b.backoff
}

// breakerTrip is a trip the monitor acts on once it holds no session lock.
type breakerTrip struct {
	id      string
	cancel  context.CancelFunc
	why     string
	backoff time.Duration
	trips   int
}

// breakerJoinedLocked starts the session's breaker afresh for a receiver
// that just joined (the first join creates it). It ends a back-off. A
// client with no origin (sessions announced elsewhere) has no unicast to
// fall back to: leaving would lose the resources, so it has no breaker.
func (cs *csession) breakerJoinedLocked(cfg BreakerConfig, haveOrigin bool) {
	cs.breakerUntil = time.Time{}
	if !haveOrigin || cfg.Disabled {
		return
	}
	if cs.breaker == nil {
		cs.breaker = newBreaker(cfg, cs.ad.Session.PeakFlowRate)
	}
	cs.breaker.restart()
}

// observeBreakerLocked gives the session's breaker its receiver's counters
// and reports a trip: the back-off is set, and the receiver is to be
// stopped (trip.cancel) without the session's lock held.
func (cs *csession) observeBreakerLocked(s breakerSample) (breakerTrip, bool) {
	if cs.breaker == nil || cs.cancel == nil || cs.leaving {
		return breakerTrip{}, false
	}
	trip, why := cs.breaker.observe(s.at, s.bytes, s.packets, s.lost)
	if !trip {
		return breakerTrip{}, false
	}
	backoff := cs.breaker.tripped(s.at)
	cs.breakerUntil = s.at.Add(backoff)
	return breakerTrip{id: cs.id, cancel: cs.cancel, why: why, backoff: backoff, trips: cs.breaker.trips}, true
}

// breakerTrips stops the receivers of the sessions whose breaker tripped
// (leaving their groups; receiverDone keeps them left until the back-off
// ends, and the monitor then treats them as not arriving), logs and counts
// the trips, and counts the sessions whose breaker is open at now. It
// runs with no lock held.
func (c *Client) breakerTrips(trips []breakerTrip, sessions []*csession, now time.Time) {
	for _, tr := range trips {
		c.log.Warn("circuit breaker tripped: leaving the multicast session; its resources come over unicast until it is joined again",
			"session", tr.id, "why", tr.why, "rejoin_in", tr.backoff, "trips", tr.trips)
		tr.cancel()
	}
	open := 0
	for _, cs := range sessions {
		cs.mu.Lock()
		if !cs.left && cs.breakerUntil.After(now) {
			open++
		}
		cs.mu.Unlock()
	}
	c.mu.Lock()
	c.stats.BreakerTrips += len(trips)
	c.stats.BreakerOpen = open
	c.mu.Unlock()
}
