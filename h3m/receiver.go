package h3m

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/ranges"
)

// EventKind says what happened to a resource.
type EventKind int

// The events a Receiver reports.
const (
	// EventPromised: a PUSH_PROMISE arrived.
	EventPromised EventKind = iota
	// EventHeaders: the response headers arrived.
	EventHeaders
	// EventComplete: the resource arrived whole and verified.
	EventComplete
	// EventIncomplete: the push ended with body bytes missing
	// (Resource.Missing); repair them.
	EventIncomplete
	// EventFailed: the resource cannot be completed from multicast
	// (Resource.State gives the reason); fetch it whole.
	EventFailed
	// EventSessionEnd: the session ended ("connection: close" and every
	// push finished). Resource is the one that carried the close.
	EventSessionEnd
	// EventOrphan (ReceiverConfig.KeepOrphans): a push stream ended whose
	// promise or response header section was lost, with the body bytes
	// that arrived kept (Resource.Orphan). Its push ID is known unless the
	// stream's first packet was lost (then only Resource.StreamID is);
	// identify it (a catalogue), Resource.Adopt what was lost, and repair
	// Resource.Missing.
	EventOrphan
)

func (k EventKind) String() string {
	return [...]string{"promised", "headers", "complete", "incomplete", "failed", "session-end", "orphan"}[k]
}

// Event is one report of a Receiver.
type Event struct {
	Kind     EventKind
	Resource *Resource
}

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// Session is the transport session to receive.
	Session mquic.Params
	// Profile is the session's HTTP-level profile.
	Profile Profile
	// Storage receives bodies; nil means MemoryStorage with MaxResourceSize.
	Storage Storage
	// MaxResourceSize caps a resource's body in the default storage;
	// 0 means 256 MiB.
	MaxResourceSize int64
	// MaxFieldSectionSize caps a decoded header or trailer section;
	// 0 means 64 KiB.
	MaxFieldSectionSize int
	// MaxResources caps the resources the receiver remembers, settled ones
	// included (the oldest settled are forgotten first); 0 means 1024.
	MaxResources int
	// MaxActivePushes caps the pushes in progress (promised or receiving,
	// not settled). A new one past it evicts the oldest push that has a
	// promise but no push stream yet (a flood of forged promises: it is
	// reported failed with ErrPushEvicted, or not at all if its
	// EventPromised was not delivered yet), or is refused when every push
	// in progress has its stream (PushesRefused). 0 means
	// DefaultMaxActivePushes, or twice the session's
	// max-concurrent-resources when that is more.
	MaxActivePushes int
	// MaxBodyRanges caps the byte ranges a push keeps as received: past
	// it the smallest received islands after the first are given up, to be
	// repaired with the missing ranges (BodyRangesCapped). 0 means
	// DefaultMaxBodyRanges.
	MaxBodyRanges int
	// PushTimeout is how long a push may go without data before it is
	// reported incomplete (its tail is missing); 0 means 5 s.
	PushTimeout time.Duration
	// Verifier checks digests and signatures of completed resources; nil
	// means digests are checked when present and signatures are not.
	Verifier *Verifier
	// OnEvent receives events, in order and one at a time, on a goroutine
	// that Run starts, with no lock of the Receiver held (it may call back
	// into it). Events are delivered only while Run runs.
	OnEvent func(Event)
	// KeepOrphans keeps the body bytes of a push stream whose promise or
	// response header section was lost and reports it as EventOrphan,
	// instead of failing it (ErrPromiseLost, ErrHeadersLost): for a caller
	// that can tell what the stream carried (the unicast client, from the
	// origin's catalogue), so that a lost packet costs a few bytes of
	// repair, not the whole resource. After a lost first packet, body
	// bytes are placed by the uniform DATA framing (spec/http.md, "Orphan
	// push streams").
	KeepOrphans bool
	// Transport tunes the transport receiver (its Params and Handler are
	// set by the Receiver; a zero StreamIdleTimeout is 4 × PushTimeout).
	Transport mquic.ReceiverConfig
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// Defaults of ReceiverConfig.
const (
	DefaultMaxActivePushes = 256
	DefaultMaxBodyRanges   = 1024
)

