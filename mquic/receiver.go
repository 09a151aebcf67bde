package mquic

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Defaults of ReceiverConfig.
const (
	DefaultMaxStreams       = 1024
	DefaultMaxBufferedBytes = 16 << 20
	DefaultReorderThreshold = 3
	DefaultReorderDelay     = 20 * time.Millisecond
	DefaultReplayWindow     = 4096
	DefaultReadBatch        = 32
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
type Receiver struct {
	conn   net.PacketConn
	batchR mcast.BatchReader
	cfg    ReceiverConfig
	log    *slog.Logger

	source    netip.Addr
	sessionID []byte
	pnLen     int
	idle      time.Duration

	mu         sync.Mutex
	prot       *protect.Protector
	win        pnWindow
	streams    map[uint64]*RecvStream
	closed     ranges.Set // finished streams, keyed by streamKey
	waiting    []*RecvStream
	buffered   int
	free       [][]byte
	lastPacket time.Time
	now        time.Time // when the datagrams being handled were read
	stats      ReceiverStats
	frame      wire.Frame
	auth       *manifest.Authenticator // nil in a symmetric session
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
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Params = p
	r := &Receiver{
		conn:      conn,
		cfg:       cfg,
		log:       cfg.Logger.With("session", fmt.Sprintf("%x", p.SessionID), "group", p.Group.String()),
		source:    p.Source.Unmap(),
		sessionID: p.SessionID,
		pnLen:     p.PacketNumberLen, // 0: learnt from the first packet
		idle:      p.IdleTimeout,
		prot:      prot,
		win:       newPNWindow(cfg.ReplayWindow),
		streams:   make(map[uint64]*RecvStream),
		tr:        newRecvTrace(cfg.Tracer, p.SessionID, cfg.ReplayWindow, cfg.ReorderThreshold),
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
	}
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
	s.Buffered = r.buffered
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

// Run reads and handles packets until ctx ends (it returns nil), the
// session idle timeout passes without a packet (ErrIdleTimeout), or reading
// fails.
func (r *Receiver) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { _ = r.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	r.mu.Lock()
	r.lastPacket = time.Now()
	r.mu.Unlock()

	var msgs []mcast.Message
	var buf []byte
	if r.batchR != nil {
		size := 4096
		if g, ok := r.conn.(interface{ GRO() bool }); ok && g.GRO() {
			size = 1 << 16
		}
		msgs = make([]mcast.Message, r.cfg.ReadBatch)
		for i := range msgs {
			msgs[i].Buf = make([]byte, size)
		}
	} else {
		buf = make([]byte, 1<<16)
	}
	var deadline time.Time
	for {
		next := r.nextDeadline()
		if !next.Equal(deadline) {
			deadline = next
			if err := r.conn.SetReadDeadline(deadline); err != nil {
				return fmt.Errorf("mquic: receiver: %w", err)
			}
			// That may have replaced the past deadline ctx's AfterFunc set to
			// wake the read: look at ctx again.
			if ctx.Err() != nil {
				return nil
			}
		}
		var err error
		if r.batchR != nil {
			var n int
			n, err = r.batchR.ReadBatch(msgs)
			if n > 0 {
				r.mu.Lock()
				r.now = time.Now() // one clock reading per batch
				for i := range msgs[:n] {
					m := &msgs[i]
					src := m.Src
					m.Datagrams(func(p []byte) { r.handleLocked(p, src) })
				}
				r.afterBatchLocked(r.now)
				r.mu.Unlock()
			}
		} else {
			var n int
			var from net.Addr
			n, from, err = r.conn.ReadFrom(buf)
			if n > 0 {
				r.mu.Lock()
				r.now = time.Now()
				r.handleLocked(buf[:n], addrPort(from))
				r.afterBatchLocked(r.now)
				r.mu.Unlock()
			}
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("mquic: receiver read: %w", err)
		}
		now := time.Now()
		r.mu.Lock()
		r.afterBatchLocked(now)
		idle := r.idle > 0 && now.Sub(r.lastPacket) >= r.idle
		r.mu.Unlock()
		if idle {
			r.log.Info("session idle timeout", "timeout", r.idle)
			return ErrIdleTimeout
		}
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort()
	}
	return netip.AddrPort{}
}

// nextDeadline is when Run must wake even without packets: for the idle
// timeout or for reordering holes that are due.
func (r *Receiver) nextDeadline() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var d time.Time
	if r.idle > 0 {
		d = r.lastPacket.Add(r.idle)
	}
	heldPN, held := r.heldData()
	for _, s := range r.waiting {
		if len(s.pending) > 0 {
			seg := &s.pending[0]
			t := seg.at.Add(r.cfg.ReorderDelay)
			if held && heldPN < seg.pn {
				t = seg.at.Add(max(r.cfg.ReorderDelay, r.cfg.AuthReorderDelay))
			}
			if d.IsZero() || t.Before(d) {
				d = t
			}
		}
	}
	if r.auth != nil {
		if t, ok := r.auth.Deadline(); ok && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	return d
}

// HandlePacket handles one datagram received from src, as Run does. It lets
// callers feed packets from elsewhere (a capture, a test).
func (r *Receiver) HandlePacket(pkt []byte, src netip.AddrPort) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = time.Now()
	r.handleLocked(pkt, src)
	r.afterBatchLocked(r.now)
}

// Flush reports every hole still waiting for reordering as a gap now, as
// when the session ends.
func (r *Receiver) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.waiting) > 0 {
		s := r.waiting[0]
		r.declareGap(s)
		r.drain(s)
		r.unlist(s)
	}
}

