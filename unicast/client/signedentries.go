package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/h3m-project/h3m/unicast/wellknown"
)

// Signed catalogue entries (spec/unicast.md, "Signed catalogue entries"):
// a push the client holds for the catalogue's word, or a push ID whose
// promise was lost, needs one entry of the catalogue, not a read of the
// origin's description. When the origin signs its entries (the
// description's CatalogKey, which came over TLS) and lists caches, the
// client asks the caches for that entry: the caches fetch it from the
// origin once for every receiver, and its signature, not the cache, proves
// it. An entry no cache has, or whose signature fails, leaves the matter
// to the next read of the description, as without caches.

// maxEntryFetches bounds the signed entries one event asks for, and the
// fetches under way.
const maxEntryFetches = 16

// signedEntryKey names push pushID of session among the entries fetched.
func signedEntryKey(session string, pushID uint64) string {
	return wellknown.CatalogEntryPath(session, pushID)
}

// fetchEntries starts fetching the signed entries of the push IDs of
// session the client's catalogue does not list, through the caches. It
// reports whether it could (the origin signs entries and the client has
// caches): if not, the caller reads the description instead.
func (c *Client) fetchEntries(ctx context.Context, session string, ids []uint64) bool {
	refs := make([]wellknown.EntryRef, len(ids))
	for i, id := range ids {
		refs[i] = wellknown.EntryRef{Session: session, PushID: id}
	}
	return c.fetchRefs(ctx, refs)
}

// fetchStreamEntry starts fetching, through the caches, the signed entry
// of the push that stream streamID of session carried: an orphan that lost
// its push ID with its stream's first packet knows no more of itself. Its
// entry names the push, identifies the orphan and fills the gap its lost
// promise left, as a read of the entries would (orphan). It reports
// whether it could, as fetchEntries does.
func (c *Client) fetchStreamEntry(ctx context.Context, session string, streamID uint64) bool {
	if streamID == 0 {
		return false
	}
	return c.fetchRefs(ctx, []wellknown.EntryRef{{Session: session, StreamID: streamID, ByStream: true}})
}

// fetchRefs starts fetching the signed entries refs name that the
// client's catalogue does not list and that are not on their way already,
// at most maxEntryFetches at a time (fetchEntries).
func (c *Client) fetchRefs(ctx context.Context, refs []wellknown.EntryRef) bool {
	if len(refs) == 0 || c.tier.count() == 0 {
		return false
	}
	c.mu.Lock()
	key := c.catalogKey
	var start []wellknown.EntryRef
	if key != nil {
		for _, ref := range refs {
			k := ref.Path()
			if c.entryFetching[k] || len(c.entryFetching) >= maxEntryFetches || c.listsRefLocked(ref) {
				continue
			}
			c.entryFetching[k] = true
			start = append(start, ref)
		}
	}
	c.mu.Unlock()
	if key == nil {
		return false
	}
	for _, ref := range start {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.fetchEntry(ctx, ref)
		}()
	}
	return true
}

// listsPushLocked reports whether the catalogue lists push pushID of
// session.
func (c *Client) listsPushLocked(session string, pushID uint64) bool {
	return c.listsRefLocked(wellknown.EntryRef{Session: session, PushID: pushID})
}

// listsRefLocked reports whether the catalogue lists the entry ref names.
func (c *Client) listsRefLocked(ref wellknown.EntryRef) bool {
	for i := range c.catalog {
		if ref.Names(&c.catalog[i]) {
			return true
		}
	}
	return false
}

// fetchEntry asks each cache that is up, in order, for the signed entry
// ref names, and takes the first that verifies. When none does, the
// description is read.
func (c *Client) fetchEntry(ctx context.Context, ref wellknown.EntryRef) {
	target := ref.Target()
	defer func() {
		c.mu.Lock()
		delete(c.entryFetching, target.Path)
		last := len(c.entryFetching) == 0 && !c.endAt.IsZero()
		c.mu.Unlock()
		if last {
			// The read after the end may have waited for this one
			// (entriesBeforeEndRead).
			select {
			case c.pollNow <- struct{}{}:
			default:
			}
		}
	}()
	c.tier.mu.Lock()
	var bases []*repairBase
	now := time.Now()
	for _, b := range c.tier.bases {
		if !now.Before(b.downUntil) {
			bases = append(bases, b)
		}
	}
	c.tier.mu.Unlock()
	for _, b := range bases {
		e, err := c.askEntry(ctx, target.On(b.url).String(), ref)
		if err == nil {
			c.takeEntry(ctx, e)
			return
		}
		if ctx.Err() != nil {
			return
		}
		var se *StatusError
		switch {
		case errors.As(err, &se) && se.Code < 500:
			// Not listed yet where the cache looked: the next may have it.
			c.log.Debug("a cache has no such catalogue entry", "cache", b.url.String(), "entry", target.Path, "err", err)
		case errors.Is(err, wellknown.ErrEntrySignature) || errors.Is(err, wellknown.ErrMalformed):
			c.count(func(st *Stats) { st.CacheRejected++ })
			c.log.Warn("a cache's catalogue entry failed its signature or checks; asking the next", "cache", b.url.String(), "entry", target.Path, "err", err)
		default:
			c.tier.mu.Lock()
			b.downUntil = time.Now().Add(cacheDownFor)
			c.tier.mu.Unlock()
			c.count(func(st *Stats) { st.CacheErrors++ })
			c.log.Info("a cache did not answer; using the next repair URL", "cache", b.url.String(), "err", err)
		}
	}
	select {
	case c.pollNow <- struct{}{}:
	default:
	}
}

