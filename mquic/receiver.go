package mquic

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Defaults of ReceiverConfig.
const (
	DefaultMaxStreams        = 1024
	DefaultStreamIdleTimeout = time.Minute
	DefaultMaxBufferedBytes  = 16 << 20
	DefaultReorderThreshold  = 3
	DefaultReorderDelay      = 20 * time.Millisecond
	DefaultReplayWindow      = 4096
	DefaultReadBatch         = 32
	DefaultMaxWorkers        = 4
)

// ErrIdleTimeout is returned by Receiver.Run when no packet of the session
// arrived within the session idle timeout.
var ErrIdleTimeout = errors.New("mquic: session idle timeout")

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// Params are the session's parameters. They must validate.
	Params Params
	// Handler receives the streams.
	Handler Handler
	// MaxStreams caps the streams open at once; frames for more are dropped
	// and counted. 0 means DefaultMaxStreams.
	MaxStreams int
	// StreamIdleTimeout forgets a stream (stream 0 excepted) that has
	// brought nothing for this long, as if it had finished: its handler is
	// not called again and later frames count as ClosedStreamData. A
	// stream whose last packet, FIN included, was lost would otherwise stay
	// open for as long as the session runs, and after MaxStreams of them
	// every new stream would be refused. 0 means DefaultStreamIdleTimeout.
	StreamIdleTimeout time.Duration
	// MaxBufferedBytes caps out-of-order data held for reassembly; past it
	// the oldest gaps are declared lost early. 0 means DefaultMaxBufferedBytes.
	MaxBufferedBytes int
	// ReorderThreshold and ReorderDelay bound how long a hole in a stream
	// waits for late packets before it is reported as a gap: until this many
	// later packets have arrived or this much time has passed.
	ReorderThreshold int
	ReorderDelay     time.Duration
	// ReplayWindow is how many packet numbers below the largest one are
	// tracked; older packets are dropped. 0 means DefaultReplayWindow.
	ReplayWindow int
	// ReadBatch is how many datagrams (or GRO buffers) one read takes.
	ReadBatch int
	// Workers is how many goroutines Run opens packets on (header
	// protection, AEAD, frame parsing and, in an asymmetric session, the
	// packet digest), so that a receiver is not held to one core; 0 means
	// GOMAXPROCS, at most DefaultMaxWorkers. Packets reach the streams in
	// the order they were read whatever the number.
	Workers int
	// AuthReorderDelay, in an asymmetric session, is how long a stream hole
	// waits (instead of ReorderDelay) before it is reported as a gap while a
	// packet with an older packet number is held for its manifest: that
	// packet may fill the hole once a manifest lists it. 0 means no longer
	// than ReorderDelay. A receiver that fetches lost manifests over another
	// channel (unicast) sets it to cover the fetch, so that the packets the
	// fetched manifests release still reach their streams in order.
	AuthReorderDelay time.Duration
	// RequireAsymmetric refuses a session that does not advertise
	// asymmetric packet authentication (manifest.ExtensionID): NewReceiver
	// then fails. A session that advertises it is always authenticated,
	// whatever this says.
	RequireAsymmetric bool
	// Auth bounds asymmetric authentication: hold times and memory caps
	// (zero fields take the manifest package's defaults; Window defaults to
	// ReplayWindow).
	Auth manifest.AuthConfig
	// Tracer, when set, records the receiver's packets as qlog events
	// (spec/transport.md, "qlog"): transport:packet_received with the
	// frames of every accepted packet, transport:packet_dropped with the
	// reason of every dropped datagram, transport:packet_buffered for
	// packets held for their manifest, and recovery:packet_lost for packet
	// numbers that never arrived. The caller creates the trace (vantage
	// point client, the session ID as its group ID) and closes Tracer once
	// Run has returned. Tracing costs a few allocations and a JSON record
	// per packet; nil costs nothing.
	Tracer qlogwriter.Recorder
	// Logger receives the receiver's logs; nil means slog.Default().
	Logger *slog.Logger
}