func (r *Receiver) handleLocked(pkt []byte, src netip.AddrPort) {
	r.stats.Datagrams++
	if r.source.IsValid() && src.Addr().Unmap() != r.source {
		r.stats.WrongSource++
		if r.tr != nil {
			r.tr.dropped("unknown", "", len(pkt), dropWrongSource)
		}
		return
	}
	dcid, pnOffset, err := wire.ParseShortHeader(pkt, len(r.sessionID))
	if err != nil {
		r.stats.NotShort++
		if r.tr != nil {
			r.tr.dropped("unknown", "", len(pkt), dropNotShort)
		}
		return
	}
	if !bytes.Equal(dcid, r.sessionID) {
		r.stats.WrongSession++
		if r.tr != nil {
			r.tr.dropped(packetType1RTT, hex.EncodeToString(dcid), len(pkt), dropWrongSession)
		}
		return
	}
	pnLen := r.pnLen
	if pnLen == 0 {
		if r.prot.HeaderProtection() {
			pnLen = DefaultPacketNumberLen
		} else {
			pnLen = int(pkt[0]&0x03) + 1
		}
	}
	var digest manifest.Digest
	if r.auth != nil {
		// The digest covers the packet as sent: take it before Open
		// decrypts in place.
		digest = manifest.Sum(pkt)
	}
	pn, payload, err := r.prot.Open(pkt, pnOffset, pnLen, r.win.largest, r.win.have)
	if err != nil {
		r.stats.DecryptFailed++
		if r.tr != nil {
			r.tr.dropped(packetType1RTT, r.tr.dcid, len(pkt), dropDecryptFailed)
		}
		return
	}
	switch r.win.check(pn) {
	case pnDuplicate:
		r.stats.Duplicate++
		if r.tr != nil {
			r.tr.droppedPN(pn, len(pkt), dropDuplicate)
		}
		return
	case pnStale:
		r.stats.Stale++
		if r.tr != nil {
			r.tr.droppedPN(pn, len(pkt), dropStale)
		}
		return
	}
	if r.tr != nil {
		r.tr.arrived(pn)
	}
	// Validate every frame before acting on any, so that a packet with an
	// unknown or malformed frame is dropped whole.
	manifests, others := 0, false
	for b := payload; len(b) > 0; {
		n, isManifest, err := r.parseFrame(b)
		if err != nil {
			why := dropBadFrame
			if errors.Is(err, wire.ErrUnknownFrameType) {
				r.stats.UnknownFrame++
				why = dropUnknownFrame
			} else {
				r.stats.BadFrame++
			}
			if r.tr != nil {
				r.tr.droppedPN(pn, len(pkt), why)
			}
			if r.auth == nil {
				r.win.mark(pn) // authenticated: never accept it again
			}
			return
		}
		if isManifest {
			manifests++
		} else if r.frame.Type != wire.FrameTypePadding {
			others = true
		}
		b = b[n:]
	}
	now := r.now
	if r.auth != nil {
		used := 0
		if manifests > 0 {
			used = r.handleManifests(payload, now)
		}
		if !r.auth.Authenticate(&digest, pn, now) {
			switch {
			case manifests > 0 && !others && used == 0:
				r.stats.BadManifest++
				if r.tr != nil {
					r.tr.droppedPN(pn, len(pkt), dropBadManifest)
				}
			case !r.auth.Hold(&digest, pn, payload, len(pkt), manifests > 0 && !others, now):
				r.stats.Duplicate++
				if r.tr != nil {
					r.tr.droppedPN(pn, len(pkt), dropDuplicate)
				}
			default:
				if r.tr != nil {
					r.tr.held(pn, payload, len(pkt))
				}
			}
			return
		}
	}
	r.accept(pn, pnLen, payload, len(pkt), now)
}