// ReceiverStats count what the HTTP layer saw.
type ReceiverStats struct {
	Promises        uint64
	Complete        uint64
	Incomplete      uint64
	Failed          uint64
	IgnoredFrames   uint64 // SETTINGS, GOAWAY, MAX_PUSH_ID, unknown types: ignored as the draft requires
	UnpromisedPush  uint64 // push streams whose promise never arrived
	MalformedFrames uint64
	Orphans         uint64 // push streams kept without their promise or header section (KeepOrphans)
	Resyncs         uint64 // times a push stream's framing was recovered after a loss
	Desyncs         uint64 // times it could not be, losing the rest of a body
	// DigestFailed and SignatureFailed count the pushes (of Failed) that
	// failed their digest or signature checks (IntegrityKind).
	DigestFailed, SignatureFailed uint64

	// Caps that bit (ReceiverConfig).
	PushesEvicted    uint64 // promised pushes without a stream evicted for new ones (MaxActivePushes)
	PushesForgotten  uint64 // of those, the ones evicted before their promise was reported: no event at all
	PushesRefused    uint64 // promises and push streams refused (MaxActivePushes)
	BodyRangesCapped uint64 // times a push's received ranges were cut back (MaxBodyRanges)
}

// Receiver receives the pushes of one session and turns them into resources.
//
// A Receiver is run by Run, which starts its goroutines and returns when
// they have ended:
//   - the packet path: the transport receiver reads the socket and calls the
//     stream parsers, which place body bytes, settle pushes that lost bytes
//     or failed, and hand the rest to the workers (HandlePacket does the same
//     on its caller's goroutine);
//   - Run's own goroutine, which settles the pushes that went quiet;
//   - two workers for what must never hold up the packet path (spec/http.md,
//     "Receive path"): one hashes body bytes as they arrive in order, on
//     another core, and then checks each push that arrived whole from those
//     digests and its signatures; the other checks the pushes whose body
//     must be read back (it did not arrive in order, or its digests came in
//     unannounced trailers) and removes discarded bodies. Without Run,
//     HandlePacket does this work once the transport has released its lock;
//   - the goroutine that calls OnEvent.
type Receiver struct {
	cfg     ReceiverConfig
	log     *slog.Logger
	tr      *mquic.Receiver
	maxF    int
	running atomic.Bool // Run's workers do the off-path work

	// Lock order: the transport receiver's lock (held while it calls the
	// stream parsers) → mu → Resource.mu. Body methods are called with
	// Resource.mu held or with no lock; a body's digests have a lock of
	// their own, taken with no other held. Nothing that reads or hashes a
	// whole body runs under any of these locks.
	mu        sync.Mutex
	pushes    map[uint64]*Resource // by push ID
	active    map[uint64]*Resource // the pushes still receiving
	settled   []uint64             // push IDs in the order they settled, for eviction
	byStream  map[uint64]*Resource
	stream0   *controlParser
	ending    *Resource // the response that carried connection: close
	ended     bool
	sweeping  bool // checkEndLocked is settling what the end left receiving
	endedCh   chan struct{}
	stats     ReceiverStats
	maxPushID uint64
	events    []Event
	evGen     uint64 // counts the takes of events by flushEvents
	evDropped int    // events in events withdrawn (evicted pushes)
	evWake    chan struct{}
	caps      capLog
	// unpromised counts the push streams that ended and wait for their
	// promise (KeepOrphans), at most: promisesPassedLocked recounts them.
	unpromised int
	// orphans are the push streams receiving whose first packet (push ID
	// and header section) was lost, by stream ID (KeepOrphans).
	orphans map[uint64]*Resource
	// Work off the packet path, for two workers. digestQ, in order: blocks
	// of body bytes to hash (digests.go) and the checks of pushes that
	// arrived whole and in order, which need nothing more. slowQ: checks
	// that read a body back, and bodies to discard, which must not hold up
	// the others.
	digestQ, slowQ workQueue
	verifying      int // pushes queued or being checked
	digestQueued   int // bytes in blocks for the worker, queued or gathering
	freeBlocks     [][]byte
}

// workQueue is the work of one worker.
type workQueue struct {
	items  []workItem
	wake   chan struct{}
	queued atomic.Bool // items may be waiting: set with Receiver.mu held
}

// workItem is one piece of work: hash block into res's digests, check res
// (no block), or discard body.
type workItem struct {
	res   *Resource
	block []byte
	body  Body
}