// ReceiverStats are a Receiver's counters. Every datagram read is either
// accepted (Packets) or counted under exactly one drop reason.
type ReceiverStats struct {
	Datagrams   uint64 // datagrams handled
	Packets     uint64 // packets accepted
	Bytes       uint64 // UDP payload bytes of accepted packets
	StreamBytes uint64 // new stream bytes received
	Pings       uint64

	// Drops, by reason.
	WrongSource   uint64 // from an address other than the session's source
	NotShort      uint64 // long header, or too short for the short header
	WrongSession  uint64 // session ID (DCID) mismatch
	DecryptFailed uint64 // packet protection failed (wrong key, corrupt, truncated)
	Duplicate     uint64 // packet number already received (replay)
	Stale         uint64 // packet number older than the replay window
	UnknownFrame  uint64 // packet with a frame type the session does not know
	BadFrame      uint64 // packet with a malformed frame

	// Frames ignored inside accepted packets.
	ProhibitedFrames uint64                    // frames the profile prohibits (ACK, CRYPTO, ...)
	ProhibitedByType map[wire.FrameType]uint64 // the same, per frame type
	BadStreamFrames  uint64                    // STREAM/RESET_STREAM for a stream the profile does not allow, or inconsistent with the final size
	RefusedStreams   uint64                    // frames for streams over MaxStreams
	ClosedStreamData uint64                    // frames for streams already finished
	IdleStreams      uint64                    // streams forgotten after StreamIdleTimeout
	DiscardedBytes   uint64                    // stream bytes dropped (ignored or discarded streams)

	// Loss.
	LostPackets      uint64 // packet numbers skipped and never received
	ReorderedPackets uint64 // packets that arrived after a higher number
	Gaps             uint64 // stream gaps reported
	GapBytes         uint64 // stream bytes reported lost
	EarlyGaps        uint64 // gaps declared early because of MaxBufferedBytes
	LargestPN        uint64
	Buffered         int // out-of-order bytes held now

	// Asymmetric sessions: a packet is accepted only once a verified
	// manifest lists it. Until then it is held (Auth.Held); held packets
	// that no manifest lists in time are dropped (Auth.Expired,
	// Auth.Evicted), and packets of only MANIFEST frames, whose manifests
	// were used, end in Auth.UnconfirmedManifests if no manifest lists
	// them. Every datagram is thus in Packets, a drop reason above,
	// BadManifest, or one of those four.
	BadManifest uint64             // packets of only MANIFEST frames that were all rejected
	Auth        manifest.AuthStats // manifests, digests and held packets
}

// Receiver receives one multicast QUIC session: it drops packets from other
// sources or sessions, authenticates and decrypts, rejects replays, parses
// frames and reassembles streams for its Handler.
//
// Run reads on its own goroutine, opens packets on Workers goroutines and
// hands them, in the order they were read, to the goroutine that called
// Run, which calls the Handler and StreamHandler methods (HandlePacket and
// HandleManifest call them on their caller's goroutine), always with the
// Receiver's lock held and one at a time. Handlers must therefore not call
// the Receiver's methods (Stats, Streams, ...). The layer above takes its
// own lock inside those calls: the lock order is mquic.Receiver, then
// h3m.Receiver, then h3m.Resource.
type Receiver struct {
	conn    net.PacketConn
	batchR  mcast.BatchReader
	cfg     ReceiverConfig
	log     *slog.Logger
	clock   func() time.Time // time.Now, or a test's clock
	workers int

	source    netip.Addr
	sessionID []byte
	idle      time.Duration
	asym      bool
	// base is the largest packet number accepted plus one (0: none yet),
	// published after each batch for the goroutines that open the next
	// ones; pnLen likewise (0: not yet learnt).
	base    atomic.Uint64
	pnLenAt atomic.Int32
	running atomic.Bool // Run was called

	// mu is the Receiver's lock, taken before any lock of the handlers (see
	// Receiver). It guards what follows.
	mu         sync.Mutex
	prot       *protect.Protector
	pnLen      int
	win        pnWindow
	ra         reassembler
	lastPacket time.Time
	now        time.Time // when the datagrams being handled were read
	stats      ReceiverStats
	seq        opener                  // opens packets on the goroutine that holds mu
	rel        opener                  // parses the packets the authenticator releases
	auth       *manifest.Authenticator // nil in a symmetric session
	pre        *manifest.Prechecker    // the auth's: Run's openers verify signatures ahead
	mtrack     manifestTrack           // where verified manifests came from (receiver_manifest.go)
	tr         *recvTrace              // nil when not tracing
}