// parseFrame parses the frame at the start of b into r.frame or, in an
// asymmetric session, checks the MANIFEST frame there.
func (r *Receiver) parseFrame(b []byte) (n int, isManifest bool, err error) {
	if r.auth != nil && manifest.IsFrame(b) {
		_, n, err = manifest.ParseFrame(b)
		return n, true, err
	}
	n, err = wire.ParseFrame(b, &r.frame)
	return n, false, err
}

// handleManifests passes the MANIFEST frames of a validated payload to the
// authenticator, which releases the held packets they list. It returns how
// many were new or copies of verified ones.
func (r *Receiver) handleManifests(payload []byte, now time.Time) (used int) {
	for b := payload; len(b) > 0; {
		if !manifest.IsFrame(b) {
			n, _ := wire.ParseFrame(b, &r.frame)
			b = b[n:]
			continue
		}
		m, n, _ := manifest.ParseFrame(b)
		err := r.auth.HandleManifest(&m, now)
		if err == nil || errors.Is(err, manifest.ErrRepeat) {
			used++
		}
		r.noteInBand(m.Seq, err)
		b = b[n:]
	}
	return used
}

// releaseHeld accepts a held packet that a manifest listed.
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
	r.accept(pn, 0, payload, wireLen, r.now)
}

// accept takes an authenticated packet whose frames are valid: it marks its
// packet number and handles its frames (MANIFEST frames were handled
// already). pnLen is the packet-number length it was decoded with, which the
// first accepted packet fixes for the session; 0 when unknown (a released
// packet).
func (r *Receiver) accept(pn uint64, pnLen int, payload []byte, wireLen int, now time.Time) {
	if r.pnLen == 0 {
		r.pnLen = pnLen
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
	for b := payload; len(b) > 0; {
		n, isManifest, _ := r.parseFrame(b)
		b = b[n:]
		if isManifest {
			continue
		}
		f := &r.frame
		switch {
		case f.Type == wire.FrameTypePadding:
		case f.Type == wire.FrameTypePing:
			r.stats.Pings++
		case f.Type.IsStream():
			r.streamFrame(&f.Stream, pn, now)
		case f.Type == wire.FrameTypeResetStream:
			r.resetStream(&f.ResetStream)
		default:
			r.stats.ProhibitedFrames++
			r.stats.ProhibitedByType[f.Type]++
		}
	}
}

// streamAllowed reports whether the profile lets a sender use the stream:
// the reserved stream 0 and server-initiated unidirectional streams.
func streamAllowed(id uint64) bool { return id == 0 || id%4 == 3 }

// streamKey maps the allowed stream IDs onto consecutive numbers, so that
// the set of finished streams stays a few ranges.
func streamKey(id uint64) uint64 {
	if id == 0 {
		return 0
	}
	return id/4 + 1
}

func (r *Receiver) stream(id uint64) *RecvStream {
	if s := r.streams[id]; s != nil {
		return s
	}
	k := streamKey(id)
	if r.closed.Contains(k, k+1) {
		r.stats.ClosedStreamData++
		return nil
	}
	if len(r.streams) >= r.cfg.MaxStreams {
		r.stats.RefusedStreams++
		return nil
	}
	s := &RecvStream{id: id}
	s.h = r.cfg.Handler.OpenStream(s)
	if s.h == nil {
		s.discard = true
	}
	r.streams[id] = s
	return s
}

func (r *Receiver) streamFrame(f *wire.StreamFrame, pn uint64, now time.Time) {
	if !streamAllowed(f.StreamID) {
		r.stats.BadStreamFrames++
		return
	}
	s := r.stream(f.StreamID)
	if s == nil {
		return
	}
	end := f.Offset + uint64(len(f.Data))
	if f.Fin {
		if s.haveFinal && s.finalSize != end || s.received.Overlaps(end, 1<<62) {
			r.stats.BadStreamFrames++
			return
		}
		s.finalSize, s.haveFinal = end, true
	} else if s.haveFinal && end > s.finalSize {
		r.stats.BadStreamFrames++
		return
	}
	s.lastData = now
	added := s.received.Add(f.Offset, end)
	r.stats.StreamBytes += added
	switch {
	case s.discard:
		r.stats.DiscardedBytes += uint64(len(f.Data))
	case added == 0:
		// Nothing new (possible only from a misbehaving sender; replays are
		// dropped by packet number).
	case end <= s.delivered:
		// Late bytes of a range already reported as a gap.
		s.lost.Remove(f.Offset, end)
		s.h.Data(f.Offset, f.Data)
	case f.Offset <= s.delivered:
		s.h.Data(s.delivered, f.Data[s.delivered-f.Offset:])
		s.delivered = end
		r.drain(s)
	default:
		r.hold(s, f.Offset, f.Data, pn, now)
	}
	r.maybeFinish(s)
}

// hold buffers out-of-order data until the hole before it fills or is
// declared lost.
func (r *Receiver) hold(s *RecvStream, off uint64, data []byte, pn uint64, now time.Time) {
	var buf []byte
	if n := len(r.free); n > 0 && cap(r.free[n-1]) >= len(data) {
		buf = r.free[n-1][:len(data)]
		r.free = r.free[:n-1]
	} else {
		buf = make([]byte, len(data), max(len(data), 2048))
	}
	copy(buf, data)
	seg := segment{off: off, data: buf, pn: pn, at: now}
	i, _ := slices.BinarySearchFunc(s.pending, off, func(a segment, off uint64) int {
		if a.off < off {
			return -1
		} else if a.off > off {
			return 1
		}
		return 0
	})
	s.pending = slices.Insert(s.pending, i, seg)
	r.buffered += cap(buf)
	if !s.listed {
		s.listed = true
		r.waiting = append(r.waiting, s)
	}
	for r.buffered > r.cfg.MaxBufferedBytes && len(r.waiting) > 0 {
		// Over the cap: give up waiting on the oldest hole.
		w := r.waiting[0]
		r.stats.EarlyGaps++
		r.declareGap(w)
		r.drain(w)
		if len(w.pending) == 0 {
			r.unlist(w)
		}
		r.maybeFinish(w)
	}
}

// drain delivers buffered segments that now follow on.
func (r *Receiver) drain(s *RecvStream) {
	i := 0
	for ; i < len(s.pending) && s.pending[i].off <= s.delivered; i++ {
		seg := &s.pending[i]
		if end := seg.end(); end > s.delivered {
			if !s.discard {
				s.h.Data(s.delivered, seg.data[s.delivered-seg.off:])
			}
			s.delivered = end
		}
		r.release(seg.data)
	}
	if i > 0 {
		s.pending = slices.Delete(s.pending, 0, i)
	}
}

func (r *Receiver) release(b []byte) {
	r.buffered -= cap(b)
	if len(r.free) < 256 {
		r.free = append(r.free, b[:0])
	}
}

// declareGap reports the hole before the stream's first buffered segment.
func (r *Receiver) declareGap(s *RecvStream) {
	if len(s.pending) == 0 {
		return
	}
	from, to := s.delivered, s.pending[0].off
	if to <= from {
		return
	}
	s.lost.Add(from, to)
	r.stats.Gaps++
	r.stats.GapBytes += to - from
	if !s.discard {
		s.h.Gap(from, to)
	}
	s.delivered = to
}

func (r *Receiver) unlist(s *RecvStream) {
	s.listed = false
	if i := slices.Index(r.waiting, s); i >= 0 {
		r.waiting = slices.Delete(r.waiting, i, i+1)
	}
}

// afterBatchLocked declares the holes that waited long enough, and drops
// the held packets and digests whose time is up.
func (r *Receiver) afterBatchLocked(now time.Time) {
	if r.auth != nil {
		r.auth.Expire(now)
	}
	heldPN, held := r.heldData()
	for i := 0; i < len(r.waiting); {
		s := r.waiting[i]
		for len(s.pending) > 0 {
			seg := &s.pending[0]
			due := r.win.largest >= seg.pn+uint64(r.cfg.ReorderThreshold) || now.Sub(seg.at) >= r.cfg.ReorderDelay
			if due && held && heldPN < seg.pn && now.Sub(seg.at) < r.cfg.AuthReorderDelay {
				// An older packet waits for its manifest: it may fill the hole.
				due = false
			}
			if !due {
				break
			}
			r.declareGap(s)
			r.drain(s)
		}
		if len(s.pending) == 0 {
			s.listed = false
			r.waiting = slices.Delete(r.waiting, i, i+1)
			r.maybeFinish(s)
			continue
		}
		i++
	}
}

// heldData returns the oldest packet number held for a manifest when holes
// wait for held packets (AuthReorderDelay), and false otherwise.
func (r *Receiver) heldData() (uint64, bool) {
	if r.auth == nil || r.cfg.AuthReorderDelay <= 0 || len(r.waiting) == 0 {
		return 0, false
	}
	return r.auth.OldestHeldData()
}

// maybeFinish closes a stream whose every byte up to its final size is
// accounted for.
func (r *Receiver) maybeFinish(s *RecvStream) {
	if !s.haveFinal || s.delivered < s.finalSize || len(s.pending) > 0 {
		return
	}
	if _, open := r.streams[s.id]; !open {
		return
	}
	if !s.discard {
		s.h.Finish(s.finalSize)
	}
	r.closeStream(s)
}

func (r *Receiver) closeStream(s *RecvStream) {
	for i := range s.pending {
		r.release(s.pending[i].data)
	}
	s.pending = nil
	if s.listed {
		r.unlist(s)
	}
	delete(r.streams, s.id)
	k := streamKey(s.id)
	r.closed.Add(k, k+1)
}

func (r *Receiver) resetStream(f *wire.ResetStreamFrame) {
	if !streamAllowed(f.StreamID) {
		r.stats.BadStreamFrames++
		return
	}
	s := r.stream(f.StreamID)
	if s == nil {
		return
	}
	if s.haveFinal && s.finalSize != f.FinalSize || s.received.Overlaps(f.FinalSize, 1<<62) {
		r.stats.BadStreamFrames++
		return
	}
	s.finalSize, s.haveFinal = f.FinalSize, true
	if !s.discard {
		s.h.Reset(f.ErrorCode, f.FinalSize)
	}
	r.closeStream(s)
}

// Streams returns the IDs of the streams open now.
func (r *Receiver) Streams() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]uint64, 0, len(r.streams))
	for id := range r.streams {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
