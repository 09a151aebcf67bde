package client

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"slices"
	"time"

	"github.com/h3m-project/h3m/unicast/wellknown"
)

// apply takes a new description into account: new sessions are joined,
// state changes recorded, the catalogue checked for resources that
// multicast did not deliver, and the pushes held before the read judged
// again (gate.go). at is when the read of d began (zero for
// Config.Sessions, which is no read of the origin's).
func (c *Client) apply(ctx context.Context, d *wellknown.Description, first bool, at time.Time) {
	now := time.Now()
	fromOrigin := !at.IsZero()
	// What this description says is known as of when its read began: an
	// end it reports needs no later read (finish).
	known := now
	if fromOrigin {
		known = at
	}
	if fromOrigin {
		c.keys.setListed(d.Keys, !d.FromAltSvc)
	}
	var catalogKey ed25519.PublicKey
	if fromOrigin && !d.FromAltSvc && d.CatalogKey != "" {
		catalogKey, _ = wellknown.ParseCatalogKey(d.CatalogKey) // Parse checked it
	}
	var joins []*csession
	var leave []context.CancelFunc
	c.mu.Lock()
	if ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	if fromOrigin {
		c.descAt = at
		c.stats.Polls++
		c.altSvcOnly = d.FromAltSvc
		c.catalogKey = catalogKey
		if !d.FromAltSvc {
			c.noteReadLocked(d, at)
		}
	}
	if first && !c.baseline {
		c.baseline = true
		if !c.cfg.CatchUp {
			// What the catalogue lists now was pushed before this client
			// existed: only later pushes are expected.
			for _, e := range d.Resources {
				if from, ok := c.expectFrom[e.Session]; !ok || e.PushID+1 > from {
					c.expectFrom[e.Session] = e.PushID + 1
				}
			}
		}
	}
	if !d.FromAltSvc && fromOrigin {
		c.mergeCatalogLocked(c.checkEntriesLocked(d), now)
		c.indexCatalogLocked()
	}
	present := make(map[string]bool, len(d.Sessions))
	for i := range d.Sessions {
		si := &d.Sessions[i]
		present[si.ID] = true
		cs := c.sessions[si.ID]
		if cs == nil {
			if si.State == wellknown.StateEnded {
				continue // over before we knew it; its catalogue entries still count
			}
			joins = append(joins, c.newSessionLocked(si, now))
			c.knownSessions++
			c.log.Info("h3m session found", "session", si.ID, "state", si.State, "group", si.Advertisement.Session.Group.String(), "successor", si.Successor)
			continue
		}
		if !sameSession(&cs.ad, &si.Advertisement) && si.State != wellknown.StateEnded {
			// The sender restarted under the same session ID with new keys
			// (or other parameters): the session joined is gone, and its
			// receiver would hear nothing it can open, for good. Leave it
			// and join the one the description describes now.
			leave = append(leave, c.replaceSessionLocked(cs, si, now))
			joins = append(joins, c.sessions[si.ID])
			continue
		}
		c.setStateLocked(cs, si.State, known)
	}
	for id, cs := range c.sessions {
		if !present[id] && fromOrigin && !c.static[id] {
			c.setStateLocked(cs, wellknown.StateEnded, known)
			cs.mu.Lock()
			gone := cs.left && len(cs.inProgress) == 0
			cs.mu.Unlock()
			if gone {
				delete(c.sessions, id) // gone from the description: forget it
				delete(c.expectFrom, id)
				for _, res := range cs.takeOrphans() {
					discard(res.Body()) // never named by the catalogue
				}
			}
		}
	}
	starts := c.catalogJobsLocked(now)
	var released []*outcome
	if fromOrigin {
		released = c.releaseHeldLocked(at, false)
	}
	c.mu.Unlock()
	for _, cancel := range leave {
		if cancel != nil {
			cancel()
		}
	}
	for _, cs := range joins {
		c.join(ctx, cs)
	}
	for _, j := range starts {
		c.startJob(ctx, j)
	}
	c.settleReleased(ctx, released)
	c.notify()
}

