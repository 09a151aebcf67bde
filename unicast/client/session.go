package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/unicast/internal/trace"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ErrSymmetricSession is the join error of a symmetric session when the
// client requires asymmetric authentication.
var ErrSymmetricSession = errors.New("client: refused: the session is symmetric and asymmetric authentication is required")

// csession is the client's view of one multicast session. id, ad and
// manifests never change; the rest is guarded by mu, which is taken after
// Client.mu when both are held, and never while calling into the receiver
// (whose event handler runs under the receiver's own lock and takes both).
type csession struct {
	id        string
	ad        altsvc.Advertisement
	manifests string // path of its manifests on the origin

	mu    sync.Mutex
	state wellknown.SessionState

	activeSince time.Time // when the client learnt it is active
	endedAt     time.Time // when the client learnt it ended

	rcv      *h3m.Receiver
	verifier *h3m.Verifier // the checks of its resources (repairs too)
	refused  bool          // symmetric, and the client requires asymmetric
	cancel   context.CancelFunc
	joining  bool
	leaving  bool
	joinedAt time.Time
	joinErr  error
	probeAt  time.Time // next join attempt after a failure

	packets    uint64 // transport packets counted at the last check
	lastPacket time.Time

	// lastEvent is when the receiver last reported progress (a promise, a
	// push settled); maxPromised is the highest push ID promised
	// (promised: any).
	lastEvent   time.Time
	maxPromised uint64
	promised    bool
	// firstPush is the first push ID the session brought, firstAt when;
	// leadRead is set once a read of the catalogue's entries began after
	// firstAt: the pushes before firstPush are then accounted for
	// (missesNothingLocked).
	firstPush uint64
	firstAt   time.Time
	leadRead  bool

	sawEnd   bool          // the receiver saw the session end
	endRes   *h3m.Resource // the push that ended it
	left     bool          // left for good
	replaced bool          // the description gives other parameters under its ID now

	// gaps are push IDs whose promises were lost, waiting for the
	// catalogue to name them; reported are the last ones reported missing
	// (ending.go).
	gaps, reported []pushGap

	inProgress map[uint64]string // push ID -> path of pushes being received

	// orphans are push streams that lost their promise or header section,
	// waiting for a catalogue entry to identify them (orphan.go).
	orphans []*h3m.Resource
	// breaker is the session's circuit breaker (nil until first joined);
	// breakerUntil, when set, is the end of the back-off after its trip.
	breaker      *breaker
	breakerUntil time.Time

	// od is its on-demand state (ondemand.go); od.channel and od.name
	// never change.
	od demandState
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
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.state == st || cs.state == wellknown.StateEnded {
		return
	}
	switch st {
	case wellknown.StateActive:
		cs.activeSince = now
	case wellknown.StateEnded:
		cs.endedAt = now
		if now.After(c.endAt) {
			c.endAt = now
		}
	}
	c.log.Info("h3m session state", "session", cs.id, "from", cs.state, "to", st)
	cs.state = st
}