// NewReceiver creates a receiver for the session reading from conn (see
// mcast.ListenReceiver).
func NewReceiver(conn net.PacketConn, cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxResourceSize == 0 {
		cfg.MaxResourceSize = 256 << 20
	}
	if cfg.Storage == nil {
		cfg.Storage = MemoryStorage{MaxSize: cfg.MaxResourceSize}
	}
	if cfg.MaxFieldSectionSize == 0 {
		cfg.MaxFieldSectionSize = 64 << 10
	}
	if cfg.MaxResources == 0 {
		cfg.MaxResources = 1024
	}
	if cfg.MaxActivePushes <= 0 {
		cfg.MaxActivePushes = max(DefaultMaxActivePushes, 2*int(min(cfg.Session.MaxConcurrentResources, 1<<20)))
	}
	if cfg.MaxBodyRanges <= 0 {
		cfg.MaxBodyRanges = DefaultMaxBodyRanges
	}
	if cfg.PushTimeout == 0 {
		cfg.PushTimeout = 5 * time.Second
	}
	r := &Receiver{
		cfg:      cfg,
		log:      cfg.Logger,
		maxF:     cfg.MaxFieldSectionSize,
		pushes:   make(map[uint64]*Resource),
		active:   make(map[uint64]*Resource),
		byStream: make(map[uint64]*Resource),
		orphans:  make(map[uint64]*Resource),
		endedCh:  make(chan struct{}),
		evWake:   make(chan struct{}, 1),
	}
	r.caps = capLog{log: cfg.Logger}
	r.digestQ.wake = make(chan struct{}, 1)
	r.slowQ.wake = make(chan struct{}, 1)
	tc := cfg.Transport
	tc.Params = cfg.Session
	tc.Handler = r
	if tc.StreamIdleTimeout == 0 {
		// A push quiet for PushTimeout is settled already: its stream
		// (whose FIN may have been lost) need not stay open much longer.
		tc.StreamIdleTimeout = 4 * cfg.PushTimeout
	}
	if tc.Logger == nil {
		tc.Logger = cfg.Logger
	}
	tr, err := mquic.NewReceiver(conn, tc)
	if err != nil {
		return nil, fmt.Errorf("h3m: receiver: %w", err)
	}
	r.tr = tr
	return r, nil
}

// Transport returns the transport receiver (for its statistics).
func (r *Receiver) Transport() *mquic.Receiver { return r.tr }

// HandlePacket feeds one datagram, as if read from the socket. When Run is
// not running, the work the datagram left for off the packet path (see
// Receiver) is then done on the caller's goroutine, with no lock held.
func (r *Receiver) HandlePacket(pkt []byte, src netip.AddrPort) {
	r.tr.HandlePacket(pkt, src)
	if !r.running.Load() {
		r.work(&r.digestQ)
		r.work(&r.slowQ)
	}
}

// Stats returns the HTTP-level counters.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Resources returns every resource known so far, by push ID.
func (r *Receiver) Resources() []*Resource {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Resource, 0, len(r.pushes))
	for _, res := range r.pushes {
		out = append(out, res)
	}
	sortByPushID(out)
	return out
}

// Ended is closed when the session has ended.
func (r *Receiver) Ended() <-chan struct{} { return r.endedCh }

// Run receives until ctx ends (nil), the session ends (nil), or the
// transport fails or times out (ErrIdleTimeout). Pushes still in progress
// when it returns are reported incomplete or failed; it returns once every
// push that arrived whole is verified and every event is delivered.
func (r *Receiver) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.dispatch(ctx)
	}()
	r.running.Store(true)
	defer r.running.Store(false)
	// The digest worker's last checks may queue discards for the slow
	// worker, so it stops first.
	var stops, dones [2]chan struct{}
	for i, q := range []*workQueue{&r.digestQ, &r.slowQ} {
		stops[i], dones[i] = make(chan struct{}), make(chan struct{})
		go func() {
			defer close(dones[i])
			r.worker(q, stops[i])
		}()
	}
	errc := make(chan error, 1)
	go func() { errc <- r.tr.Run(ctx) }()
	tick := time.NewTicker(min(r.cfg.PushTimeout/4, 250*time.Millisecond))
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case err = <-errc:
			break loop
		case <-r.endedCh:
			cancel()
			<-errc
			break loop
		case now := <-tick.C:
			r.expire(now)
		}
	}
	r.tr.Flush()
	r.finishAll()
	for i := range stops {
		close(stops[i])
		<-dones[i]
	}
	cancel()
	wg.Wait()
	r.flushEvents()
	return err
}