// newSessionLocked records the session si describes, to be joined.
func (c *Client) newSessionLocked(si *wellknown.SessionInfo, now time.Time) *csession {
	cs := &csession{id: si.ID, ad: si.Advertisement, state: si.State, joining: true, inProgress: map[uint64]string{},
		manifests: si.Manifests}
	if cs.manifests == "" {
		cs.manifests = wellknown.ManifestPath(si.ID) // an Alt-Svc-only origin may still serve them
	}
	if si.State == wellknown.StateActive {
		cs.activeSince = now
	}
	c.initDemandLocked(cs, si, now)
	c.sessions[si.ID] = cs
	return cs
}

// replaceSessionLocked replaces old, whose parameters the description no
// longer gives under its ID, by a new session of si: old is left (its
// receiver's cancel is returned, to call without the lock), its pushes in
// progress forgotten, and every push of the new one expected, from push ID
// 0 (a restarted sender counts again). Catalogue entries of the ID pushed
// before the new session was announced are the old one's: forgotten too.
func (c *Client) replaceSessionLocked(old *csession, si *wellknown.SessionInfo, now time.Time) context.CancelFunc {
	old.mu.Lock()
	old.replaced, old.left, old.leaving = true, true, true
	cancel := old.cancel
	paths := old.inProgress
	old.inProgress = map[uint64]string{}
	old.mu.Unlock()
	for _, p := range paths {
		c.unbusyLocked(p)
	}
	for _, res := range old.takeOrphans() {
		discard(res.Body())
	}
	delete(c.expectFrom, si.ID)
	since := si.Announced
	if since.IsZero() {
		since = si.Started
	}
	if !since.IsZero() {
		c.catalog = slices.DeleteFunc(c.catalog, func(e wellknown.CatalogEntry) bool { return e.Session == si.ID && e.Pushed.Before(since) })
		c.indexCatalogLocked()
	}
	c.newSessionLocked(si, now)
	c.stats.Replaced++
	c.log.Warn("session parameters changed under the same session ID (the sender restarted with new keys?): leaving the old session and joining the new one",
		"session", si.ID, "group", si.Advertisement.Session.Group.String())
	return cancel
}

