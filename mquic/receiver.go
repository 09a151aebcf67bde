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

	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Defaults of ReceiverConfig.
const (
	DefaultMaxStreams        = 1024
	DefaultMaxClosedStreams  = 1024
	DefaultMaxStreamRanges   = 1024
	DefaultStreamIdleTimeout = time.Minute
	DefaultMaxBufferedBytes  = 16 << 20
	DefaultReorderThreshold  = 3
	DefaultReorderDelay      = 20 * time.Millisecond
	DefaultReplayWindow      = 4096
	DefaultReadBatch         = 32
	DefaultMaxWorkers        = 4
	DefaultReadGather        = 3 * time.Millisecond
	DefaultPNConfirm         = 4
	DefaultPNSilence         = 250 * time.Millisecond
	DefaultManifestOutage    = 3 * DefaultKeepAlive / 2
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
	// MaxStreams caps the streams open at once: a new stream over it evicts
	// the least recently active one but stream 0 (the control stream),
	// whose handler gets Reset(EvictedCode) (EvictedStreams). 0 means
	// DefaultMaxStreams.
	MaxStreams int
	// MaxClosedStreams caps the ranges of stream IDs remembered as
	// finished (frames for them are dropped); past it the scattered ones
	// are forgotten (ClosedForgotten). 0 means DefaultMaxClosedStreams.
	MaxClosedStreams int
	// MaxStreamRanges caps the byte ranges a stream keeps as received:
	// past it the oldest holes below the delivered offset are given up
	// (their late bytes dropped; they were reported as gaps), and holes
	// above it declared early (RangesCapped). 0 means
	// DefaultMaxStreamRanges.
	MaxStreamRanges int
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
	// MaxPNJump bounds how far one packet may move the largest packet
	// number ahead; 0 means half the replay window. A packet further ahead
	// is accepted but counted in another region of packet numbers (as are
	// authenticated packets below the window, which are not delivered),
	// and the window moves to that region only once it has received
	// PNConfirm packets (0: DefaultPNConfirm) while the window received
	// none for PNSilence (0: DefaultPNSilence). So a forged packet far
	// ahead never makes the real ones stale, and a receiver moved away from
	// the real packets follows them back (spec/transport.md,
	// "Packet-number jumps").
	MaxPNJump uint64
	PNConfirm int
	PNSilence time.Duration
	// ReadBatch is how many datagrams (or GRO buffers) one read takes.
	ReadBatch int
	// Workers is how many goroutines Run opens packets on (header
	// protection, AEAD, frame parsing and, in an asymmetric session, the
	// packet digest), so that a receiver is not held to one core; 0 means
	// GOMAXPROCS, at most DefaultMaxWorkers. Packets reach the streams in
	// the order they were read whatever the number.
	Workers int
	// ReadGather bounds how long Run waits, after a read that took under
	// half a batch, before it reads again, so that the datagrams of a slow
	// flow are read, opened and handed on several at a time instead of
	// each costing its own wake-ups of the reading and handling goroutines.
	// The wait adapts so that about a batch queues meanwhile, and stays
	// short enough for the socket's receive buffer to hold four times what
	// the session's peak flow rate brings in that time. It delays a packet
	// by at most this much. 0 means DefaultReadGather; negative never waits.
	ReadGather time.Duration
	// AuthReorderDelay, in an asymmetric session, is how long a stream hole
	// waits (instead of ReorderDelay) before it is reported as a gap while a
	// packet with an older packet number is held for its manifest: that
	// packet may fill the hole once a manifest lists it. 0 means no longer
	// than ReorderDelay. A receiver that fetches lost manifests over another
	// channel (unicast) sets it to cover the fetch, so that the packets the
	// fetched manifests release still reach their streams in order.
	AuthReorderDelay time.Duration
	// ManifestOutage, in an asymmetric session, is how long no manifest
	// may be verified before ManifestStatus takes the packets held after
	// the newest verified manifest as evidence that manifests are missing
	// (in-band ones are not arriving). Until then only the gaps in the
	// verified sequence numbers are: packets that no manifest lists may be
	// forged. 0 means DefaultManifestOutage: one and a half of a sender's
	// default keep-alive interval, after which a live sender has always
	// sent a packet, and so a manifest.
	ManifestOutage time.Duration
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
	// DecryptFailedSinceAccepted counts the packets of the session (its
	// source, its session ID) whose protection failed since the last packet
	// was accepted, and LastAccepted is when that was (on the receiver's
	// clock; when Run started if none was). Failures that keep coming
	// while nothing is accepted say that the sender uses other keys under
	// the same session ID (restarted with new keys): the layer above then
	// reads the session description again and treats it as a new session.
	DecryptFailedSinceAccepted uint64
	LastAccepted               time.Time
	Duplicate                  uint64 // packet number already received (replay)
	Stale                      uint64 // packet number older than the replay window (authenticated ones count towards moving it back)
	UnknownFrame               uint64 // packet with a frame type the session does not know
	BadFrame                   uint64 // packet with a malformed frame

	// Frames ignored inside accepted packets.
	ProhibitedFrames uint64                    // frames the profile prohibits (ACK, CRYPTO, ...)
	ProhibitedByType map[wire.FrameType]uint64 // the same, per frame type
	BadStreamFrames  uint64                    // STREAM/RESET_STREAM for a stream the profile does not allow, or inconsistent with the final size
	RefusedStreams   uint64                    // frames of new streams over MaxStreams when only stream 0 was open to evict
	ClosedStreamData uint64                    // frames for streams already finished
	IdleStreams      uint64                    // streams forgotten after StreamIdleTimeout
	DiscardedBytes   uint64                    // stream bytes dropped (ignored or discarded streams)

	// Loss.
	LostPackets      uint64 // packet numbers skipped and never received
	ReorderedPackets uint64 // packets that arrived after a higher number
	Gaps             uint64 // stream gaps reported
	GapBytes         uint64 // stream bytes reported lost
	EarlyGaps        uint64 // gaps declared early because of MaxBufferedBytes or MaxStreamRanges
	LargestPN        uint64
	Buffered         int // out-of-order bytes held now

	// Caps that bit (ReceiverConfig).
	EvictedStreams  uint64 // open streams evicted for a new one (MaxStreams)
	ClosedForgotten uint64 // finished stream-ID ranges forgotten (MaxClosedStreams)
	RangesCapped    uint64 // times a stream's received ranges were cut back (MaxStreamRanges)

	// Packet-number jumps (ReceiverConfig.MaxPNJump).
	PNLeaps uint64 // packets accepted more than MaxPNJump ahead of the largest packet number
	PNMoves uint64 // times the replay window moved to another region of packet numbers

	// Asymmetric sessions: a packet is accepted only once a verified
	// manifest lists it. Until then it is held (Auth.Held); held packets
	// that no manifest lists in time are dropped (Auth.Expired,
	// Auth.Evicted), and packets of only MANIFEST frames, whose manifests
	// were used, end in Auth.UnconfirmedManifests if no manifest lists
	// them. Every datagram is thus in Packets, a drop reason above,
	// BadManifest, or one of those four.
	BadManifest uint64             // packets of only MANIFEST frames that were all rejected
	Auth        manifest.AuthStats // manifests, digests and held packets

	// FEC counts forward error correction (sessions that advertise it):
	// repair packets, packets rebuilt, blocks that could not be. A rebuilt
	// packet is processed like a datagram read (and counted as accepted or
	// dropped), so with FEC, Datagrams plus FEC.Recovered is what is in
	// Packets, the drop reasons and FEC.RepairSkipped (repair packets not
	// needed, dropped unopened).
	FEC fec.DecoderStats
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
	gather  time.Duration // ReadGather, resolved

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
	win        pnTracker
	ra         reassembler
	lastPacket time.Time
	now        time.Time // when the datagrams being handled were read
	readFull   bool      // their read filled the batch: more may wait in the socket
	stats      ReceiverStats
	seq        opener                  // opens packets on the goroutine that holds mu
	rel        opener                  // parses the packets the authenticator releases
	auth       *manifest.Authenticator // nil in a symmetric session
	fec        *recvFEC                // nil without forward error correction (fec_recv.go)
	pre        *manifest.Prechecker    // the auth's: Run's openers verify signatures ahead
	mtrack     manifestTrack           // where verified manifests came from (receiver_manifest.go)
	tr         *recvTrace              // nil when not tracing
	caps       capLog                  // rate-limits the log lines of caps that bite
}

