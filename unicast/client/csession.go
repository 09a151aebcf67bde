package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/unicast/internal/trace"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ErrSymmetricSession is the join error of a symmetric session when the
// client requires asymmetric authentication.
var ErrSymmetricSession = errors.New("client: refused: the session is symmetric and asymmetric authentication is required")

// csession is the client's view of one multicast session.
type csession struct {
	id    string
	ad    altsvc.Advertisement
	state wellknown.SessionState

	activeSince time.Time // when the client learnt it is active
	endedAt     time.Time // when the client learnt it ended

	rcv       *h3m.Receiver
	verifier  *h3m.Verifier // the checks of its resources (repairs too)
	refused   bool          // symmetric, and the client requires asymmetric
	manifests string        // path of its manifests on the origin
	cancel    context.CancelFunc
	joining   bool
	leaving   bool
	joinedAt  time.Time
	joinErr   error
	probeAt   time.Time // next join attempt after a failure

	packets    uint64 // transport packets counted at the last check
	lastPacket time.Time

	sawEnd bool // the receiver saw the session end
	left   bool // left for good

	inProgress map[uint64]string // push ID -> path of pushes being received
}

// apply takes a new description into account: new sessions are joined,
// state changes recorded, and the catalogue checked for resources that
// multicast did not deliver.
func (c *Client) apply(d *wellknown.Description, first bool) {
	now := time.Now()
	c.keys.setListed(d.Keys, !d.FromAltSvc)
	var joins []*csession
	c.mu.Lock()
	if c.ctx.Err() != nil {
		c.mu.Unlock()
		return
	}
	c.descAt = now
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
	if !d.FromAltSvc {
		c.mergeCatalogLocked(d, now)
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
			cs = &csession{id: si.ID, ad: si.Advertisement, state: si.State, joining: true, inProgress: map[uint64]string{},
				manifests: si.Manifests}
			if cs.manifests == "" {
				cs.manifests = wellknown.ManifestPath(si.ID) // an Alt-Svc-only origin may still serve them
			}
			if si.State == wellknown.StateActive {
				cs.activeSince = now
			}
			c.sessions[si.ID] = cs
			c.knownSessions++
			joins = append(joins, cs)
			c.log.Info("h3m session found", "session", si.ID, "state", si.State, "group", si.Advertisement.Session.Group.String(), "successor", si.Successor)
			continue
		}
		if !sameSession(&cs.ad, &si.Advertisement) {
			c.log.Error("session parameters changed under the same session ID; keeping the first ones", "session", si.ID)
			continue
		}
		c.setStateLocked(cs, si.State, now)
	}
	for id, cs := range c.sessions {
		if !present[id] {
			c.setStateLocked(cs, wellknown.StateEnded, now)
			if cs.left && len(cs.inProgress) == 0 {
				delete(c.sessions, id) // gone from the description: forget it
			}
		}
	}
	starts := c.catalogJobsLocked(now)
	c.mu.Unlock()
	for _, cs := range joins {
		c.join(cs)
	}
	for _, j := range starts {
		c.startJob(j)
	}
}

// sameSession compares the session parameters of two advertisements of one
// session (ma may differ between responses).
func sameSession(a, b *altsvc.Advertisement) bool {
	x, y := *a, *b
	x.MaxAge, x.HasMaxAge, x.Params = 0, false, nil
	y.MaxAge, y.HasMaxAge, y.Params = 0, false, nil
	return x.Equal(&y)
}

func (c *Client) setStateLocked(cs *csession, st wellknown.SessionState, now time.Time) {
	if cs.state == st || cs.state == wellknown.StateEnded {
		return
	}
	switch st {
	case wellknown.StateActive:
		cs.activeSince = now
	case wellknown.StateEnded:
		cs.endedAt = now
		c.endAt = now
	}
	c.log.Info("h3m session state", "session", cs.id, "from", cs.state, "to", st)
	cs.state = st
}