// checkEntriesLocked drops the catalogue entries of d whose path is not an
// origin-form target (wellknown.ParseTarget): they would be neither fetched
// nor stored. The first is logged; all are counted in RejectedPaths.
func (c *Client) checkEntriesLocked(d *wellknown.Description) *wellknown.Description {
	kept := d.Resources[:0:0]
	for _, e := range d.Resources {
		if _, err := wellknown.ParseTarget(e.Path); err != nil {
			c.stats.RejectedPaths++
			if !c.badEntryLogged {
				c.badEntryLogged = true
				c.log.Warn("the catalogue lists a path that is not an origin-form target; skipping it (later ones are counted in RejectedPaths)", "path", wellknown.Truncate(e.Path), "err", err)
			}
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) == len(d.Resources) {
		return d
	}
	nd := *d
	nd.Resources = kept
	return &nd
}

// expectedLocked reports whether the client should have received e.
func (c *Client) expectedLocked(e *wellknown.CatalogEntry) bool {
	if e.Range != "" {
		return false // a multicast repair, listed to name its push ID
	}
	from, ok := c.expectFrom[e.Session]
	return (!ok || e.PushID >= from) && c.demandExpectedLocked(e)
}

// catalogJobsLocked returns fetch jobs for catalogue entries that multicast
// has not delivered: at once in fallback, otherwise once multicast has lost
// them (lostLocked). Entries whose path is being received or repaired wait.
func (c *Client) catalogJobsLocked(now time.Time) []*job {
	if !c.haveCat {
		return nil
	}
	var out []*job
	live := make(map[string]bool, len(c.catalog))
	// The newest push of each path listed: an older one is obsolete.
	newest := make(map[[2]string]uint64, len(c.catalog))
	for i := range c.catalog {
		e := &c.catalog[i]
		k := [2]string{e.Session, e.Path}
		if e.Range != "" {
			continue // a multicast repair supersedes nothing
		}
		if p, ok := newest[k]; !ok || e.PushID > p {
			newest[k] = e.PushID
		}
	}
	for i := range c.catalog {
		e := &c.catalog[i]
		key := entryKey(e)
		live[key], live[pushKey(e.Session, e.PushID)] = true, true
		if cs := c.sessions[e.Session]; cs != nil {
			cs.mu.Lock()
			if len(cs.gaps) > 0 {
				cs.removeGapLocked(e.PushID) // named: the catalogue's business now
			}
			cs.mu.Unlock()
		}
		if e.Range != "" {
			c.dropOrphanLocked(e) // a multicast repair that lost its head: nothing to do
			continue
		}
		if c.settledEntryLocked(e) || !c.expectedLocked(e) {
			c.dropOrphanLocked(e) // delivered otherwise, or never to be: its orphan serves nothing
			continue
		}
		if newest[[2]string{e.Session, e.Path}] > e.PushID && c.busy[e.Path] == 0 {
			// A later version of its path was pushed: nothing fetches an
			// obsolete one (a live manifest updated since).
			c.stats.Superseded++
			c.settleLocked(key, now)
			c.dropOrphanLocked(e)
			continue
		}
		first, ok := c.seen[key]
		if !ok {
			c.seen[key], first = now, now
		}
		if f := c.fetching[e.Path]; f != nil {
			f.alsoLocked(key) // the fetch under way brings it
			continue
		}
		if j := c.orphanJobLocked(e, key); j != nil {
			c.addJobLocked(j) // its body arrived: only what it lost is fetched
			out = append(out, j)
			continue
		}
		if c.busy[e.Path] > 0 || c.jobs[key] != nil || len(c.jobs) >= c.cfg.MaxJobs {
			continue
		}
		if !c.fallback && !c.lostLocked(e, first, now) {
			continue
		}
		j := &job{
			key: key, path: e.Path, etag: e.ETag, session: e.Session, pushID: e.PushID,
			expect: http.Header{}, reason: "not received by multicast",
		}
		if c.fallback {
			j.reason = "fallback"
		}
		if e.ContentDigest != "" {
			j.expect.Set("Content-Digest", e.ContentDigest)
		}
		if e.Digest != "" {
			j.expect.Set("Digest", e.Digest)
		}
		c.addJobLocked(j)
		out = append(out, j)
	}
	for k := range c.seen {
		if !live[k] {
			delete(c.seen, k)
		}
	}
	c.pruneSettledLocked(now, live)
	return out
}

// lostLocked reports whether multicast lost catalogue entry e (first listed
// at first, not delivered, its path not being received): its session's
// receiver saw the session end, or promised a later push (promises come in
// push-ID order) and PushTimeout and half LostGrace have passed since
// first, or it has been
// quiet for LostGrace — no push in progress and no event since
// e was listed. The grace is measured against the receiver's progress, not
// against the listing alone, because a receiver working through a backlog
// (a loaded machine) still brings the pushes the catalogue lists ahead of
// it.
func (c *Client) lostLocked(e *wellknown.CatalogEntry, first, now time.Time) bool {
	from := first
	if cs := c.sessions[e.Session]; cs != nil {
		cs.mu.Lock()
		later := cs.promised && cs.maxPromised > e.PushID
		working := cs.rcv != nil && len(cs.inProgress) > 0
		last := cs.lastEvent
		over := cs.sawEnd // nothing more comes
		cs.mu.Unlock()
		if over {
			return true
		}
		if later {
			// Promised pushes come in push-ID order, so this one's
			// promise was lost; but its stream may still be coming
			// without its head, to end as an orphan the catalogue then
			// identifies and repairs — when its last packet was lost
			// too, only once it has been quiet for PushTimeout. Waiting
			// that long (and half LostGrace) from the first read that
			// listed it lets it end, where a fetch now would take the
			// whole resource; a push lost whole is that much later.
			return now.Sub(first) >= c.pushTimeout()+c.cfg.LostGrace/2
		}
		if working {
			return false
		}
		if last.After(from) {
			from = last
		}
	}
	return now.Sub(from) >= c.cfg.LostGrace
}

// pushTimeout is the receivers' PushTimeout (h3m.ReceiverConfig's
// default, 5 s, when Config leaves it 0).
func (c *Client) pushTimeout() time.Duration {
	if c.cfg.PushTimeout > 0 {
		return c.cfg.PushTimeout
	}
	return 5 * time.Second
}

// mergeCatalogLocked takes the catalogue of d: all of it from a full read,
// or, from an incremental one, the entries pushed since, added to what the
// client has. Entries older than CatalogRetention, and the oldest beyond
// MaxCatalog, are forgotten.
func (c *Client) mergeCatalogLocked(d *wellknown.Description, now time.Time) {
	c.haveCat = true
	var kept []wellknown.CatalogEntry
	if d.ResourcesAfter.IsZero() && d.ResourcesFrom == 0 {
		kept = d.Resources
	} else {
		have := make(map[string]bool, len(c.catalog))
		kept = c.catalog[:0]
		for _, e := range c.catalog {
			if now.Sub(e.Pushed) < c.cfg.CatalogRetention {
				kept = append(kept, e)
				have[entryKey(&e)] = true
			}
		}
		for _, e := range d.Resources {
			if !have[entryKey(&e)] {
				kept = append(kept, e)
			}
		}
	}
	for i := range d.Resources {
		delete(c.fromEntries, entryKey(&d.Resources[i])) // a read lists it now
	}
	if over := len(kept) - c.cfg.MaxCatalog; over > 0 {
		n := copy(kept, kept[over:])
		clear(kept[n:])
		kept = kept[:n]
	}
	c.catalog = kept
}

// noteReadLocked takes the origin's number for its next catalogue entry
// from d, a read that began at at, and notes what the read accounted for.
// A read of the sessions alone lists no entries: when it names a session
// the client does not know, that session's earlier entries came in no
// read, so the number is kept and the next read lists entries from it
// (oweEntriesLocked). A read of the entries accounts for the pushes before
// the first one each session brought, if it began after that push.
func (c *Client) noteReadLocked(d *wellknown.Description, at time.Time) {
	if c.lastQuery == sessionsOnlyQuery {
		for i := range d.Sessions {
			if c.sessions[d.Sessions[i].ID] == nil {
				c.oweEntriesLocked(at)
			}
		}
		if c.entriesDueLocked() {
			return
		}
		c.catalogNext = d.CatalogNext
		return
	}
	c.catalogNext = d.CatalogNext
	if !at.Before(c.entriesDueSince) {
		c.entriesDueSince = time.Time{} // paid
	}
	for _, cs := range c.sessions {
		cs.mu.Lock()
		if cs.promised && !cs.leadRead && at.After(cs.firstAt) {
			cs.leadRead = true
		}
		cs.mu.Unlock()
	}
}

// oweEntriesLocked records that the next reads must list the entries from
// catalogNext until one that began at or after since has come.
func (c *Client) oweEntriesLocked(since time.Time) {
	if since.After(c.entriesDueSince) {
		c.entriesDueSince = since
	}
}

// entriesDueLocked reports whether a read of the entries is owed
// (oweEntriesLocked).
func (c *Client) entriesDueLocked() bool { return !c.entriesDueSince.IsZero() }