// worker does the work of q until stop is closed and q is empty.
func (r *Receiver) worker(q *workQueue, stop <-chan struct{}) {
	for {
		r.work(q)
		select {
		case <-q.wake:
		case <-stop:
			r.work(q)
			return
		}
	}
}

// work does the queued off-path work in order, holding no lock while it
// hashes, reads or removes a body.
func (r *Receiver) work(q *workQueue) {
	for q.queued.Load() {
		r.mu.Lock()
		if len(q.items) == 0 {
			q.queued.Store(false)
			r.mu.Unlock()
			return
		}
		w := q.items[0]
		q.items[0] = workItem{}
		q.items = q.items[1:]
		r.mu.Unlock()
		switch {
		case w.body != nil:
			_ = w.body.Discard()
		case w.block != nil:
			hashBlock(w.res, w.block)
			r.mu.Lock()
			r.freeBlockLocked(w.block)
			r.mu.Unlock()
		default:
			err := r.cfg.Verifier.Verify(w.res, r.cfg.Profile)
			r.mu.Lock()
			r.verifying--
			r.settleCheckedLocked(w.res, err)
			r.mu.Unlock()
		}
		// Hand the processor over between pieces of work: packet intake,
		// if it waits for one, gets it within a block's hashing instead of
		// a whole scheduling slice.
		runtime.Gosched()
	}
}

// queueLocked hands w to the worker of q.
func (r *Receiver) queueLocked(q *workQueue, w workItem) {
	q.items = append(q.items, w)
	q.queued.Store(true)
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// dispatch delivers events in order on its own goroutine, so handlers may
// call back into the receiver.
func (r *Receiver) dispatch(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.evWake:
			r.flushEvents()
		}
	}
}

func (r *Receiver) flushEvents() {
	for {
		r.mu.Lock()
		evs := r.events
		r.events, r.evDropped = nil, 0
		r.evGen++
		r.mu.Unlock()
		if len(evs) == 0 {
			return
		}
		for _, e := range evs {
			if e.Resource != nil {
				r.cfg.OnEvent(e)
			}
		}
	}
}

// emitLocked queues an event for OnEvent (none without OnEvent).
func (r *Receiver) emitLocked(kind EventKind, res *Resource) {
	if r.cfg.OnEvent == nil {
		return
	}
	if kind == EventPromised {
		res.promisedEv = eventRef{gen: r.evGen, i: len(r.events), ok: true}
	}
	r.events = append(r.events, Event{Kind: kind, Resource: res})
	select {
	case r.evWake <- struct{}{}:
	default:
	}
}

// eventRef locates a queued event: its index in Receiver.events while gen
// is Receiver.evGen.
type eventRef struct {
	gen uint64
	i   int
	ok  bool
}

// withdrawPromiseLocked removes res's EventPromised from the queue if it
// was not delivered yet, and reports whether it did: a push that the client
// never heard of needs no more events.
func (r *Receiver) withdrawPromiseLocked(res *Resource) bool {
	ref := res.promisedEv
	if !ref.ok || ref.gen != r.evGen || ref.i >= len(r.events) || r.events[ref.i].Resource != res {
		return false
	}
	r.events[ref.i].Resource = nil
	if r.evDropped++; r.evDropped > 64 && r.evDropped > len(r.events)/2 {
		// Mostly withdrawn: compact, so that a flood whose events are not
		// taken does not grow the queue.
		kept := r.events[:0]
		for _, e := range r.events {
			if e.Resource != nil {
				if e.Kind == EventPromised {
					e.Resource.promisedEv.i = len(kept)
				}
				kept = append(kept, e)
			}
		}
		clear(r.events[len(kept):])
		r.events, r.evDropped = kept, 0
	}
	return true
}

