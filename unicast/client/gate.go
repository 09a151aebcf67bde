package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// What a push that settled asks of the client (outcome.kind).
type outcomeKind int

const (
	outDeliver outcomeKind = iota // complete: deliver it
	outRepair                     // lost bytes: repair them with range requests
	outFetch                      // failed: fetch the resource whole
)

// outcome is a settled push of a session, before the client acts on it.
// Whatever a key holder of a symmetric session forges arrives this way, so
// the catalogue, which comes from the origin over TLS, has a say first
// (settle): a resource must be the representation the catalogue lists as
// current for its path, and unicast work is done only for paths the
// catalogue lists.
type outcome struct {
	kind     outcomeKind
	cs       *csession
	res      *h3m.Resource
	path     string
	h        http.Header // the pushed fields, trailers merged (nil: none arrived)
	verifier *h3m.Verifier
	why      error     // outFetch: why the push failed
	d        *Delivery // outDeliver
	// at is when the outcome was first judged and held; reads counts the
	// catalogue reads that started after at and completed. The origin lists
	// a push as soon as it has sent it, so the first such read almost
	// always knows of it; the outcome is refused only after the second
	// (freshReads), so that a push listed a moment late is not.
	at    time.Time
	reads int
	// entryAsked: its signed catalogue entry was asked for (hold).
	entryAsked bool
}

// freshReads is how many catalogue reads started after a push was held
// must disagree with it before it is refused.
const freshReads = 2

// The verdicts of the catalogue on an outcome.
type verdict int

const (
	vAct      verdict = iota // matches (or nothing to compare): act on it
	vStale                   // another representation is current for the path
	vUnlisted                // unicast work for a path the catalogue does not list
)

// settle acts on o once the catalogue agrees: at once when it does (or
// when the client has no catalogue: an origin that serves no description);
// otherwise o is held until a catalogue read that started after it, and
// refused if that read does not agree either. Under a flood of forged
// promises this bounds the requests to the origin by what the catalogue
// lists, not by what is promised.
func (c *Client) settle(ctx context.Context, o *outcome) {
	c.mu.Lock()
	if ctx.Err() != nil {
		c.mu.Unlock()
		o.discard()
		return
	}
	if !c.haveCat {
		c.mu.Unlock()
		c.act(ctx, o)
		return
	}
	cur, listed := c.currentLocked(o.path)
	c.mu.Unlock()
	v := judge(o, cur, listed)
	switch {
	case v == vAct:
		c.act(ctx, o)
	case o.reads < freshReads:
		c.hold(ctx, o)
	case v == vStale:
		c.count(func(st *Stats) { st.Stale++ })
		args := []any{"path", wellknown.Truncate(o.path), "session", o.cs.id, "push_id", o.res.PushID, "etag", o.h.Get("Etag"), "current_etag", cur.ETag}
		if cur.Session == o.cs.id && cur.PushID > o.res.PushID {
			// Older than the current version's push: most likely a live
			// manifest updated since, not worth a warning (a replay with
			// an old push ID is refused all the same).
			c.log.Debug("not delivering a push: the catalogue lists a later version of its path as current", args...)
		} else {
			c.staleLog.Bit(c.log, slog.LevelWarn, "refusing a push: the catalogue lists another representation of its path as current (a replayed older version?); the current one comes from the catalogue", args...)
		}
		o.discard()
	default:
		// A forged promise, or a push the origin had not listed yet: if
		// it lists it later, the catalogue has it fetched. The reads owe
		// it their entries until one lists them from here: a read of the
		// sessions alone (after the end, missesNothingLocked) would step
		// over an entry added late, and the push would be lost unsaid.
		c.mu.Lock()
		c.oweEntriesLocked(time.Now())
		c.mu.Unlock()
		c.count(func(st *Stats) { st.Unlisted++ })
		c.unlistedLog.Bit(c.log, slog.LevelInfo, "not fetching a pushed path the catalogue does not list; left to the catalogue",
			"path", wellknown.Truncate(o.path), "session", o.cs.id, "push_id", o.res.PushID)
		o.discard()
	}
}