// join opens a multicast socket for cs and starts its receiver. A failure
// is retried every ProbeInterval (the monitor treats it as missing
// multicast).
func (c *Client) join(cs *csession) {
	c.mu.Lock()
	ctx := c.ctx
	if cs.left || cs.rcv != nil || ctx.Err() != nil {
		cs.joining = false
		c.mu.Unlock()
		return
	}
	cs.joining = true
	c.mu.Unlock()

	fail := func(err error) {
		c.mu.Lock()
		repeated := cs.joinErr != nil && cs.joinErr.Error() == err.Error()
		cs.joining, cs.joinErr, cs.probeAt = false, err, time.Now().Add(c.cfg.ProbeInterval)
		c.stats.JoinErrors++
		c.mu.Unlock()
		level := slog.LevelWarn
		if repeated {
			level = slog.LevelDebug // said already; keep probing quietly
		}
		c.log.Log(context.Background(), level, "joining the multicast session failed; will retry", "session", cs.id, "in", c.cfg.ProbeInterval, "err", err)
	}
	p := cs.ad.Session
	asym := p.HasExtension(manifest.ExtensionID)
	if c.cfg.RequireAsymmetric && !asym {
		c.mu.Lock()
		first := !cs.refused
		cs.refused, cs.joining, cs.joinErr = true, false, fmt.Errorf("%w: session %s", ErrSymmetricSession, cs.id)
		cs.probeAt = time.Now().Add(c.cfg.ProbeInterval)
		if first {
			c.stats.Refused++
		}
		c.mu.Unlock()
		if first {
			c.log.Error("refusing to join a symmetric multicast session: asymmetric authentication is required (any receiver of a symmetric session can forge its packets); its resources will come over unicast",
				"session", cs.id, "group", p.Group.String())
		}
		return
	}
	if len(c.keys.listedIDs()) > 0 {
		// Resource signatures are checked on the receive path, which
		// never waits for the network: have the keys before the pushes.
		kctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
		c.keys.prefetch(kctx)
		cancel()
	}
	verifier := c.verifier()
	conn, err := mcast.ListenReceiver(mcast.Config{Group: p.Group, Source: p.Source, Interface: c.cfg.Interface, RecvBuffer: c.cfg.RecvBuffer, Logger: c.log})
	if err != nil {
		fail(err)
		return
	}
	rec := trace.Start(c.cfg.Tracer, p.SessionID)
	tc := c.transportConfig()
	tc.Tracer = rec
	rcv, err := h3m.NewReceiver(conn, h3m.ReceiverConfig{
		Session:         p,
		Profile:         h3m.ProfileOf(&cs.ad),
		Storage:         c.storage,
		MaxResourceSize: c.cfg.MaxResourceSize,
		PushTimeout:     c.cfg.PushTimeout,
		Verifier:        verifier,
		OnEvent:         func(e h3m.Event) { c.onEvent(cs, e) },
		Transport:       tc,
		Logger:          c.log,
	})
	if err != nil {
		conn.Close()
		trace.Close(rec)
		fail(err)
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	cs.rcv, cs.cancel, cs.joining, cs.joinErr, cs.verifier = rcv, cancel, false, nil, verifier
	cs.joinedAt, cs.packets, cs.lastPacket = time.Now(), 0, time.Time{}
	c.stats.Joins++
	c.wg.Add(1)
	c.mu.Unlock()
	c.log.Info("joined multicast session", "session", cs.id, "group", p.Group.String(), "source", p.Source.String(), "interface", c.cfg.Interface, "asymmetric", asym)
	var fetcher chan struct{} // closed when the manifest fetcher returns
	if asym && c.cfg.Manifests != ManifestsOff {
		c.wg.Add(1)
		fetcher = make(chan struct{})
		go func() {
			defer close(fetcher)
			c.runManifests(rctx, cs, rcv.Transport(), cs.manifests)
		}()
	}
	go func() {
		defer c.wg.Done()
		err := rcv.Run(rctx)
		cancel() // stops the manifest fetcher too
		conn.Close()
		if fetcher != nil {
			<-fetcher // it hands the receiver manifests, which the trace records
		}
		trace.Close(rec)
		c.receiverDone(cs, rcv, err)
	}()
}

// transportConfig is what a session's transport receiver needs from the
// client's configuration.
func (c *Client) transportConfig() mquic.ReceiverConfig {
	rc := mquic.ReceiverConfig{RequireAsymmetric: c.cfg.RequireAsymmetric}
	if c.cfg.Manifests != ManifestsOff {
		// Holes that a packet held for its manifest may fill wait for the
		// manifest fetched over unicast.
		rc.AuthReorderDelay = c.cfg.ManifestWait + manifestFetchTime
	}
	return rc
}

// receiverDone handles a receiver that returned.
func (c *Client) receiverDone(cs *csession, rcv *h3m.Receiver, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cs.rcv == rcv {
		cs.rcv, cs.cancel = nil, nil
	}
	ended := false
	select {
	case <-rcv.Ended():
		ended = true
	default:
	}
	switch {
	case ended || cs.leaving:
		cs.sawEnd = cs.sawEnd || ended
		cs.left = true
		c.endAt = time.Now()
		c.stats.Leaves++
		c.log.Info("left multicast session", "session", cs.id, "saw_end", ended)
	case c.ctx.Err() != nil:
	default:
		cs.probeAt = time.Now().Add(c.cfg.ProbeInterval)
		cs.joinErr = fmt.Errorf("receiver stopped: %w", err)
		c.log.Info("multicast receiver stopped; will join again", "session", cs.id, "err", err)
	}
}

// onEvent handles the events of a session's receiver.
func (c *Client) onEvent(cs *csession, e h3m.Event) {
	res := e.Resource
	switch e.Kind {
	case h3m.EventPromised:
		path := res.Path()
		c.mu.Lock()
		if _, ok := cs.inProgress[res.PushID]; !ok {
			cs.inProgress[res.PushID] = path
			c.busy[path]++
		}
		c.mu.Unlock()
		return
	case h3m.EventSessionEnd:
		c.log.Info("multicast session ended (connection: close)", "session", cs.id)
		return
	case h3m.EventComplete, h3m.EventIncomplete, h3m.EventFailed:
	default:
		return
	}
	c.mu.Lock()
	path, ok := cs.inProgress[res.PushID]
	if ok {
		delete(cs.inProgress, res.PushID)
		c.unbusyLocked(path)
	}
	c.mu.Unlock()
	if path == "" {
		path = res.Path()
	}
	if path == "" || path == h3m.EndPath {
		return // a promise lost: the catalogue names the resource
	}
	var h http.Header
	if resp := res.Response(); resp != nil {
		h = resp.Header.Clone()
		for k, v := range res.Trailer() {
			h[k] = v
		}
	}
	switch e.Kind {
	case h3m.EventComplete:
		_, length, _ := res.Span()
		d := &Delivery{
			Path: path, ETag: h.Get("Etag"), Via: ViaMulticast, Session: cs.id, PushID: res.PushID,
			Status: res.Response().Status, Size: length, Header: h, Body: res.Body(),
		}
		if !c.deliver(d) {
			discard(res.Body())
		}
	case h3m.EventIncomplete:
		c.startRepair(cs, res, path, h)
	case h3m.EventFailed:
		_, why := res.State()
		c.log.Debug("multicast push failed; fetching it whole", "path", path, "session", cs.id, "push_id", res.PushID, "err", why)
		c.startFetch(cs, res, path, h, why)
	}
}

func (c *Client) unbusyLocked(path string) {
	if c.busy[path]--; c.busy[path] <= 0 {
		delete(c.busy, path)
	}
}

// monitor runs periodically: it leaves ended sessions, rejoins those whose
// join failed or whose receiver stopped, and switches fallback on when an
// active session brings no packet for FallbackAfter (off when packets come
// back).
func (c *Client) monitor(now time.Time) {
	var leave []context.CancelFunc
	var rejoin []*csession
	type check struct {
		cs  *csession
		rcv *h3m.Receiver
	}
	var checks []check
	c.mu.Lock()
	for _, cs := range c.sessions {
		if cs.left {
			continue
		}
		if cs.state == wellknown.StateEnded {
			if cs.rcv != nil && !cs.leaving && now.Sub(cs.endedAt) >= c.cfg.EndDrain {
				cs.leaving = true
				leave = append(leave, cs.cancel)
			}
			if cs.rcv == nil && !cs.joining {
				cs.left = true
			}
			continue
		}
		if cs.rcv == nil && !cs.joining && !cs.sawEnd && !now.Before(cs.probeAt) {
			cs.joining = true
			rejoin = append(rejoin, cs)
		}
		if cs.rcv != nil {
			checks = append(checks, check{cs, cs.rcv})
		}
	}
	c.mu.Unlock()
	packets := make([]uint64, len(checks))
	for i, ch := range checks {
		packets[i] = ch.rcv.Transport().Stats().Packets
	}
	c.mu.Lock()
	for i, ch := range checks {
		if ch.cs.rcv == ch.rcv && packets[i] > ch.cs.packets {
			ch.cs.packets, ch.cs.lastPacket = packets[i], now
		}
	}
	want := false
	var why string
	for _, cs := range c.sessions {
		if cs.left || cs.sawEnd || cs.state != wellknown.StateActive {
			continue
		}
		if cs.rcv == nil {
			// A first join in progress does not count; a failed or stopped
			// one does, retries included.
			if cs.joinErr != nil || !cs.joining {
				want, why = true, fmt.Sprintf("session %s not joined: %v", cs.id, cs.joinErr)
			}
			continue
		}
		ref := cs.lastPacket
		for _, t := range []time.Time{cs.activeSince, cs.joinedAt} {
			if t.After(ref) {
				ref = t
			}
		}
		if now.Sub(ref) >= c.cfg.FallbackAfter {
			want, why = true, fmt.Sprintf("no packet of session %s for %v", cs.id, now.Sub(ref).Round(time.Millisecond))
		}
	}
	var starts []*job
	if want != c.fallback {
		c.fallback = want
		if want {
			c.stats.FallbackEntered++
			c.log.Warn("multicast is not arriving: falling back to unicast", "why", why)
			starts = c.catalogJobsLocked(now)
		} else {
			c.log.Info("multicast is back: leaving fallback")
		}
	}
	c.mu.Unlock()
	for _, cancel := range leave {
		cancel()
	}
	for _, cs := range rejoin {
		c.join(cs)
	}
	for _, j := range starts {
		c.startJob(j)
	}
}

// expectedLocked reports whether the client should have received e.
func (c *Client) expectedLocked(e *wellknown.CatalogEntry) bool {
	from, ok := c.expectFrom[e.Session]
	return !ok || e.PushID >= from
}

// catalogJobsLocked returns fetch jobs for catalogue entries that multicast
// has not delivered: at once in fallback, after LostGrace otherwise (their
// promise was lost). Entries whose path is being received or repaired wait.
func (c *Client) catalogJobsLocked(now time.Time) []*job {
	if !c.haveCat || c.ctx.Err() != nil {
		return nil
	}
	var out []*job
	live := make(map[string]bool, len(c.catalog))
	for i := range c.catalog {
		e := &c.catalog[i]
		key := entryKey(e)
		live[key] = true
		if c.delivered[key] != nil || c.resolved[key] || !c.expectedLocked(e) {
			continue
		}
		first, ok := c.seen[key]
		if !ok {
			c.seen[key], first = now, now
		}
		if c.busy[e.Path] > 0 || c.jobs[key] != nil {
			continue
		}
		if !c.fallback && now.Sub(first) < c.cfg.LostGrace {
			continue
		}
		j := &job{
			key: key, path: e.Path, etag: e.ETag, session: e.Session, pushID: e.PushID,
			expect: http.Header{}, catalogKey: key, reason: "not received by multicast",
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
	for k := range c.resolved {
		if !live[k] {
			delete(c.resolved, k)
		}
	}
	return out
}

// finished reports whether every session has ended, been left, and every
// resource is settled (for ExitOnEnd).
func (c *Client) finished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.knownSessions == 0 || len(c.jobs) > 0 || !c.descAt.After(c.endAt) {
		return false
	}
	for _, cs := range c.sessions {
		if !cs.left {
			return false
		}
	}
	for i := range c.catalog {
		e := &c.catalog[i]
		k := entryKey(e)
		if c.expectedLocked(e) && c.delivered[k] == nil && !c.resolved[k] {
			return false
		}
	}
	return true
}

func discard(b h3m.Body) {
	if b != nil {
		_ = b.Discard()
	}
}

// catalogRetention is how long the client remembers catalogue entries it
// learnt incrementally (the server lists pushes of the last 10 minutes).
const catalogRetention = 10 * time.Minute

// mergeCatalogLocked takes the catalogue of d: all of it from a full read,
// or, from an incremental one, the entries pushed since, added to what the
// client has (entries older than catalogRetention, and the oldest beyond
// MaxCatalog, are forgotten).
func (c *Client) mergeCatalogLocked(d *wellknown.Description, now time.Time) {
	c.haveCat = true
	c.catalogAt = now
	if d.ResourcesAfter.IsZero() {
		c.catalog = d.Resources
		return
	}
	have := make(map[string]bool, len(c.catalog))
	kept := c.catalog[:0]
	for _, e := range c.catalog {
		if now.Sub(e.Pushed) < catalogRetention {
			kept = append(kept, e)
			have[entryKey(&e)] = true
		}
	}
	for _, e := range d.Resources {
		if !have[entryKey(&e)] {
			kept = append(kept, e)
		}
	}
	if over := len(kept) - maxCatalog; over > 0 {
		kept = kept[over:]
	}
	c.catalog = kept
}

// maxCatalog caps the catalogue entries the client remembers.
const maxCatalog = 4096
