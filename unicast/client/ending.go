package client

// This file holds how the client ends (ExitOnEnd) and what it reports as
// missing: pushes whose promises were lost (push-ID gaps), what an origin
// that has gone cannot give any more, and what a client with no origin
// cannot fetch.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/h3m-project/h3m/h3m"
)

var (
	// ErrNoOrigin is wrapped by Delivery.Err of a resource given up because
	// the client has no unicast origin (Config.URL) to repair or fetch it
	// from.
	ErrNoOrigin = errors.New("client: no unicast origin to fetch from")
	// ErrOriginGone is wrapped by Delivery.Err of what was still missing
	// when every session had ended and the origin had not answered for
	// Config.OriginGrace.
	ErrOriginGone = errors.New("client: the unicast origin stopped answering after the session ended")
	// ErrUntrustedServer is returned by Run when the origin's certificate
	// is not trusted (an unknown authority, or not for its name): retrying
	// would not help.
	ErrUntrustedServer = errors.New("client: the server's certificate is not trusted")
)

// untrusted reports whether err is a certificate verification failure.
func untrusted(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
	)
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) || errors.As(err, &cie)
}

// pushGap is a range of push IDs of a session whose promises were lost:
// [from, to), noticed at at.
type pushGap struct {
	from, to uint64
	at       time.Time
}

func (g pushGap) String() string {
	if g.to == g.from+1 {
		return fmt.Sprintf("push %d", g.from)
	}
	return fmt.Sprintf("pushes %d-%d", g.from, g.to-1)
}

// maxGaps bounds the gaps a session keeps waiting for the catalogue; the
// oldest are reported first.
const maxGaps = 1024

// pushSeenLocked notes that push id of cs is known — promised, or its push
// stream came without a promise — and returns the push IDs skipped since
// the last one known: promises lost, as push IDs are sequential. The first
// push known skips [0, id) when lead is set (catch-up with no catalogue to
// say what came before). cs.mu is held.
func (cs *csession) pushSeenLocked(id uint64, lead bool, now time.Time) []pushGap {
	var gaps []pushGap
	switch {
	case !cs.promised:
		if lead && id > 0 {
			gaps = append(gaps, pushGap{0, id, now})
		}
		cs.maxPromised, cs.promised = id, true
		cs.firstPush, cs.firstAt = id, now
	case id > cs.maxPromised:
		if id > cs.maxPromised+1 {
			gaps = append(gaps, pushGap{cs.maxPromised + 1, id, now})
		}
		cs.maxPromised = id
	default:
		cs.removeGapLocked(id) // a late promise
	}
	return gaps
}

// removeGapLocked takes push id out of cs's gaps (a late promise, or the
// catalogue named it).
func (cs *csession) removeGapLocked(id uint64) {
	cs.gaps = removeGap(cs.gaps, id)
}

// removeGap returns gaps less push id.
func removeGap(gaps []pushGap, id uint64) []pushGap {
	for i, g := range gaps {
		if id < g.from || id >= g.to {
			continue
		}
		switch {
		case g.to-g.from == 1:
			gaps = append(gaps[:i], gaps[i+1:]...)
		case id == g.from:
			gaps[i].from++
		case id == g.to-1:
			gaps[i].to--
		default:
			gaps = append(gaps[:i+1], gaps[i:]...)
			gaps[i].to, gaps[i+1].from = id, id+1
		}
		return gaps
	}
	return gaps
}

// unnamedLocked returns gaps (of session) less the push IDs the catalogue
// lists: a signed entry or a read that came before the gap was noticed
// (the entry of an orphan's stream, say, before the next promise showed
// that the orphan's was lost) named them, and catalogJobsLocked has them
// in hand. c.mu is held.
func (c *Client) unnamedLocked(session string, gaps []pushGap) []pushGap {
	gaps = slices.Clone(gaps)
	for i := range c.catalog {
		if e := &c.catalog[i]; e.Session == session && len(gaps) > 0 {
			gaps = removeGap(gaps, e.PushID)
		}
	}
	return gaps
}