// orDefault sets *p to v when it is not positive (unset).
func orDefault[T int | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
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
	orDefault(&cfg.MaxStreams, DefaultMaxStreams)
	orDefault(&cfg.MaxClosedStreams, DefaultMaxClosedStreams)
	orDefault(&cfg.MaxStreamRanges, DefaultMaxStreamRanges)
	orDefault(&cfg.MaxBufferedBytes, DefaultMaxBufferedBytes)
	orDefault(&cfg.StreamIdleTimeout, DefaultStreamIdleTimeout)
	orDefault(&cfg.ReorderThreshold, DefaultReorderThreshold)
	orDefault(&cfg.ReorderDelay, DefaultReorderDelay)
	orDefault(&cfg.ReplayWindow, DefaultReplayWindow)
	if cfg.MaxPNJump == 0 {
		cfg.MaxPNJump = uint64(cfg.ReplayWindow / 2)
	}
	orDefault(&cfg.PNConfirm, DefaultPNConfirm)
	orDefault(&cfg.PNSilence, DefaultPNSilence)
	orDefault(&cfg.ManifestOutage, DefaultManifestOutage)
	orDefault(&cfg.ReadBatch, DefaultReadBatch)
	if cfg.ReadGather == 0 { // negative: off
		cfg.ReadGather = DefaultReadGather
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
		gather:    cfg.ReadGather,
		source:    p.Source.Unmap(),
		sessionID: p.SessionID,
		pnLen:     p.PacketNumberLen, // 0: learnt from the first packet
		idle:      p.IdleTimeout,
		prot:      prot,
		win:       newPNTracker(cfg.ReplayWindow, cfg.MaxPNJump, cfg.PNConfirm, cfg.PNSilence),
		tr:        newRecvTrace(cfg.Tracer, p.SessionID, cfg.ReplayWindow, cfg.ReorderThreshold),
	}
	r.pnLenAt.Store(int32(r.pnLen))
	r.caps = capLog{log: r.log, clock: func() time.Time { return r.now }}
	r.ra = reassembler{
		handler: cfg.Handler, maxStreams: cfg.MaxStreams, maxBuffered: cfg.MaxBufferedBytes,
		maxClosed: cfg.MaxClosedStreams, maxRanges: cfg.MaxStreamRanges, bite: r.capBit,
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
	if err := r.setupFEC(&p); err != nil {
		return nil, fmt.Errorf("mquic: new receiver: %w", err)
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
	s.PNLeaps, s.PNMoves = r.win.leaps, r.win.moves
	s.LastAccepted = r.lastPacket
	s.Buffered = r.ra.buffered
	if r.auth != nil {
		s.Auth = r.auth.Stats()
	}
	if r.fec != nil {
		s.FEC = r.fec.dec.Stats()
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
	if t, ok := r.fecDeadline(); ok && (d.IsZero() || t.Before(d)) {
		d = t
	}
	return d
}

// HandlePacket handles one datagram received from src, as Run does, on the
// caller's goroutine. It lets callers feed packets from elsewhere (a
// capture, a test).
func (r *Receiver) HandlePacket(pkt []byte, src netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now, r.readFull = r.clock(), false
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
		if r.skipRepair(p) {
			return
		}
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
	verdict := r.win.check(pn)
	switch {
	case verdict == pnDuplicate:
		r.stats.Duplicate++
		if r.tr != nil {
			r.tr.droppedPN(pn, wireLen, dropDuplicate)
		}
		return
	case verdict == pnStale && (r.auth != nil || p.frameErr != 0):
		// Only a packet authenticated on its own (symmetric sessions) may
		// count towards moving the window back (accept).
		r.stale(pn, wireLen)
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
			r.win.markAt(pn, r.now) // authenticated: never accept it again
		}
		return
	}
	r.noteFEC(p)
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
			case !r.hold(p, pn, wireLen, manifestOnly):
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

// hold passes an unauthenticated packet to the authenticator to wait for
// its manifest. Its payload is lent until the end of the read's processing
// (afterBatchLocked), as to the FEC decoder (noteFEC), unless it is a packet
// FEC rebuilt, whose buffer the next rebuilt packet takes.
func (r *Receiver) hold(p *rxPacket, pn uint64, wireLen int, manifestOnly bool) bool {
	if r.fec != nil && r.fec.rebuilding {
		return r.auth.Hold(&p.digest, pn, p.payload, wireLen, manifestOnly, r.now)
	}
	return r.auth.HoldLent(&p.digest, pn, p.payload, wireLen, manifestOnly, r.now)
}

// stale counts a packet below the replay window.
func (r *Receiver) stale(pn uint64, wireLen int) {
	r.stats.Stale++
	if r.tr != nil {
		r.tr.droppedPN(pn, wireLen, dropStale)
	}
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
		r.stats.DecryptFailedSinceAccepted++
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
		} else if errors.Is(err, manifest.ErrRateLimited) {
			r.capBit("max-verify-rate")
		}
		r.noteInBand(&f.m, err)
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
		r.stale(pn, wireLen)
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
	leaps, moves := r.win.leaps, r.win.moves
	late, deliver := r.win.markAt(pn, now)
	if r.win.leaps != leaps {
		r.capBit("max-pn-jump")
	}
	if r.win.moves != moves {
		r.capBit("replay-window-moved")
	}
	r.lastPacket = now
	r.stats.DecryptFailedSinceAccepted = 0
	if !deliver {
		// Below the window: it counts towards moving the window back to
		// where it belongs, but may be a replay.
		r.stale(pn, wireLen)
		return
	}
	if late {
		r.stats.ReorderedPackets++
	}
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
	r.recoverFEC(now)
	if r.auth != nil {
		r.auth.Expire(now)
		r.auth.Keep() // the read's buffers are reused after this
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