// OpenStream implements mquic.Handler.
func (r *Receiver) OpenStream(s *mquic.RecvStream) mquic.StreamHandler {
	if s.ID() == 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.stream0 == nil {
			r.stream0 = &controlParser{r: r}
		}
		return r.stream0
	}
	return &pushParser{r: r, s: s, quietSince: time.Now()}
}

// resourceLocked returns the resource of pushID, creating it; nil when a
// new one is refused (MaxActivePushes).
func (r *Receiver) resourceLocked(pushID uint64) *Resource {
	if res := r.pushes[pushID]; res != nil {
		return res
	}
	// Forget the resources that settled first, keeping memory bounded.
	for len(r.pushes) >= r.cfg.MaxResources && len(r.settled) > 0 {
		old := r.pushes[r.settled[0]]
		r.settled = r.settled[1:]
		if old != nil {
			delete(r.pushes, old.PushID)
			delete(r.byStream, old.StreamID)
		}
	}
	if len(r.active) >= r.cfg.MaxActivePushes && !r.evictLocked() {
		r.stats.PushesRefused++
		r.caps.bit("max-active-pushes")
		return nil
	}
	res := &Resource{PushID: pushID, length: -1, complete: -1}
	r.pushes[pushID] = res
	r.active[pushID] = res
	return res
}

// evictLocked makes room for a new push by evicting the oldest push in
// progress that has a promise and no push stream, and reports whether
// there was one. Pushes of a real sender get their stream right after their
// promise; a flood of forged promises gets none.
func (r *Receiver) evictLocked() bool {
	var old *Resource
	for _, res := range r.active {
		if res.parser == nil && (old == nil || res.since.Before(old.since) || res.since.Equal(old.since) && res.PushID < old.PushID) {
			old = res
		}
	}
	if old == nil {
		return false
	}
	r.stats.PushesEvicted++
	r.caps.bit("max-active-pushes")
	if r.withdrawPromiseLocked(old) {
		// Nobody heard of it: forget it altogether.
		r.stats.PushesForgotten++
		delete(r.active, old.PushID)
		delete(r.pushes, old.PushID)
		return true
	}
	r.failLocked(old, ErrPushEvicted)
	return true
}

// capBodyRangesLocked brings res's received ranges back to three quarters
// of MaxBodyRanges by giving up its smallest islands after the first (a
// forger's scattered bytes, or the shortest runs between losses): they
// become missing, to be repaired like lost bytes. res.mu is held.
func (r *Receiver) capBodyRangesLocked(res *Resource) {
	r.stats.BodyRangesCapped++
	r.caps.bit("max-body-ranges")
	rs := res.received.Ranges()
	drop := len(rs) - r.cfg.MaxBodyRanges*3/4
	islands := slices.Clone(rs[1:])
	slices.SortStableFunc(islands, func(a, b ranges.Range) int { return cmp.Compare(a.Len(), b.Len()) })
	for _, is := range islands[:drop] {
		res.received.Remove(is.Start, is.End)
	}
	// Free what the body holds between the islands kept.
	f, ok := res.body.(Forgetter)
	if !ok {
		return
	}
	prev := uint64(res.first)
	for _, k := range res.received.Ranges() {
		if k.Start > prev {
			f.Forget(int64(prev)-res.first, int64(k.Start-prev))
		}
		prev = max(prev, k.End)
	}
	if end := uint64(res.first) + uint64(max(res.length, 0)); res.length >= 0 && end > prev {
		f.Forget(int64(prev)-res.first, int64(end-prev))
	}
}

// settleLocked records that res left StateReceiving.
func (r *Receiver) settleLocked(res *Resource) {
	if res.headless {
		delete(r.orphans, res.StreamID)
		return
	}
	delete(r.active, res.PushID)
	r.settled = append(r.settled, res.PushID)
}

// promiseLocked handles a PUSH_PROMISE.
func (r *Receiver) promiseLocked(pushID uint64, req *h3frame.Request) {
	res := r.resourceLocked(pushID)
	if res == nil {
		return
	}
	res.mu.Lock()
	if res.request != nil {
		res.mu.Unlock()
		return // a duplicate promise (draft: same push ID, same request)
	}
	res.request = req
	orphan := res.orphan
	if !orphan {
		res.since = time.Now() // under res.mu too: Promised reads it
	}
	res.mu.Unlock()
	if orphan {
		return // reported already, as an orphan: the promise only completes it
	}
	r.stats.Promises++
	r.maxPushID = max(r.maxPushID, pushID)
	if r.unpromised > 0 {
		r.promisesPassedLocked(pushID)
	}
	r.emitLocked(EventPromised, res)
	if pp := res.parser; pp != nil && pp.finished {
		// Its push stream ended before the promise came (the promise was
		// held behind a loss on stream 0): settle it now.
		r.finishPushLocked(pp, true)
	}
}