// lostPromises handles the gaps pushSeenLocked found in session cs: kept
// until the catalogue names them when there is one, reported as missing at
// once otherwise.
func (c *Client) lostPromises(cs *csession, gaps []pushGap) {
	if len(gaps) == 0 {
		return
	}
	c.mu.Lock()
	catalogue := c.origin != nil && !c.altSvcOnly
	if catalogue {
		gaps = c.unnamedLocked(cs.id, gaps)
	}
	c.mu.Unlock()
	if !catalogue {
		for _, g := range gaps {
			c.reportGap(cs.id, g, "nothing names it: there is no catalogue")
		}
		return
	}
	if len(gaps) == 0 {
		return // named already
	}
	var over []pushGap
	cs.mu.Lock()
	cs.gaps = append(cs.gaps, gaps...)
	if n := len(cs.gaps) - maxGaps; n > 0 {
		over = append(over, cs.gaps[:n]...)
		cs.gaps = append(cs.gaps[:0], cs.gaps[n:]...)
	}
	cs.mu.Unlock()
	c.log.Info("push IDs skipped: promises lost in multicast; waiting for the catalogue to name them", "session", cs.id, "gaps", fmt.Sprint(gaps))
	// Neither a read nor a signed entry at once: the push's stream may
	// still be coming, its head lost, and a catalogue that names the push
	// now would have it fetched whole (a later push was promised), where
	// the orphan it becomes when it ends is identified and repaired
	// (orphan, which asks for its entry or reads). A push lost whole is
	// asked about after LostGrace (its signed entry, else a read: the
	// poll interval may have grown to CatalogIdlePoll). A gap of an
	// orphan whose stream came has its entry asked already.
	if !c.fetchingEntries(cs.id, gaps) {
		time.AfterFunc(c.cfg.LostGrace, func() {
			// Unless an entry (of an orphan's stream, say) named them
			// meanwhile.
			cs.mu.Lock()
			open := len(cs.gaps) > 0
			cs.mu.Unlock()
			if open {
				select {
				case c.gapsDue <- struct{}{}:
				default:
				}
			}
		})
	}
	for _, g := range over {
		c.reportGap(cs.id, g, "too many lost promises waiting for the catalogue")
	}
}

// maxReported bounds the gaps a session remembers having reported, so that
// a push stream that comes without its promise later is not reported again.
const maxReported = 64

// reportedLocked reports whether push id is in a gap reported already.
// cs.mu is held.
func (cs *csession) reportedLocked(id uint64) bool {
	for _, g := range cs.reported {
		if id >= g.from && id < g.to {
			return true
		}
	}
	return false
}

// reportGap gives up the pushes of gap g of session: nothing can name
// them, for the reason why.
func (c *Client) reportGap(session string, g pushGap, why string) {
	c.mu.Lock()
	if cs := c.sessions[session]; cs != nil {
		cs.mu.Lock()
		if len(cs.reported) == maxReported {
			cs.reported = append(cs.reported[:0], cs.reported[1:]...)
		}
		cs.reported = append(cs.reported, g)
		cs.mu.Unlock()
	}
	c.mu.Unlock()
	c.giveUp(&Delivery{Session: session, PushID: g.from,
		Err: fmt.Errorf("client: %s of session %s: promise lost in multicast, and %s (%w)", g, session, why, h3m.ErrPromiseLost)})
}

// reportGapsLocked takes the gaps of every session noticed before (zero:
// all) out for reporting. c.mu is held.
func (c *Client) takeGapsLocked(before time.Time) map[string][]pushGap {
	out := map[string][]pushGap{}
	for _, cs := range c.sessions {
		cs.mu.Lock()
		kept := cs.gaps[:0]
		for _, g := range cs.gaps {
			if before.IsZero() || g.at.Before(before) {
				out[cs.id] = append(out[cs.id], g)
			} else {
				kept = append(kept, g)
			}
		}
		cs.gaps = kept
		cs.mu.Unlock()
	}
	return out
}

// staleGaps reports the gaps the catalogue did not name within
// CatalogRetention: it can no longer list them.
func (c *Client) staleGaps(now time.Time) {
	c.mu.Lock()
	gaps := c.takeGapsLocked(now.Add(-c.cfg.CatalogRetention))
	c.mu.Unlock()
	for id, gs := range gaps {
		for _, g := range gs {
			c.reportGap(id, g, "the catalogue never named it")
		}
	}
}

