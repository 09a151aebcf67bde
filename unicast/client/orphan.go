package client

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// This file handles orphan push streams: pushes whose promise or header
// section was lost with a packet while their body arrived. The receiver
// keeps their bytes (h3m.ReceiverConfig.KeepOrphans); the catalogue, which
// names each push's session, push ID and stream ID, identifies them; and
// only the body bytes that did not arrive are repaired. The catalogue gate
// holds: an orphan is acted on only as the catalogue entry it matches, and
// its repaired body is checked against that entry's digests.

// maxOrphans bounds the orphans a session keeps waiting for the catalogue
// (the oldest is dropped first: its resource is then fetched whole).
const maxOrphans = 256

// orphan handles EventOrphan: res is kept until a catalogue entry names
// it (at once when the catalogue already does).
func (c *Client) orphan(ctx context.Context, cs *csession, res *h3m.Resource) {
	_, idKnown := res.Orphan()
	if resp := res.Response(); resp != nil && resp.Status == http.StatusNoContent && res.ConnectionClose() {
		discard(res.Body()) // the empty push that ends the session: no loss
		return
	}
	if resp := res.Response(); isRepairPush(res) || resp != nil && resp.Status == http.StatusPartialContent {
		discard(res.Body()) // a multicast repair (partial content) that lost its promise or header section
		return
	}
	c.count(func(st *Stats) { st.Orphans++ })
	now := time.Now()
	var promisedPath string
	promised := false
	cs.mu.Lock()
	cs.lastEvent = now
	if idKnown {
		if promisedPath, promised = cs.inProgress[res.PushID]; promised {
			delete(cs.inProgress, res.PushID)
		}
	}
	var dropped *h3m.Resource
	if len(cs.orphans) >= maxOrphans {
		dropped = cs.orphans[0]
		cs.orphans = slices.Delete(cs.orphans, 0, 1)
	}
	cs.orphans = append(cs.orphans, res)
	cs.mu.Unlock()
	if dropped != nil {
		discard(dropped.Body())
		c.log.Info("too many orphan push streams wait for the catalogue; dropping the oldest (its resource will be fetched whole)", "session", cs.id, "max", maxOrphans)
	}
	viaEntry := false
	if promised {
		c.mu.Lock()
		c.unbusyLocked(promisedPath)
		c.mu.Unlock()
	} else if idKnown {
		// Its stream is here: its signed entry, through the caches,
		// identifies it without a read (signedentries.go).
		viaEntry = c.fetchEntries(ctx, cs.id, []uint64{res.PushID})
		c.promiseLost(cs, res.PushID)
	} else {
		// Its push ID was lost with its stream's first packet: the
		// signed entry of its stream names it (and the gap its lost
		// promise left, if it was lost too), without a read of every
		// entry since the last.
		viaEntry = c.fetchStreamEntry(ctx, cs.id, res.StreamID)
	}
	c.log.Debug("orphan push stream: waiting for the catalogue to identify it", "session", cs.id, "stream", res.StreamID, "push_id_known", idKnown, "push_id", res.PushID)
	c.mu.Lock()
	starts := c.catalogJobsLocked(now)
	c.mu.Unlock()
	for _, j := range starts {
		c.startJob(ctx, j)
	}
	if !viaEntry {
		c.pollSoon() // its entry may not be listed yet
	}
}

// takeOrphans removes and returns the orphans of cs.
func (cs *csession) takeOrphans() []*h3m.Resource {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	out := cs.orphans
	cs.orphans = nil
	return out
}

// dropOrphans discards the orphans no catalogue entry named (the client
// stops).
func (c *Client) dropOrphans() {
	for _, cs := range c.sessionList() {
		for _, res := range cs.takeOrphans() {
			discard(res.Body())
		}
	}
}

// hasOrphans reports whether orphans of cs wait for the catalogue.
func (cs *csession) hasOrphans() bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return len(cs.orphans) > 0
}

// dropOrphanLocked discards the orphan that catalogue entry e names, if
// any (a multicast repair, which is not repaired in turn).
func (c *Client) dropOrphanLocked(e *wellknown.CatalogEntry) {
	cs := c.sessions[e.Session]
	if cs == nil {
		return
	}
	cs.mu.Lock()
	i := slices.IndexFunc(cs.orphans, func(r *h3m.Resource) bool { return namedBy(r, e) })
	var res *h3m.Resource
	if i >= 0 {
		res = cs.orphans[i]
		cs.orphans = slices.Delete(cs.orphans, i, i+1)
	}
	cs.mu.Unlock()
	if res != nil {
		discard(res.Body())
	}
}