// promisesPassedLocked reports as orphans the push streams that ended
// without their promise and whose push ID is below pushID, just promised:
// promises are parsed in stream-0 order, so theirs were lost
// (KeepOrphans). They are reported before pushID's promise.
func (r *Receiver) promisesPassedLocked(pushID uint64) {
	r.unpromised = 0
	for _, res := range r.active {
		pp := res.parser
		if pp == nil || !pp.finished || res.Request() != nil {
			continue
		}
		if res.PushID < pushID {
			r.stats.UnpromisedPush++
			r.orphanLocked(pp, true)
		} else {
			r.unpromised++
		}
	}
}

// failLocked marks res failed and reports it (once). A push that arrived
// whole and waits for its verification is past failing this way. The body
// is discarded off the packet path.
func (r *Receiver) failLocked(res *Resource, err error) {
	res.mu.Lock()
	if res.state != StateReceiving || res.verifying {
		res.mu.Unlock()
		return
	}
	res.state, res.err = StateFailed, err
	if res.body != nil {
		r.queueLocked(&r.slowQ, workItem{body: res.body})
	}
	if b := res.digests.block; b != nil { // a failed push needs no digests
		res.digests.block = nil
		r.freeBlockLocked(b)
	}
	res.mu.Unlock()
	r.settleLocked(res)
	r.stats.Failed++
	if res.headless {
		// Neither its push ID nor its header section is known: nobody
		// can ask for it, and its promise (if any) fails on its own.
		r.log.Debug("orphan push stream failed", "stream", res.StreamID, "err", err)
		return
	}
	r.log.Debug("push failed", "push_id", res.PushID, "path", res.Path(), "err", err)
	r.emitLocked(EventFailed, res)
	r.checkEndLocked()
}

// checkEndLocked ends the session once a response carried connection: close
// and no push is still in progress or being verified. Once that response's
// own push has left receiving, every push still receiving was sent before
// it (the draft puts connection: close on the last response) and lost its
// tail or the head of its stream: it is settled now, not after PushTimeout,
// so that the end is known as soon as the last push arrives.
func (r *Receiver) checkEndLocked() {
	if r.ending == nil || r.ended || r.sweeping {
		return
	}
	if _, receiving := r.active[r.ending.PushID]; !receiving && len(r.active)+len(r.orphans) > 0 {
		r.sweeping = true // the settling below calls back here
		for _, res := range r.orphans {
			r.finishPushLocked(res.parser, false)
		}
		for _, res := range r.active {
			if res.parser == nil {
				r.failLocked(res, ErrPushLost)
			} else {
				r.finishPushLocked(res.parser, false)
			}
		}
		r.sweeping = false
	}
	if r.verifying > 0 {
		return
	}
	for _, res := range r.active {
		res.mu.Lock()
		st, promised := res.state, res.request != nil
		res.mu.Unlock()
		if st == StateReceiving && promised && res.PushID <= r.maxPushID {
			return
		}
	}
	r.ended = true
	r.emitLocked(EventSessionEnd, r.ending)
	close(r.endedCh)
}

// expire reports pushes that went quiet for PushTimeout, and promises
// whose push stream never came. It runs on every tick of Run: a push stream
// the transport called since the last tick starts its quiet time anew.
func (r *Receiver) expire(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, res := range r.orphans {
		switch pp := res.parser; {
		case pp.heard:
			pp.heard, pp.quietSince = false, now
		case now.Sub(pp.quietSince) >= r.cfg.PushTimeout:
			r.finishPushLocked(pp, false)
		}
	}
	for _, res := range r.active { // only pushes still receiving
		pp := res.parser
		switch {
		case pp == nil:
			// While an orphan stream is receiving, a promise without a
			// stream may be its: it waits, so that the orphan is reported
			// first and the promise's failure finds it matched.
			if len(r.orphans) == 0 && now.Sub(res.since) >= r.cfg.PushTimeout {
				r.failLocked(res, ErrPushLost)
			}
		case pp.heard:
			pp.heard, pp.quietSince = false, now
		case now.Sub(pp.quietSince) >= r.cfg.PushTimeout:
			r.finishPushLocked(pp, false)
		}
	}
}