// join opens a multicast socket for cs and starts its receiver, which runs
// until ctx ends or the session is left. A failure is retried every
// ProbeInterval (the monitor treats it as missing multicast).
func (c *Client) join(ctx context.Context, cs *csession) {
	cs.mu.Lock()
	if cs.left || cs.od.parked || cs.rcv != nil || ctx.Err() != nil {
		cs.joining = false
		cs.mu.Unlock()
		return
	}
	cs.joining, cs.od.want = true, false // whoever joins it answers Use's wish
	cs.mu.Unlock()

	fail := func(err error) {
		cs.mu.Lock()
		repeated := cs.joinErr != nil && cs.joinErr.Error() == err.Error()
		cs.joining, cs.joinErr, cs.probeAt = false, err, time.Now().Add(c.cfg.ProbeInterval)
		cs.mu.Unlock()
		c.count(func(st *Stats) { st.JoinErrors++ })
		level := slog.LevelWarn
		if repeated {
			level = slog.LevelDebug // said already; keep probing quietly
		}
		c.log.Log(ctx, level, "joining the multicast session failed; will retry", "session", cs.id, "in", c.cfg.ProbeInterval, "err", err)
	}
	p := cs.ad.Session
	asym := p.HasExtension(manifest.ExtensionID)
	if c.cfg.RequireAsymmetric && !asym {
		cs.mu.Lock()
		first := !cs.refused
		cs.refused, cs.joining, cs.joinErr = true, false, fmt.Errorf("%w: session %s", ErrSymmetricSession, cs.id)
		cs.probeAt = time.Now().Add(c.cfg.ProbeInterval)
		cs.mu.Unlock()
		if first {
			c.count(func(st *Stats) { st.Refused++ })
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
	verifier := c.verifier(ctx)
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
		MaxResourceSize: max(c.cfg.MaxResourceSize, 0), // for the default storage only, which is never used here
		MaxResources:    c.cfg.MaxPushes,
		PushTimeout:     c.cfg.PushTimeout,
		Verifier:        verifier,
		KeepOrphans:     c.origin != nil, // the catalogue identifies them
		OnEvent:         func(e h3m.Event) { c.onEvent(ctx, cs, e) },
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
	cs.mu.Lock()
	cs.rcv, cs.cancel, cs.joining, cs.joinErr, cs.verifier = rcv, cancel, false, nil, verifier
	cs.joinedAt, cs.packets, cs.lastPacket = time.Now(), 0, time.Time{}
	cs.breakerJoinedLocked(c.cfg.Breaker, c.origin != nil)
	cs.mu.Unlock()
	c.count(func(st *Stats) { st.Joins++ })
	c.log.Info("joined multicast session", "session", cs.id, "group", p.Group.String(), "source", p.Source.String(), "interface", c.cfg.Interface, "asymmetric", asym)
	c.wg.Add(1)
	var fetcher chan struct{} // closed when the manifest fetcher returns
	if asym && c.cfg.Manifests != ManifestsOff && c.origin != nil {
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
		c.receiverDone(ctx, cs, rcv, err)
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

// receiverDone handles a receiver that returned; ctx is the client's.
func (c *Client) receiverDone(ctx context.Context, cs *csession, rcv *h3m.Receiver, err error) {
	ended := false
	select {
	case <-rcv.Ended():
		ended = true
	default:
	}
	now := time.Now()
	// A session announced elsewhere (Config.Sessions) has no description
	// to say it ended: one that went quiet for its idle timeout after it
	// had begun is over, its end lost with whatever came last.
	silent := !ended && c.static[cs.id] && errors.Is(err, mquic.ErrIdleTimeout)
	cs.mu.Lock()
	if cs.rcv == rcv {
		cs.rcv, cs.cancel = nil, nil
	}
	silent = silent && cs.promised
	last := cs.maxPromised
	left := ended || cs.leaving || silent
	idle := cs.idleStoppedLocked(rcv) // its channel went unused
	rejoin := false                   // ...and was used again while it stopped
	var openUntil time.Time           // the breaker's back-off, when it stopped the receiver
	switch {
	case left:
		cs.sawEnd = cs.sawEnd || ended
		cs.left = true
	case idle:
		rejoin = cs.od.want && !cs.od.parked && !cs.joining && ctx.Err() == nil
		cs.od.want = false
		if rejoin {
			cs.joining = true
			cs.freshStartLocked()
		}
	case ctx.Err() != nil:
	case cs.breakerUntil.After(now):
		cs.probeAt, cs.joinErr, openUntil = cs.breakerUntil, ErrBreakerOpen, cs.breakerUntil
	default:
		cs.probeAt = now.Add(c.cfg.ProbeInterval)
		cs.joinErr = fmt.Errorf("receiver stopped: %w", err)
	}
	cs.mu.Unlock()
	switch {
	case left:
		c.mu.Lock()
		if silent {
			c.endAt = now
		}
		c.stats.Leaves++
		c.mu.Unlock()
		c.log.Info("left multicast session", "session", cs.id, "saw_end", ended)
		if silent {
			c.giveUp(&Delivery{Session: cs.id, PushID: last + 1, Err: fmt.Errorf(
				"client: session %s went quiet for its idle timeout without its end: anything pushed after push %d is unknown (%w)", cs.id, last, h3m.ErrPromiseLost)})
		}
		c.notify()
	case idle:
		c.count(func(st *Stats) { st.Leaves++; st.IdleLeaves++ })
		c.log.Info("left multicast session: its channel is unused", "session", cs.id, "channel", cs.od.name)
		if rejoin {
			c.join(ctx, cs)
		}
	case ctx.Err() != nil:
	case !openUntil.IsZero():
		c.log.Info("left multicast session: circuit breaker open", "session", cs.id, "rejoin_in", openUntil.Sub(now).Round(time.Millisecond))
	default:
		c.log.Info("multicast receiver stopped; will join again", "session", cs.id, "err", err)
	}
}

// onEvent handles the events of a session's receiver; ctx is the client's.
// It runs on the receiver's goroutine, under the receiver's lock.
func (c *Client) onEvent(ctx context.Context, cs *csession, e h3m.Event) {
	res := e.Resource
	cs.mu.Lock()
	replaced := cs.replaced
	cs.mu.Unlock()
	if replaced {
		// The last events of a session replaced under its ID: its new
		// session, and the catalogue, have what counts.
		if st, _ := res.State(); st != h3m.StateReceiving {
			discard(res.Body())
		}
		return
	}
	switch e.Kind {
	case h3m.EventPromised:
		path := res.Path()
		lead := c.leadingGaps()
		now := time.Now()
		cs.mu.Lock()
		cs.lastEvent = now
		cs.sawPushLocked(res.PushID)
		gaps := cs.pushSeenLocked(res.PushID, lead, now) // a rejected promise is no lost one
		cs.mu.Unlock()
		if path != h3m.EndPath {
			if _, err := wellknown.ParseTarget(path); err != nil {
				c.lostPromises(cs, gaps)
				c.rejectPath(cs.id, res.PushID, path, err)
				return
			}
		}
		if isRepairPush(res) {
			// A multicast repair: it supersedes nothing and holds up no
			// work of its path (mrepair.go).
			c.lostPromises(cs, gaps)
			return
		}
		cs.mu.Lock()
		_, had := cs.inProgress[res.PushID]
		if !had {
			cs.inProgress[res.PushID] = path
		}
		cs.mu.Unlock()
		if !had {
			c.mu.Lock()
			c.supersedeLocked(path, cs.id, res.PushID)
			c.busy[path]++
			c.mu.Unlock()
		}
		c.lostPromises(cs, gaps)
		return
	case h3m.EventSessionEnd:
		c.log.Info("multicast session ended (connection: close)", "session", cs.id)
		now := time.Now()
		cs.mu.Lock()
		cs.sawEnd, cs.endRes = true, res
		var gaps []pushGap
		if cs.promised && res.PushID > cs.maxPromised+1 {
			// The push that ended the session is the last: the IDs
			// before it that were never promised are lost promises.
			gaps = cs.pushSeenLocked(res.PushID, false, now)
		}
		cs.mu.Unlock()
		c.mu.Lock()
		c.endAt = now
		c.mu.Unlock()
		c.lostPromises(cs, gaps)
		// The end settled every stream still coming: the pushes of the
		// gaps left were lost whole, and their signed entries, asked now,
		// name them before the read after the end, which waits for them
		// (entriesBeforeEndRead) and may then ask for the sessions alone.
		c.fetchGapEntries(ctx, now)
		// The catalogue may name what the end left missing: read it now,
		// not at the next poll.
		select {
		case c.pollNow <- struct{}{}:
		default:
		}
		c.notify()
		return
	case h3m.EventOrphan:
		c.orphan(ctx, cs, res)
		return
	case h3m.EventComplete, h3m.EventIncomplete, h3m.EventFailed:
	default:
		return
	}
	cs.mu.Lock()
	cs.lastEvent = time.Now()
	path, ok := cs.inProgress[res.PushID]
	if ok {
		delete(cs.inProgress, res.PushID)
	}
	verifier := cs.verifier
	cs.mu.Unlock()
	if ok {
		// Its path stays busy until what follows has handed the push on
		// (a job, a hold, a delivery): a catalogue pass meanwhile
		// (catalogJobsLocked, from a signed entry or the monitor) would
		// take it for one not received and fetch it whole.
		defer c.unbusy(path)
	}
	if path == "" {
		path = res.Path()
	}
	if path == h3m.EndPath {
		return
	}
	if path == "" {
		// A push stream whose promise was lost: the catalogue may name
		// it; nothing else can. (The empty push that ended the session,
		// unpromised, is no loss.)
		if !c.endMarker(cs, res) {
			c.promiseLost(cs, res.PushID)
		}
		return
	}
	if !ok {
		if _, err := wellknown.ParseTarget(path); err != nil {
			// Refused when promised (and counted then): nothing of it is
			// fetched or delivered.
			discard(res.Body())
			return
		}
	}
	var h http.Header
	if resp := res.Response(); resp != nil {
		h = h3frame.MergeTrailer(resp.Header, res.Trailer())
	}
	if isRepairPush(res) {
		c.multicastRepair(cs, res, path, h, e.Kind == h3m.EventComplete)
		return
	}
	o := &outcome{cs: cs, res: res, path: path, h: h, verifier: verifier}
	switch e.Kind {
	case h3m.EventComplete:
		_, length, _ := res.Span()
		o.kind = outDeliver
		o.d = &Delivery{
			Path: path, ETag: h.Get("Etag"), Via: ViaMulticast, Session: cs.id, PushID: res.PushID,
			Status: res.Response().Status, Size: length, Header: h, Body: res.Body(),
			Promised: res.Promised(),
		}
	case h3m.EventIncomplete:
		o.kind = outRepair
	case h3m.EventFailed:
		o.kind = outFetch
		_, o.why = res.State()
		if errors.Is(o.why, h3m.ErrPushLost) && cs.hasOrphans() {
			// Its stream may be an orphan that lost its push ID: the
			// catalogue, which names both, decides (catalogJobsLocked).
			c.log.Debug("promised push stream not seen; an orphan stream may be it: leaving it to the catalogue", "path", path, "session", cs.id, "push_id", res.PushID)
			select {
			case c.pollNow <- struct{}{}:
			default:
			}
			return
		}
	}
	c.settle(ctx, o)
}

// promiseLost records that the promise of push pushID of cs was lost (its
// stream came): the catalogue may name it; nothing else can.
func (c *Client) promiseLost(cs *csession, pushID uint64) {
	now := time.Now()
	lead := c.leadingGaps()
	cs.mu.Lock()
	if cs.reportedLocked(pushID) {
		cs.mu.Unlock()
		return // its promise was reported lost already
	}
	// Its ID leaves any gap it was in, to be counted once, as its own.
	gaps := append(cs.pushSeenLocked(pushID, lead, now), pushGap{pushID, pushID + 1, now})
	cs.mu.Unlock()
	c.lostPromises(cs, gaps)
}

// leadingGaps says whether the push IDs before the first one a receiver
// sees count as lost: with catch-up and no catalogue, which would
// otherwise say what was pushed before.
func (c *Client) leadingGaps() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg.CatchUp && (c.origin == nil || c.altSvcOnly)
}

// endMarker reports whether res is the push that ended cs's session with
// no content (h3m.EndPath when its promise was lost).
func (c *Client) endMarker(cs *csession, res *h3m.Resource) bool {
	cs.mu.Lock()
	end := cs.endRes
	cs.mu.Unlock()
	if end != res {
		return false
	}
	_, length, _ := res.Span()
	resp := res.Response()
	return resp != nil && resp.Status == http.StatusNoContent && length <= 0
}

// unbusy is unbusyLocked taking c.mu.
func (c *Client) unbusy(path string) {
	c.mu.Lock()
	c.unbusyLocked(path)
	c.mu.Unlock()
}

func (c *Client) unbusyLocked(path string) {
	if c.busy[path]--; c.busy[path] <= 0 {
		delete(c.busy, path)
	}
}

// count updates the client's counters.
func (c *Client) count(f func(*Stats)) {
	c.mu.Lock()
	f(&c.stats)
	c.mu.Unlock()
}

// monitor runs periodically: it leaves ended sessions, rejoins those whose
// join failed or whose receiver stopped, and switches fallback on when an
// active session brings no packet for FallbackAfter (off when packets come
// back).
func (c *Client) monitor(ctx context.Context, now time.Time) {
	var leave []context.CancelFunc
	var rejoin []*csession
	type check struct {
		cs  *csession
		rcv *h3m.Receiver
	}
	var checks []check
	c.parkIdle(now)
	sessions := c.sessionList()
	for _, cs := range sessions {
		cs.mu.Lock()
		switch {
		case cs.left:
		case cs.state == wellknown.StateEnded:
			if cs.rcv != nil && !cs.leaving && now.Sub(cs.endedAt) >= c.cfg.EndDrain {
				cs.leaving = true
				leave = append(leave, cs.cancel)
			}
			if cs.rcv == nil && !cs.joining {
				cs.left = true
			}
		default:
			if cs.rcv == nil && !cs.joining && !cs.sawEnd && !cs.od.parked && !now.Before(cs.probeAt) {
				cs.joining = true
				rejoin = append(rejoin, cs)
			}
			if cs.rcv != nil {
				checks = append(checks, check{cs, cs.rcv})
			}
		}
		cs.mu.Unlock()
	}
	// The receivers' counters are read with no lock of ours held: their
	// event handlers take ours.
	counts := make([]breakerSample, len(checks))
	for i, ch := range checks {
		st := ch.rcv.Transport().Stats()
		counts[i] = breakerSample{at: now, bytes: st.Bytes, packets: st.Packets, lost: st.LostPackets}
	}
	var trips []breakerTrip
	for i, ch := range checks {
		ch.cs.mu.Lock()
		if ch.cs.rcv == ch.rcv && counts[i].packets > ch.cs.packets {
			ch.cs.packets, ch.cs.lastPacket = counts[i].packets, now
		}
		if ch.cs.rcv == ch.rcv {
			if tr, ok := ch.cs.observeBreakerLocked(counts[i]); ok {
				trips = append(trips, tr)
			}
		}
		ch.cs.mu.Unlock()
	}
	c.breakerTrips(trips, sessions, now)
	c.quietInBand(now)
	want := false
	var why string
	for _, cs := range sessions {
		cs.mu.Lock()
		if w, reason := cs.missingLocked(now, c.cfg.FallbackAfter); w {
			want, why = true, reason
		}
		cs.mu.Unlock()
	}
	var starts []*job
	c.mu.Lock()
	if want != c.fallback {
		c.fallback = want
		switch {
		case want && c.origin == nil:
			c.log.Warn("multicast is not arriving, and there is no unicast origin to fall back to", "why", why)
		case want:
			c.stats.FallbackEntered++
			c.log.Warn("multicast is not arriving: falling back to unicast", "why", why)
			starts = c.catalogJobsLocked(now)
			c.pollSoon() // what was pushed since the last read, which may be long ago (CatalogIdlePoll)
		default:
			c.log.Info("multicast is back")
		}
	}
	if len(starts) == 0 && c.pendingEntryLocked() {
		// Listed, expected, and neither received nor under way: judged
		// lost here, on the client's own clock (lostLocked), rather than
		// by reading the description every CatalogPoll until it is.
		starts = c.catalogJobsLocked(now)
	}
	c.mu.Unlock()
	for _, cancel := range leave {
		cancel()
	}
	for _, cs := range rejoin {
		c.join(ctx, cs)
	}
	for _, j := range starts {
		c.startJob(ctx, j)
	}
	c.staleGaps(now)
}

// sessionList returns the client's sessions, for work done with no lock
// of the client held.
func (c *Client) sessionList() []*csession {
	c.mu.Lock()
	defer c.mu.Unlock()
	sessions := make([]*csession, 0, len(c.sessions))
	for _, cs := range c.sessions {
		sessions = append(sessions, cs)
	}
	return sessions
}

// missingLocked reports whether multicast of an active session is missing
// at now: not joined (a first join in progress does not count; a failed or
// stopped one does, retries included), or no packet for fallbackAfter.
func (cs *csession) missingLocked(now time.Time, fallbackAfter time.Duration) (bool, string) {
	if cs.left || cs.sawEnd || cs.od.parked || cs.od.want || cs.state != wellknown.StateActive {
		return false, "" // parked: nothing wants it; want: about to be joined
	}
	if cs.rcv == nil {
		if cs.joinErr != nil || !cs.joining {
			return true, fmt.Sprintf("session %s not joined: %v", cs.id, cs.joinErr)
		}
		return false, ""
	}
	ref := cs.lastPacket
	for _, t := range []time.Time{cs.activeSince, cs.joinedAt} {
		if t.After(ref) {
			ref = t
		}
	}
	if now.Sub(ref) >= fallbackAfter {
		return true, fmt.Sprintf("no packet of session %s for %v", cs.id, now.Sub(ref).Round(time.Millisecond))
	}
	return false, ""
}

func discard(b h3m.Body) {
	if b != nil {
		_ = b.Discard()
	}
}