// NewReceiver creates a receiver for the session cfg.Params reading from
// conn (see mcast.ListenReceiver). If conn implements mcast.BatchReader,
// datagrams are read in batches. Call Run to start receiving.
func NewReceiver(conn net.PacketConn, cfg ReceiverConfig) (*Receiver, error) {
	p := cfg.Params.Clone()
	prot, err := p.Protector()
	if err != nil {
		return nil, fmt.Errorf("mquic: new receiver: %w", err)
	}
	if cfg.Handler == nil {
		return nil, errors.New("mquic: new receiver: no handler")
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxBufferedBytes <= 0 {
		cfg.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if cfg.StreamIdleTimeout <= 0 {
		cfg.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if cfg.ReorderThreshold <= 0 {
		cfg.ReorderThreshold = DefaultReorderThreshold
	}
	if cfg.ReorderDelay <= 0 {
		cfg.ReorderDelay = DefaultReorderDelay
	}
	if cfg.ReplayWindow <= 0 {
		cfg.ReplayWindow = DefaultReplayWindow
	}
	if cfg.ReadBatch <= 0 {
		cfg.ReadBatch = DefaultReadBatch
	}
	if cfg.Workers <= 0 {
		cfg.Workers = min(runtime.GOMAXPROCS(0), DefaultMaxWorkers)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Params = p
	r := &Receiver{
		conn:      conn,
		cfg:       cfg,
		log:       cfg.Logger.With("session", fmt.Sprintf("%x", p.SessionID), "group", p.Group.String()),
		clock:     time.Now,
		workers:   cfg.Workers,
		source:    p.Source.Unmap(),
		sessionID: p.SessionID,
		pnLen:     p.PacketNumberLen, // 0: learnt from the first packet
		idle:      p.IdleTimeout,
		prot:      prot,
		win:       newPNWindow(cfg.ReplayWindow),
		tr:        newRecvTrace(cfg.Tracer, p.SessionID, cfg.ReplayWindow, cfg.ReorderThreshold),
	}
	r.pnLenAt.Store(int32(r.pnLen))
	r.ra = reassembler{
		handler: cfg.Handler, maxStreams: cfg.MaxStreams, maxBuffered: cfg.MaxBufferedBytes,
		reorderThreshold: uint64(cfg.ReorderThreshold), reorderDelay: cfg.ReorderDelay,
		authReorderDelay: cfg.AuthReorderDelay, st: &r.stats, streams: make(map[uint64]*RecvStream),
		streamIdle: cfg.StreamIdleTimeout,
	}
	r.stats.ProhibitedByType = make(map[wire.FrameType]uint64)
	prof, err := sessionProfile(&p)
	if err != nil {
		return nil, fmt.Errorf("mquic: new receiver: %w", err)
	}
	if prof == nil && cfg.RequireAsymmetric {
		return nil, fmt.Errorf("mquic: new receiver: the session is symmetric (it does not advertise extension %04x), and asymmetric authentication is required", manifest.ExtensionID)
	}
	if prof != nil {
		ac := cfg.Auth
		if ac.Window == 0 {
			ac.Window = uint64(r.win.size)
		}
		if r.auth, err = manifest.NewAuthenticator(prof, ac, r.releaseHeld); err != nil {
			return nil, fmt.Errorf("mquic: new receiver: %w", err)
		}
		r.asym = true
		r.pre = r.auth.Prechecker()
	}
	r.seq = r.newOpener(prot)
	r.rel = r.newOpener(prot)
	if br, ok := conn.(mcast.BatchReader); ok {
		r.batchR = br
	}
	return r, nil
}

// Stats returns a snapshot of the receiver's counters.
func (r *Receiver) Stats() ReceiverStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.ProhibitedByType = make(map[wire.FrameType]uint64, len(r.stats.ProhibitedByType))
	for k, v := range r.stats.ProhibitedByType {
		s.ProhibitedByType[k] = v
	}
	s.LostPackets = r.win.missing
	s.LargestPN = r.win.largest
	s.Buffered = r.ra.buffered
	if r.auth != nil {
		s.Auth = r.auth.Stats()
	}
	return s
}

// sessionProfile returns the asymmetric-authentication profile the session
// advertises, or nil for a symmetric session.
func sessionProfile(p *Params) (*manifest.Profile, error) {
	for _, e := range p.Extensions {
		if e.ID == manifest.ExtensionID {
			prof, err := manifest.ParseProfile(e.Value)
			if err != nil {
				return nil, &ParamError{Param: "extensions", Err: fmt.Errorf("transport parameter %04x: %w", e.ID, err)}
			}
			return prof, nil
		}
	}
	return nil, nil
}

// nextDeadline is when Run must wake even without packets: for the idle
// timeout, for reordering holes that are due, or for held packets and
// digests that expire.
func (r *Receiver) nextDeadline() time.Time {
	var d time.Time
	if r.idle > 0 {
		d = r.lastPacket.Add(r.idle)
	}
	heldPN, held := r.heldData()
	if t := r.ra.deadline(heldPN, held); !t.IsZero() && (d.IsZero() || t.Before(d)) {
		d = t
	}
	if r.auth != nil {
		if t, ok := r.auth.Deadline(); ok && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

// HandlePacket handles one datagram received from src, as Run does, on the
// caller's goroutine. It lets callers feed packets from elsewhere (a
// capture, a test).
func (r *Receiver) HandlePacket(pkt []byte, src netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = r.clock()
	p := rxPacket{pkt: pkt, src: src}
	r.seq.reset()
	r.seq.open(&p, r.win.largest, r.win.have, r.pnLen)
	r.process(&p)
	r.afterBatchLocked(r.now)
}

// Flush reports every hole still waiting for reordering as a gap now, as
// when the session ends.
func (r *Receiver) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ra.flush()
}

// process is the ordered part of handling a datagram that an opener has
// opened (or dropped): the replay window, asymmetric authentication, and the
// frames. It runs with r.mu held, in the order the datagrams were read.
func (r *Receiver) process(p *rxPacket) {
	r.stats.Datagrams++
	wireLen := len(p.pkt)
	switch p.state {
	case rxDropped:
		r.countDrop(p.why)
		if r.tr != nil {
			switch p.why {
			case dropWrongSession:
				r.tr.dropped(packetType1RTT, hex.EncodeToString(p.dcid), wireLen, p.why)
			case dropDecryptFailed:
				r.tr.dropped(packetType1RTT, r.tr.dcid, wireLen, p.why)
			default:
				r.tr.dropped("unknown", "", wireLen, p.why)
			}
		}
		return
	case rxDeferred:
		// Opened here, against the window as it is now.
		r.seq.reset()
		r.seq.open(p, r.win.largest, r.win.have, r.pnLen)
		if p.state == rxDropped {
			r.stats.Datagrams--
			r.process(p)
			return
		}
	case rxOpened:
		if r.win.have && wire.DecodePacketNumber(r.win.largest, p.truncated, p.pnLen) != p.pn {
			// Unreachable unless an authenticated packet number jumped by
			// more than a quarter of the packet-number space while this
			// packet was being opened (see opener.open).
			r.countDrop(dropDecryptFailed)
			return
		}
	}
	pn := p.pn
	switch r.win.check(pn) {
	case pnDuplicate:
		r.stats.Duplicate++
		if r.tr != nil {
			r.tr.droppedPN(pn, wireLen, dropDuplicate)
		}
		return
	case pnStale:
		r.stats.Stale++
		if r.tr != nil {
			r.tr.droppedPN(pn, wireLen, dropStale)
		}
		return
	}
	if r.tr != nil {
		r.tr.arrived(pn)
	}
	if p.frameErr != 0 {
		// A packet with an unknown or malformed frame is dropped whole.
		r.countDrop(p.frameErr)
		if r.tr != nil {
			r.tr.droppedPN(pn, wireLen, p.frameErr)
		}
		if r.auth == nil {
			r.win.mark(pn) // authenticated: never accept it again
		}
		return
	}
	now := r.now
	if r.auth != nil {
		used := 0
		if len(p.mans) > 0 {
			used = r.handleManifests(p.mans, now)
		}
		if !r.auth.Authenticate(&p.digest, pn, now) {
			manifestOnly := len(p.mans) > 0 && !p.others
			switch {
			case manifestOnly && used == 0:
				r.stats.BadManifest++
				if r.tr != nil {
					r.tr.droppedPN(pn, wireLen, dropBadManifest)
				}
			case !r.auth.Hold(&p.digest, pn, p.payload, wireLen, manifestOnly, now):
				r.stats.Duplicate++
				if r.tr != nil {
					r.tr.droppedPN(pn, wireLen, dropDuplicate)
				}
			default:
				if r.tr != nil {
					r.tr.held(pn, p.payload, wireLen)
				}
			}
			return
		}
	}
	r.accept(pn, p.pnLen, p.payload, p.frames, wireLen, now)
}

// countDrop counts a datagram dropped before its frames were handled.
func (r *Receiver) countDrop(why dropReason) {
	switch why {
	case dropWrongSource:
		r.stats.WrongSource++
	case dropNotShort:
		r.stats.NotShort++
	case dropWrongSession:
		r.stats.WrongSession++
	case dropDecryptFailed:
		r.stats.DecryptFailed++
	case dropUnknownFrame:
		r.stats.UnknownFrame++
	case dropBadFrame:
		r.stats.BadFrame++
	}
}

// handleManifests passes the MANIFEST frames of a validated packet to the
// authenticator, which releases the held packets they list. It returns how
// many were new or copies of verified ones.
func (r *Receiver) handleManifests(mans []rxManifest, now time.Time) (used int) {
	for i := range mans {
		f := &mans[i]
		err := r.auth.HandleChecked(&f.m, now, f.sig)
		if err == nil || errors.Is(err, manifest.ErrRepeat) {
			used++
		}
		r.noteInBand(f.m.Seq, err)
	}
	return used
}

// releaseHeld accepts a held packet that a manifest listed. Its frames were
// validated when it arrived; they are parsed again from the
// authenticator's copy of the payload.
func (r *Receiver) releaseHeld(pn uint64, payload []byte, wireLen int, _ bool) {
	switch r.win.check(pn) {
	case pnDuplicate:
		r.stats.Duplicate++
		if r.tr != nil {
			r.tr.droppedPN(pn, wireLen, dropDuplicate)
		}
		return
	case pnStale:
		r.stats.Stale++
		if r.tr != nil {
			r.tr.droppedPN(pn, wireLen, dropStale)
		}
		return
	}
	// Released packets come one at a time: one frame space does.
	r.rel.reset()
	frames, _, _, _ := r.rel.parse(payload) // MANIFEST frames were handled on arrival
	r.accept(pn, 0, payload, frames, wireLen, r.now)
}

// accept takes an authenticated packet whose frames are valid: it marks its
// packet number and handles its frames (MANIFEST frames were handled
// already). pnLen is the packet-number length it was decoded with, which the
// first accepted packet fixes for the session; 0 when unknown (a released
// packet).
func (r *Receiver) accept(pn uint64, pnLen int, payload []byte, frames []wire.Frame, wireLen int, now time.Time) {
	if r.pnLen == 0 && pnLen != 0 {
		r.pnLen = pnLen
		r.pnLenAt.Store(int32(pnLen))
	}
	if r.win.mark(pn) {
		r.stats.ReorderedPackets++
	}
	r.lastPacket = now
	r.stats.Packets++
	r.stats.Bytes += uint64(wireLen)
	if r.tr != nil {
		r.tr.received(pn, payload, wireLen)
	}
	for i := range frames {
		f := &frames[i]
		switch {
		case f.Type == wire.FrameTypePadding:
		case f.Type == wire.FrameTypePing:
			r.stats.Pings++
		case f.Type.IsStream():
			r.ra.streamFrame(&f.Stream, pn, now)
		case f.Type == wire.FrameTypeResetStream:
			r.ra.resetStream(&f.ResetStream)
		default:
			r.stats.ProhibitedFrames++
			r.stats.ProhibitedByType[f.Type]++
		}
	}
}

// afterBatchLocked declares the holes that waited long enough, and drops
// the held packets and digests whose time is up.
func (r *Receiver) afterBatchLocked(now time.Time) {
	if r.auth != nil {
		r.auth.Expire(now)
	}
	heldPN, held := r.heldData()
	r.ra.expire(r.win.largest, heldPN, held, now)
	r.ra.forgetIdle(now)
}

// heldData returns the oldest packet number held for a manifest when holes
// wait for held packets (AuthReorderDelay), and false otherwise.
func (r *Receiver) heldData() (uint64, bool) {
	if r.auth == nil || r.cfg.AuthReorderDelay <= 0 || len(r.ra.waiting) == 0 {
		return 0, false
	}
	return r.auth.OldestHeldData()
}

// Streams returns the IDs of the streams open now.
func (r *Receiver) Streams() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]uint64, 0, len(r.ra.streams))
	for id := range r.ra.streams {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