// finishAll reports every push still in progress when the session stops.
func (r *Receiver) finishAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, res := range r.orphans {
		r.finishPushLocked(res.parser, false)
	}
	for _, res := range r.active { // only pushes still receiving
		switch {
		case res.parser == nil:
			r.failLocked(res, ErrPushLost)
		case res.Request() == nil && !r.cfg.KeepOrphans:
			r.stats.UnpromisedPush++
			r.failLocked(res, ErrPromiseLost)
		default:
			r.finishPushLocked(res.parser, false)
		}
	}
}

// headersLocked records a response on its resource and prepares its body.
func (r *Receiver) headersLocked(res *Resource, resp *h3frame.Response) error {
	res.mu.Lock()
	defer res.mu.Unlock()
	res.response = resp
	var err error
	res.first, res.length, res.complete, err = responseSpan(resp)
	if err != nil {
		return err
	}
	res.close = hasToken(resp.Header.Values("Connection"), "close")
	body, err := r.cfg.Storage.NewBody(res, res.length)
	if err != nil {
		return err
	}
	res.body = body
	res.digests.h = newHasher(resp.Header, resp.Status, r.cfg.Profile)
	return nil
}

// responseSpan is the part of its representation a response's body
// carries (Resource.Span), from Content-Length and Content-Range; -1 where
// unknown.
func responseSpan(resp *h3frame.Response) (first, length, complete int64, err error) {
	length, complete = -1, -1
	if cl := resp.Header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, 0, fmt.Errorf("%w: content-length %q", ErrMalformedPush, cl)
		}
		length = n
	}
	if resp.Status == http.StatusPartialContent {
		cr, err := h3frame.ParseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return 0, 0, 0, fmt.Errorf("%w: %w", ErrMalformedPush, err)
		}
		first, complete = cr.First, cr.Complete
		if length < 0 {
			length = cr.Len()
		} else if length != cr.Len() {
			return 0, 0, 0, fmt.Errorf("%w: content-length %d but content-range covers %d bytes", ErrMalformedPush, length, cr.Len())
		}
	} else if length >= 0 {
		complete = length
	}
	return first, length, complete, nil
}