// hold keeps o until the next catalogue read, or drops it when MaxHeld
// outcomes are held already.
func (c *Client) hold(ctx context.Context, o *outcome) {
	c.mu.Lock()
	if len(c.held) >= c.cfg.MaxHeld {
		c.stats.HeldDropped++
		c.mu.Unlock()
		c.heldLog.Bit(c.log, slog.LevelWarn, "too many pushes wait for the catalogue; dropping one (the catalogue's own entries are still fetched)",
			"path", wellknown.Truncate(o.path), "max_held", c.cfg.MaxHeld)
		o.discard()
		return
	}
	if o.at.IsZero() {
		o.at = time.Now()
	}
	c.held = append(c.held, o)
	c.busy[o.path]++
	c.mu.Unlock()
	if !o.entryAsked {
		// Its signed entry, through the caches, is the cheapest word of
		// the catalogue (signedentries.go); asked once, so that an entry
		// that disagrees leaves the outcome to the reads.
		o.entryAsked = true
		if c.fetchEntries(ctx, o.cs.id, []uint64{o.res.PushID}) {
			return
		}
	}
	select {
	case c.pollNow <- struct{}{}:
	default:
	}
}

// releaseHeldLocked returns the outcomes held before a catalogue read that
// started at started (and has completed), counting the read; with jobsOnly
// (the read failed), only the outcomes that ask for unicast work.
func (c *Client) releaseHeldLocked(started time.Time, jobsOnly bool) []*outcome {
	out := c.takeHeldLocked(func(o *outcome) bool {
		return o.at.Before(started) && (!jobsOnly || o.kind != outDeliver)
	})
	for _, o := range out {
		o.reads++
	}
	return out
}

// takeHeldLocked removes the held outcomes match picks and returns them,
// their paths still busy: settleReleased (or actReleased) hands each on,
// then frees its path, so that no catalogue pass in between takes it for
// a push not received.
func (c *Client) takeHeldLocked(match func(*outcome) bool) []*outcome {
	var out []*outcome
	kept := c.held[:0]
	for _, o := range c.held {
		if match(o) {
			out = append(out, o)
		} else {
			kept = append(kept, o)
		}
	}
	clear(c.held[len(kept):])
	c.held = kept
	return out
}

// unchecked acts on the repairs and fetches held before a catalogue read
// that started at started and failed: with the description unreadable
// (the origin down, or serving files but not its description), the
// catalogue cannot vouch for them, and holding them would leave resources
// unrepaired for as long as it lasts. They are still bounded by MaxJobs
// and merged by path; complete resources stay held until a read succeeds.
func (c *Client) unchecked(ctx context.Context, started time.Time) {
	c.mu.Lock()
	released := c.releaseHeldLocked(started, true)
	c.mu.Unlock()
	for _, o := range released {
		c.act(ctx, o)
		c.unbusy(o.path)
	}
}

// settleReleased settles the outcomes takeHeldLocked released, freeing
// each one's path once it is handed on.
func (c *Client) settleReleased(ctx context.Context, released []*outcome) {
	for _, o := range released {
		c.settle(ctx, o)
		c.unbusy(o.path)
	}
}

// dropHeld discards what is held (the client stops).
func (c *Client) dropHeld() {
	c.mu.Lock()
	held := c.held
	c.held = nil
	c.mu.Unlock()
	for _, o := range held {
		o.discard()
	}
}

// act does what o asks.
func (c *Client) act(ctx context.Context, o *outcome) {
	switch o.kind {
	case outDeliver:
		if !c.deliver(o.d) {
			discard(o.d.Body)
		}
	case outRepair:
		c.startRepair(ctx, o.cs, o.verifier, o.res, o.path, o.h)
	case outFetch:
		c.startFetch(ctx, o.cs, o.res, o.path, o.h, o.why)
	}
}

func (o *outcome) discard() {
	if o.kind == outDeliver {
		discard(o.d.Body)
	} else if o.kind == outRepair {
		discard(o.res.Body())
	}
}