// namedBy reports whether catalogue entry e names orphan r: by push ID
// when r's arrived, else by stream ID.
func namedBy(r *h3m.Resource, e *wellknown.CatalogEntry) bool {
	if _, known := r.Orphan(); known {
		return r.PushID == e.PushID
	}
	return e.StreamID != 0 && r.StreamID == e.StreamID
}

// orphanJobLocked returns a repair job for catalogue entry e (key is its
// entryKey) from an orphan of its session that e names — by push ID, or by
// stream ID for one whose push ID was lost — or nil when none does or the
// orphan does not fit e (then it is dropped, and e fetched whole).
func (c *Client) orphanJobLocked(e *wellknown.CatalogEntry, key string) *job {
	cs := c.sessions[e.Session]
	if cs == nil {
		return nil
	}
	cs.mu.Lock()
	i := slices.IndexFunc(cs.orphans, func(r *h3m.Resource) bool { return namedBy(r, e) })
	if i < 0 {
		cs.mu.Unlock()
		return nil
	}
	res := cs.orphans[i]
	// A promise whose stream was this orphan (its push ID lost with the
	// stream's first packet) is no longer being received.
	path, promised := cs.inProgress[e.PushID]
	if promised {
		delete(cs.inProgress, e.PushID)
	}
	if promised {
		c.unbusyLocked(path)
	}
	if c.busy[e.Path] > 0 || c.jobs[key] != nil || len(c.jobs) >= c.cfg.MaxJobs {
		// Another push of its path is being received, or the entry is
		// being fetched: the orphan waits, as the entry does.
		cs.mu.Unlock()
		return nil
	}
	cs.orphans = slices.Delete(cs.orphans, i, i+1)
	verifier, prof := cs.verifier, h3m.ProfileOf(&cs.ad)
	cs.mu.Unlock()
	fetchWhole := func(why string, args ...any) *job {
		discard(res.Body())
		c.stats.OrphansFetched++
		c.log.Info("fetching whole a resource whose push lost its promise or header section: "+why,
			append([]any{"path", wellknown.Truncate(e.Path), "session", e.Session, "push_id", e.PushID}, args...)...)
		return nil
	}
	if resp := res.Response(); resp != nil && !sameRepresentation(e, h3frame.MergeTrailer(resp.Header, res.Trailer()), nil, 0) {
		return fetchWhole("the catalogue lists another representation under its push ID")
	}
	req := &h3frame.Request{Method: http.MethodGet, Scheme: "https", Authority: c.origin.Host, Path: e.Path}
	if err := res.Adopt(e.PushID, req, &h3frame.Response{Status: http.StatusOK, Header: entryHeader(e)}); err != nil {
		return fetchWhole("its body bytes do not fit the catalogue entry", "err", err)
	}
	h := h3frame.MergeTrailer(res.Response().Header, res.Trailer())
	first, length, total := res.Span()
	missing := res.Missing()
	var lost uint64
	for _, r := range missing {
		lost += r.Len()
	}
	j := &job{
		key: key, path: e.Path, etag: e.ETag, repair: true, reason: "orphan push stream",
		res: res, verifier: verifier, session: e.Session, pushID: e.PushID, prof: prof, header: h,
		first: first, length: length, total: total,
		remaining: c.alignRepair(mergeRanges(missing, uint64(c.cfg.MergeGap)), first, length, total, h),
	}
	j.d.LostBytes = int64(lost)
	j.d.Promised = res.Promised()
	j.d.RepairRanges = slices.Clone(j.remaining)
	c.stats.OrphansMatched++
	c.log.Debug("orphan push stream identified by the catalogue; repairing what it lost", "path", e.Path, "session", e.Session, "push_id", e.PushID, "stream", res.StreamID, "lost", lost)
	return j
}

// entryHeader is the header section a catalogue entry gives for its
// representation: what an orphan that lost its own is checked against.
func entryHeader(e *wellknown.CatalogEntry) http.Header {
	h := http.Header{"Content-Length": {strconv.FormatInt(e.Size, 10)}}
	for k, v := range map[string]string{"Etag": e.ETag, "Content-Digest": e.ContentDigest, "Digest": e.Digest, "Content-Type": e.ContentType} {
		if v != "" {
			h.Set(k, v)
		}
	}
	return h
}