// finish decides, for ExitOnEnd, whether Run returns: every session known
// has ended and been left, and either everything is settled — with an
// origin, a description read after the end said nothing more is expected
// (lost promises it did not name are then reported) — or the origin has
// not answered for OriginGrace since the end, and what is still missing is
// given up (ErrOriginGone).
func (c *Client) finish(now time.Time) bool {
	c.mu.Lock()
	if c.knownSessions == 0 {
		c.mu.Unlock()
		return false
	}
	if !c.everySessionLocked(func(cs *csession) bool { return cs.left }) {
		c.mu.Unlock()
		return false
	}
	// The read after the end may name lost promises, and announce a
	// successor (a rollover) to join.
	// A read of the sessions alone that named one the client did not
	// know leaves its entries to the next read (entriesDueSince).
	settled := c.origin == nil || (len(c.jobs) == 0 && len(c.held) == 0 && !c.entriesDueLocked() && c.catalogSettledLocked() && !c.descAt.Before(c.endAt))
	since := c.endAt
	if c.lastContact.After(since) {
		since = c.lastContact
	}
	gone := !settled && now.Sub(since) >= c.cfg.OriginGrace
	if !settled && !gone {
		c.mu.Unlock()
		return false
	}
	gaps := c.takeGapsLocked(time.Time{})
	var phantom []pushGap
	if !gone {
		gaps, phantom = c.phantomGapsLocked(gaps)
	}
	pending := len(c.jobs)
	var unlisted []*Delivery
	if gone {
		c.abandoned = fmt.Errorf("%w (waited %v)", ErrOriginGone, c.cfg.OriginGrace)
		for i := range c.catalog {
			e := &c.catalog[i]
			k := entryKey(e)
			if c.settledEntryLocked(e) || !c.expectedLocked(e) || c.jobs[k] != nil {
				continue
			}
			c.settleLocked(k, now)
			unlisted = append(unlisted, &Delivery{Path: e.Path, ETag: e.ETag, Session: e.Session, PushID: e.PushID,
				Err: fmt.Errorf("%w: %s: listed by the catalogue, not received by multicast: %w", ErrGivenUp, e.Path, c.abandoned)})
		}
	}
	c.mu.Unlock()
	if len(phantom) > 0 {
		c.log.Warn("push IDs skipped in a session that the catalogue does not name although it lists the session's pushes since before them: promises never pushed (forged?), not reported missing",
			"gaps", fmt.Sprint(phantom))
	}
	for id, gs := range gaps {
		for _, g := range gs {
			why := "the catalogue did not name it"
			if gone {
				why = "the origin stopped answering before its catalogue named it"
			}
			c.reportGap(id, g, why)
		}
	}
	for _, d := range unlisted {
		c.giveUp(d)
	}
	switch {
	case gone && (pending > 0 || len(gaps) > 0 || len(unlisted) > 0):
		// Run's return cancels the jobs still trying; each is given up as
		// it ends (finishJob).
		c.log.Warn("every session ended but the origin does not answer: giving up what is still missing", "grace", c.cfg.OriginGrace)
	case gone:
		c.log.Info("every session ended, nothing is missing, and the origin does not answer any more", "grace", c.cfg.OriginGrace)
	default:
		c.log.Info("every session ended and every resource is settled")
	}
	return true
}

// phantomGapsLocked splits gaps, read after the end, into those the
// catalogue cannot vouch for (older than any push of their session it
// lists: it may have forgotten them) and phantoms: gaps above a push it
// lists that it does not name. The origin lists every push it makes, so a
// phantom was never pushed — a key holder's promises of high push IDs —
// and reporting it missing would let a forger fail every receiver. The
// phantoms are counted (PhantomPromises). c.mu is held.
func (c *Client) phantomGapsLocked(gaps map[string][]pushGap) (real map[string][]pushGap, phantom []pushGap) {
	if len(gaps) == 0 || !c.haveCat || c.altSvcOnly {
		return gaps, nil
	}
	oldest := map[string]uint64{}
	for i := range c.catalog {
		e := &c.catalog[i]
		if p, ok := oldest[e.Session]; !ok || e.PushID < p {
			oldest[e.Session] = e.PushID
		}
	}
	real = map[string][]pushGap{}
	for id, gs := range gaps {
		first, listed := oldest[id]
		for _, g := range gs {
			if listed && g.from > first {
				phantom = append(phantom, g)
				c.stats.PhantomPromises += int(min(g.to-g.from, 1<<20))
				continue
			}
			real[id] = append(real[id], g)
		}
	}
	return real, phantom
}

// catalogSettledLocked reports whether every catalogue entry expected is
// settled.
func (c *Client) catalogSettledLocked() bool {
	for i := range c.catalog {
		e := &c.catalog[i]
		if !c.settledEntryLocked(e) && c.expectedLocked(e) {
			return false
		}
	}
	return true
}