// indexCatalogLocked records, for each path, the catalogue's current entry:
// the one pushed last.
func (c *Client) indexCatalogLocked() {
	clear(c.current)
	for i := range c.catalog {
		e := &c.catalog[i]
		if e.Range != "" {
			continue // a multicast repair: part of a representation listed on its own
		}
		if j, ok := c.current[e.Path]; !ok || !c.catalog[j].Pushed.After(e.Pushed) {
			c.current[e.Path] = i
		}
	}
}

// currentLocked returns a copy of the catalogue's current entry for path.
func (c *Client) currentLocked(path string) (wellknown.CatalogEntry, bool) {
	i, ok := c.current[path]
	if !ok {
		return wellknown.CatalogEntry{}, false
	}
	return c.catalog[i], true
}

// judge compares outcome o with the catalogue's current entry for its path
// (listed: there is one). A complete resource must be that representation:
// its digests (which the receiver checked against the body) must agree with
// the entry's, or, when they share no algorithm, its body must match the
// entry's digest, or, when the entry lists none, its ETag the entry's. A
// resource of a path the catalogue does not list is delivered (there is
// nothing to compare), but no unicast work is done for one: the origin does
// not vouch for it. Work for a listed path is done unless the push names
// another representation.
func judge(o *outcome, cur wellknown.CatalogEntry, listed bool) verdict {
	if !listed {
		if o.kind == outDeliver {
			return vAct
		}
		return vUnlisted
	}
	var body io.ReaderAt
	var size int64
	if o.kind == outDeliver && o.d.Status == http.StatusOK {
		body, size = o.d.Body, o.d.Size
	}
	if sameRepresentation(&cur, o.h, body, size) {
		return vAct
	}
	return vStale
}

// sameRepresentation reports whether fields h (and body, the whole content
// of size bytes, when not nil) are those of catalogue entry e, by the
// strongest evidence both offer: digests, then the body against the entry's
// digests, then the ETag. With nothing to compare it reports true.
func sameRepresentation(e *wellknown.CatalogEntry, h http.Header, body io.ReaderAt, size int64) bool {
	for _, f := range []struct {
		entry, pushed string
		parse         func(string) ([]integrity.DigestValue, error)
	}{
		{e.ContentDigest, h.Get(integrity.FieldContentDigest), integrity.ParseContentDigest},
		{e.Digest, h.Get(integrity.FieldDigest), integrity.ParseDigest},
	} {
		if f.entry == "" || f.pushed == "" {
			continue
		}
		if same, comparable := sameDigests(f.entry, f.pushed, f.parse); comparable {
			return same
		}
	}
	if body != nil {
		for _, f := range []struct {
			entry  string
			verify func(string, io.Reader, []string) error
		}{
			{e.ContentDigest, integrity.VerifyContentDigest},
			{e.Digest, integrity.VerifyDigest},
		} {
			if f.entry == "" {
				continue
			}
			err := f.verify(f.entry, io.NewSectionReader(body, 0, size), nil)
			if !errors.Is(err, integrity.ErrNoSupportedDigest) {
				return err == nil
			}
		}
	}
	if et := h.Get("Etag"); e.ETag != "" && et != "" {
		return et == e.ETag
	}
	return true
}

// sameDigests compares two values of one digest field: comparable when
// they carry a supported algorithm in common, same when every such
// algorithm agrees.
func sameDigests(a, b string, parse func(string) ([]integrity.DigestValue, error)) (same, comparable bool) {
	av, err1 := parse(a)
	bv, err2 := parse(b)
	if err1 != nil || err2 != nil {
		return false, false
	}
	for _, x := range av {
		xa, ok := integrity.CanonicalDigestAlgorithm(x.Algorithm)
		if !ok || x.Value == nil {
			continue
		}
		for _, y := range bv {
			if ya, ok := integrity.CanonicalDigestAlgorithm(y.Algorithm); ok && ya == xa && y.Value != nil {
				if !bytes.Equal(x.Value, y.Value) {
					return false, true
				}
				comparable = true
			}
		}
	}
	return comparable, comparable
}