// askEntry fetches and verifies at u the signed entry ref names.
func (c *Client) askEntry(ctx context.Context, u string, ref wellknown.EntryRef) (*wellknown.CatalogEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	c.count(func(st *Stats) { st.CacheRequests++ })
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &StatusError{Path: ref.Path(), Code: resp.StatusCode, Status: resp.Status}
	}
	b, err := io.ReadAll(io.LimitReader(&cacheBody{resp.Body, c}, wellknown.MaxSignedEntrySize+1))
	if err != nil {
		return nil, fmt.Errorf("client: reading a catalogue entry: %w", err)
	}
	c.mu.Lock()
	key := c.catalogKey
	c.mu.Unlock()
	return wellknown.VerifyCatalogEntryRef(key, b, ref)
}

// fetchGapEntries asks the caches for the signed entries of the push IDs
// whose promises were lost LostGrace or more before now, or before their
// session's in-band end (which settles every stream still coming: none
// can become an orphan later), and that nothing has named (lostPromises):
// each entry names its push as a read would, and the client judges it
// lost on its own clock (monitor, takeEntry). It reports whether it could
// ask for every one of them (or there was none); if not, a read must say.
func (c *Client) fetchGapEntries(ctx context.Context, now time.Time) bool {
	var refs []wellknown.EntryRef
	c.mu.Lock()
	room := maxEntryFetches - len(c.entryFetching)
	fits := c.catalogKey != nil
	for _, cs := range c.sessions {
		cs.mu.Lock()
		for _, g := range cs.gaps {
			if now.Sub(g.at) < c.cfg.LostGrace && !cs.sawEnd {
				continue // its own turn comes
			}
			if g.to-g.from > uint64(room-len(refs)) {
				fits = false
				break
			}
			for id := g.from; id < g.to; id++ {
				refs = append(refs, wellknown.EntryRef{Session: cs.id, PushID: id})
			}
		}
		cs.mu.Unlock()
	}
	c.mu.Unlock()
	if !fits {
		return false
	}
	return len(refs) == 0 || c.fetchRefs(ctx, refs)
}

// fetchingEntries reports whether the signed entries of every push ID of
// gaps are being fetched.
func (c *Client) fetchingEntries(session string, gaps []pushGap) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, g := range gaps {
		for id := g.from; id < g.to; id++ {
			if !c.entryFetching[signedEntryKey(session, id)] {
				return false
			}
		}
	}
	return true
}

// takeEntry adds a verified entry to the catalogue, judges again the
// pushes held for it, repairs the orphan it names and closes the gap it
// names (catalogJobsLocked). A push it names that does not count as lost
// yet (lostLocked) waits for the monitor: one whose stream is still
// coming, its head lost, is then identified as an orphan and repaired,
// not fetched whole.
func (c *Client) takeEntry(ctx context.Context, e *wellknown.CatalogEntry) {
	c.mu.Lock()
	if ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	c.stats.CatalogEntries++
	if !c.listsPushLocked(e.Session, e.PushID) {
		c.catalog = append(c.catalog, *e)
		c.fromEntries[entryKey(e)] = true
		c.indexCatalogLocked()
	}
	// The catalogue's jobs, as after a read: the orphan it names is
	// repaired, and a push it names that counts as lost (lostLocked) is
	// fetched; one whose stream may still be coming waits (monitor).
	starts := c.catalogJobsLocked(time.Now())
	released := c.takeHeldLocked(func(o *outcome) bool { return o.cs.id == e.Session && o.res.PushID == e.PushID })
	c.mu.Unlock()
	for _, j := range starts {
		c.startJob(ctx, j)
	}
	c.settleReleased(ctx, released)
	c.notify()
}