func hasToken(values []string, token string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// finishPushLocked settles a push whose stream ended (fin) or went quiet
// (expire, finishAll).
func (r *Receiver) finishPushLocked(pp *pushParser, fin bool) {
	res := pp.res
	if res == nil {
		return
	}
	res.mu.Lock()
	st, promised, resp := res.state, res.request != nil, res.response
	res.mu.Unlock()
	if st != StateReceiving {
		return
	}
	switch {
	case res.headless:
		// No promise can find it: it is reported as it ends.
		r.orphanLocked(pp, fin)
		return
	case !promised:
		// Not promised (yet): the promise may still come until the push
		// stream has been quiet for PushTimeout (expire), or until a later
		// promise has been parsed (promisesPassedLocked).
		switch {
		case !fin:
			r.stats.UnpromisedPush++
			if r.cfg.KeepOrphans {
				r.orphanLocked(pp, false)
			} else {
				r.failLocked(res, ErrPromiseLost)
			}
		case r.cfg.KeepOrphans && r.stats.Promises > 0 && r.maxPushID > res.PushID:
			r.stats.UnpromisedPush++
			r.orphanLocked(pp, true)
		case !pp.finished:
			pp.finished = true
			if r.cfg.KeepOrphans {
				r.unpromised++
			}
		}
		return
	case resp == nil && pp.orphan:
		r.orphanLocked(pp, fin)
		return
	case resp == nil:
		r.failLocked(res, ErrHeadersLost)
		return
	case pp.trailerLost:
		r.failLocked(res, ErrTrailersLost)
		return
	}
	res.mu.Lock()
	if res.length < 0 && fin && !pp.desync {
		// No content-length: the body is what arrived in order.
		res.length = int64(pp.bodyEnd) - res.first
		if res.complete < 0 && resp.Status != http.StatusPartialContent {
			res.complete = res.length
		}
	}
	missing := res.missingLocked()
	unknown := res.length < 0
	res.mu.Unlock()
	if unknown {
		r.failLocked(res, fmt.Errorf("%w: body length unknown after a loss", ErrMalformedPush))
		return
	}
	if len(missing) > 0 {
		res.mu.Lock()
		res.state = StateIncomplete
		r.queueBlockLocked(res) // the digests of the bytes before the first loss, for Verify
		res.mu.Unlock()
		r.settleLocked(res)
		r.stats.Incomplete++
		r.emitLocked(EventIncomplete, res)
		r.checkEndLocked()
		return
	}
	// Every byte arrived: the digest worker checks the push once it has
	// hashed the blocks queued before, unless the check must read the body
	// back (the slow worker's).
	res.mu.Lock()
	res.verifying = true
	q := &r.digestQ
	if !res.digestsWillCover() {
		q = &r.slowQ
	}
	r.queueBlockLocked(res)
	res.mu.Unlock()
	delete(r.active, res.PushID)
	r.verifying++
	r.queueLocked(q, workItem{res: res})
}

// orphanLocked settles the push stream of pp, whose promise or header
// section was lost, as an orphan (KeepOrphans): its body bytes are kept for
// the caller to identify and repair. fin: its stream ended, in sync.
func (r *Receiver) orphanLocked(pp *pushParser, fin bool) {
	res := pp.res
	res.mu.Lock()
	if res.state != StateReceiving || res.verifying {
		res.mu.Unlock()
		return
	}
	res.state, res.orphan, res.seenEnd = StateIncomplete, true, -1
	if fin && !pp.desync && !pp.dead && pp.headersDone {
		res.seenEnd = int64(pp.bodyEnd)
		if res.response != nil && res.length < 0 {
			// No content-length: the body is what arrived in order.
			res.length = int64(pp.bodyEnd) - res.first
			if res.complete < 0 && res.response.Status != http.StatusPartialContent {
				res.complete = res.length
			}
		}
	}
	r.queueBlockLocked(res)
	res.mu.Unlock()
	r.settleLocked(res)
	r.stats.Orphans++
	r.log.Debug("orphan push stream kept", "stream", res.StreamID, "push_id_known", !res.headless, "received", len(res.Received()))
	r.emitLocked(EventOrphan, res)
	r.checkEndLocked()
}

// headlessLocked makes pp, whose first packet (push ID and header section)
// was lost, an orphan (KeepOrphans), and reports whether it did: not past
// MaxActivePushes orphans, nor when no body can be stored.
func (r *Receiver) headlessLocked(pp *pushParser) bool {
	if len(r.orphans) >= r.cfg.MaxActivePushes {
		r.stats.PushesRefused++
		r.caps.bit("max-active-pushes")
		return false
	}
	res := &Resource{StreamID: pp.s.ID(), length: -1, complete: -1, headless: true, parser: pp}
	body, err := r.cfg.Storage.NewBody(res, -1)
	if err != nil {
		r.log.Debug("no storage for an orphan push stream", "stream", pp.s.ID(), "err", err)
		return false
	}
	res.body = body
	r.orphans[pp.s.ID()] = res
	pp.res = res
	return true
}

// settleCheckedLocked settles a push that arrived whole once its checks
// ended: complete, or failed with err.
func (r *Receiver) settleCheckedLocked(res *Resource, err error) {
	res.mu.Lock()
	res.verifying = false
	if err != nil {
		res.state, res.err = StateFailed, err
		r.stats.Failed++
		switch IntegrityKind(err) {
		case IntegrityDigest:
			r.stats.DigestFailed++
		case IntegritySignature:
			r.stats.SignatureFailed++
		}
		r.log.Debug("push failed its checks", "push_id", res.PushID, "path", res.request.Path, "err", err)
	} else {
		res.state = StateComplete
		r.stats.Complete++
	}
	if err != nil && res.body != nil {
		r.queueLocked(&r.slowQ, workItem{body: res.body})
	}
	res.mu.Unlock()
	r.settleLocked(res)
	if err != nil {
		r.emitLocked(EventFailed, res)
	} else {
		r.emitLocked(EventComplete, res)
	}
	r.checkEndLocked()
}
