package mquic

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go/qlogwriter"
)

// Defaults of SenderConfig.
const (
	DefaultMaxPacketSize = 1200 // UDP payload bytes
	DefaultBatchSize     = 32   // packets per batched write
	DefaultFlushDelay    = time.Millisecond
	DefaultKeepAlive     = time.Second
)

func keepAliveInterval(configured, idle time.Duration) time.Duration {
	switch {
	case configured < 0:
		return 0
	case configured > 0:
		return configured
	case idle > 0:
		return min(DefaultKeepAlive, idle/3)
	}
	return DefaultKeepAlive
}

// maxStreamOffset is the largest stream offset QUIC allows (2^62-1).
const maxStreamOffset = 1<<62 - 1

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Params are the session's parameters. They must validate.
	Params Params
	// MaxPacketSize is the UDP payload size of full packets; 0 means
	// DefaultMaxPacketSize.
	MaxPacketSize int
	// BatchSize is the largest number of packets written in one system call;
	// 0 means DefaultBatchSize.
	BatchSize int
	// FlushDelay is how long a partly filled packet may wait for more data
	// before it is sent anyway; 0 means DefaultFlushDelay.
	FlushDelay time.Duration
	// KeepAlive is how long the sender may stay silent before it sends a
	// PING; 0 means DefaultKeepAlive or a third of the idle timeout,
	// whichever is shorter, and a negative value disables keep-alives.
	// Receivers take a silent session for lost multicast (and fall back to
	// unicast), so keep it short.
	KeepAlive time.Duration
	// FirstPacketNumber is the packet number of the first packet sent.
	FirstPacketNumber uint64
	// OnPacket, when set, is called with every packet exactly as it goes on
	// the wire (protected), in packet-number order. It must not keep pkt.
	OnPacket func(pn uint64, pkt []byte)
	// Manifests, when set, makes the sender sign manifests of the digests of
	// its packets and send them in MANIFEST frames (asymmetric
	// authentication, spec/transport.md). The session must then advertise
	// manifest.ExtensionID with the profile of Manifests.Key; a session
	// that advertises it cannot be sent without Manifests.
	Manifests *manifest.SignerConfig
	// Tracer, when set, records every packet the sender sends as a qlog
	// transport:packet_sent event with the frames it carries
	// (spec/transport.md, "qlog"). The caller creates the trace (vantage
	// point server, the session ID as its group ID) and closes Tracer after
	// Close. Tracing costs a few allocations and a JSON record per packet;
	// nil costs nothing.
	Tracer qlogwriter.Recorder
	// Logger receives the sender's logs; nil means slog.Default().
	Logger *slog.Logger
}

// SenderStats are a Sender's counters.
type SenderStats struct {
	Packets     uint64 // packets sent
	Bytes       uint64 // UDP payload bytes sent
	StreamBytes uint64 // stream data bytes sent
	Pings       uint64 // keep-alive PING packets
	Writes      uint64 // batched write calls
	PaceWait    time.Duration
	Manifests   manifest.SignerStats // asymmetric sessions only
}

// Sender sends the packets of one multicast QUIC session: stream 0 and any
// number of server-initiated unidirectional streams, packetized, protected,
// paced to the session's peak flow rate and written in batches.
//
// Its methods and those of its streams are safe for concurrent use; data of
// concurrent streams is interleaved at packet granularity.
type Sender struct {
	conn     net.PacketConn
	batchW   mcast.BatchWriter // nil when conn does not batch
	dst      netip.AddrPort
	dstAddr  net.Addr
	log      *slog.Logger
	onPacket func(uint64, []byte)
	signer   *manifest.Signer // nil in a symmetric session
	tr       *sendTrace       // nil when not tracing

	sessionID  []byte
	pnLen      int
	hdrLen     int // first byte + session ID + packet number
	overhead   int // AEAD tag
	packetSize int
	payloadEnd int // largest len(packet) before sealing
	minPayload int
	maxChunk   int
	flushDelay time.Duration
	keepAlive  time.Duration

	mu         sync.Mutex
	prot       *protect.Protector
	nextPN     uint64
	nextUniID  uint64
	stream0    *SendStream
	cur        []byte // packet being filled; nil when none
	curPN      uint64
	curSince   time.Time
	curTrigger bool     // the packet being filled carries more than MANIFEST frames: it calls for a manifest
	emitting   bool     // inside emitManifests
	bufs       [][]byte // one buffer per batch slot
	queue      [][]byte // sealed packets waiting to be written
	batchN     int
	pace       pacer
	lastSend   time.Time
	err        error // sticky write error
	closed     bool
	wake       chan struct{}
	stop       context.CancelFunc
	done       chan struct{}

	st         SenderStats // counters, under mu
	batchNow   time.Time   // when the batch being gathered began
	flushArmed bool        // the timers goroutine will look at the packet being filled
}

// NewSender starts a sender for the session cfg.Params on conn, which must
// already be set up to reach the group (see mcast.ListenSender). If conn
// implements mcast.BatchWriter, packets are written in batches.
func NewSender(conn net.PacketConn, cfg SenderConfig) (*Sender, error) {
	p := cfg.Params.Clone()
	prot, err := p.Protector()
	if err != nil {
		return nil, fmt.Errorf("mquic: new sender: %w", err)
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = DefaultBatchSize
	}
	if cfg.FlushDelay <= 0 {
		cfg.FlushDelay = DefaultFlushDelay
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sender{
		conn:       conn,
		dst:        p.Group,
		dstAddr:    net.UDPAddrFromAddrPort(p.Group),
		log:        cfg.Logger.With("session", fmt.Sprintf("%x", p.SessionID), "group", p.Group.String()),
		onPacket:   cfg.OnPacket,
		tr:         newSendTrace(cfg.Tracer, p.SessionID),
		sessionID:  p.SessionID,
		pnLen:      p.PNLen(),
		overhead:   prot.Overhead(),
		packetSize: cfg.MaxPacketSize,
		flushDelay: cfg.FlushDelay,
		keepAlive:  keepAliveInterval(cfg.KeepAlive, p.IdleTimeout),
		prot:       prot,
		nextPN:     cfg.FirstPacketNumber,
		nextUniID:  3,
		wake:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	s.hdrLen = 1 + len(p.SessionID) + s.pnLen
	s.payloadEnd = s.packetSize - s.overhead
	s.minPayload = prot.MinPayload(s.pnLen)
	// The largest chunk that fits in an empty packet whatever the stream ID
	// and offset: worst-case varints in the STREAM frame header.
	room := s.payloadEnd - s.hdrLen
	s.maxChunk = room - wire.StreamFrameOverhead(maxStreamOffset, maxStreamOffset, room, true)
	if s.maxChunk < 64 {
		return nil, fmt.Errorf("mquic: new sender: packet size %d leaves only %d bytes for stream data", s.packetSize, s.maxChunk)
	}
	if err := s.setupSigner(&p, cfg.Manifests); err != nil {
		return nil, fmt.Errorf("mquic: new sender: %w", err)
	}
	if bw, ok := conn.(mcast.BatchWriter); ok {
		s.batchW = bw
	}
	s.bufs = make([][]byte, cfg.BatchSize)
	for i := range s.bufs {
		s.bufs[i] = make([]byte, 0, s.packetSize)
	}
	s.queue = make([][]byte, 0, cfg.BatchSize)
	s.pace = newPacer(p.PeakFlowRate, s.packetSize)
	s.batchN = s.pace.batchPackets(s.packetSize, cfg.BatchSize)
	s.stream0 = &SendStream{s: s, id: 0}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.timers(ctx)
	s.log.Debug("sender started", "suite", p.CipherSuite, "pn_len", s.pnLen, "packet_size", s.packetSize,
		"peak_flow_rate", p.PeakFlowRate, "batch", s.batchN)
	return s, nil
}

// setupSigner creates the manifest signer of an asymmetric session.
func (s *Sender) setupSigner(p *Params, cfg *manifest.SignerConfig) error {
	prof, err := sessionProfile(p)
	switch {
	case err != nil:
		return err
	case prof == nil && cfg == nil:
		return nil
	case prof == nil:
		return fmt.Errorf("manifest signing configured, but the session does not advertise extension %04x (receivers would drop MANIFEST frames)", manifest.ExtensionID)
	case cfg == nil:
		return fmt.Errorf("the session advertises asymmetric authentication (extension %04x) but no manifest signing key is configured", manifest.ExtensionID)
	}
	s.signer, err = manifest.NewSigner(prof, *cfg, s.payloadEnd-s.hdrLen)
	return err
}

// MaxChunk is the largest chunk WriteChunk accepts on any stream: what fits
// in one packet with the longest possible STREAM frame header.
func (s *Sender) MaxChunk() int { return s.maxChunk }

// Stream0 returns the reserved stream 0 (the first client-initiated
// bidirectional stream), which carries every PUSH_PROMISE.
func (s *Sender) Stream0() *SendStream { return s.stream0 }

// OpenStream opens the next server-initiated unidirectional stream
// (IDs 3, 7, 11, ...).
func (s *Sender) OpenStream() (*SendStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	if s.nextUniID > maxStreamOffset {
		return nil, errors.New("mquic: stream IDs exhausted")
	}
	st := &SendStream{s: s, id: s.nextUniID}
	s.nextUniID += 4
	return st, nil
}

// Flush sends every pending packet now, even if not full.
func (s *Sender) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

// Ping sends a packet with a PING frame (a keep-alive).
func (s *Sender) Ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.ensurePacket(1); err != nil {
		return err
	}
	s.cur = wire.AppendPing(s.cur)
	s.st.Pings++
	return s.flushLocked()
}

// WriteFrame places frame, one whole QUIC frame of an extension the session
// advertises, in a packet: the one being filled if it has room, otherwise a
// new one. It is sent like stream data (within FlushDelay, or at Flush).
func (s *Sender) WriteFrame(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if len(frame) == 0 || len(frame) > s.payloadEnd-s.hdrLen {
		return fmt.Errorf("mquic: frame of %d bytes; a packet takes 1 to %d", len(frame), s.payloadEnd-s.hdrLen)
	}
	if err := s.ensurePacket(len(frame)); err != nil {
		return err
	}
	s.cur = append(s.cur, frame...)
	return nil
}

// emitManifests sends the MANIFEST frames that are due (all of them with
// force), each whole in a packet. A frame that does not fit in the packet
// being filled goes in a packet of its own, which is then listed by a later
// manifest but does not call for one.
func (s *Sender) emitManifests(force bool) error {
	if s.signer == nil || s.emitting {
		return nil
	}
	s.emitting = true
	defer func() { s.emitting = false }()
	now := time.Now()
	for {
		f, err := s.signer.Next(now, force)
		if err != nil {
			s.err = fmt.Errorf("mquic: manifest: %w", err)
			s.log.Error("manifest signing failed; sender stops", "err", err)
			return s.err
		}
		if f == nil {
			return nil
		}
		alone := s.cur == nil || s.payloadEnd-len(s.cur) < len(f)
		if err := s.ensurePacket(len(f)); err != nil {
			return err
		}
		s.cur = append(s.cur, f...)
		if alone {
			s.curTrigger = false
		}
		if err := s.finishPacket(); err != nil {
			return err
		}
	}
}

// Close flushes pending data and stops the sender's timers. It does not
// close conn. Ending a session is the layer above's business (the draft has
// no transport-level close).
func (s *Sender) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	err := s.flushLocked()
	if err == nil {
		// Every packet sent must be listed in a manifest.
		if err = s.emitManifests(true); err == nil {
			err = s.flushLocked()
		}
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	<-s.done
	return err
}

// Stats returns the sender's counters.
func (s *Sender) Stats() SenderStats {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	st.Manifests = s.signerStats()
	return st
}

func (s *Sender) signerStats() manifest.SignerStats {
	if s.signer == nil {
		return manifest.SignerStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signer.Stats()
}

func (s *Sender) usable() error {
	if s.closed {
		return errClosed
	}
	return s.err
}

// room is how many bytes the packet being filled can still take.
func (s *Sender) room() int {
	if s.cur == nil {
		return s.payloadEnd - s.hdrLen
	}
	return s.payloadEnd - len(s.cur)
}

// ensurePacket makes sure a packet is open with at least need bytes free,
// finishing the current one if it has less.
func (s *Sender) ensurePacket(need int) error {
	if s.cur != nil && s.payloadEnd-len(s.cur) >= need {
		return nil
	}
	if s.cur != nil {
		if err := s.finishPacket(); err != nil {
			return err
		}
	}
	buf := s.bufs[len(s.queue)][:0]
	s.curPN = s.nextPN
	s.nextPN++
	s.cur = wire.AppendShortHeader(buf, s.sessionID, s.curPN, s.pnLen)
	// One clock reading per batch: the packets of a batch are filled
	// within microseconds, and FlushDelay and the manifest delay are
	// milliseconds.
	if len(s.queue) == 0 || s.batchNow.IsZero() {
		s.batchNow = time.Now()
	}
	s.curSince = s.batchNow
	s.curTrigger = true
	if !s.flushArmed {
		s.flushArmed = true
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// finishPacket seals the packet being filled and queues it, writing the
// queue when it holds a batch.
func (s *Sender) finishPacket() error {
	if s.cur == nil {
		return nil
	}
	if pad := s.minPayload - (len(s.cur) - s.hdrLen); pad > 0 {
		s.cur = wire.AppendPadding(s.cur, pad)
	}
	if s.tr != nil {
		s.tr.sent(s.curPN, s.cur[s.hdrLen:], len(s.cur)+s.overhead)
	}
	pkt := s.prot.Seal(s.cur, 1+len(s.sessionID), s.curPN)
	if s.signer != nil {
		s.signer.Add(s.curPN, pkt, s.curTrigger, s.curSince)
	}
	if s.onPacket != nil {
		s.onPacket(s.curPN, pkt)
	}
	s.queue = append(s.queue, pkt)
	s.cur = nil
	if len(s.queue) >= s.batchN || len(s.queue) == len(s.bufs) {
		if err := s.writeQueue(); err != nil {
			return err
		}
	}
	if s.signer != nil && s.signer.Ready() {
		// A manifest just filled up: send it (and the copies it makes due)
		// now. Manifests due by time are the timers' business.
		return s.emitManifests(false)
	}
	return nil
}

func (s *Sender) flushLocked() error {
	if err := s.finishPacket(); err != nil {
		return err
	}
	return s.writeQueue()
}

// writeQueue paces and writes the queued packets.
func (s *Sender) writeQueue() error {
	if len(s.queue) == 0 {
		return s.err
	}
	if s.err != nil {
		s.queue = s.queue[:0]
		return s.err
	}
	n := 0
	for _, p := range s.queue {
		n += len(p)
	}
	if wait := s.pace.take(time.Now(), n); wait > 0 {
		s.st.PaceWait += wait
		time.Sleep(wait)
	}
	err := s.write(s.queue)
	s.st.Writes++
	if err != nil {
		s.err = fmt.Errorf("mquic: send to %s: %w", s.dst, err)
		s.log.Error("send failed; sender stops", "err", err)
	} else {
		s.st.Packets += uint64(len(s.queue))
		s.st.Bytes += uint64(n)
	}
	s.queue = s.queue[:0]
	s.lastSend = time.Now()
	s.batchNow = s.lastSend
	return s.err
}

func (s *Sender) write(pkts [][]byte) error {
	if s.batchW != nil {
		for len(pkts) > 0 {
			n, err := s.batchW.WriteBatch(pkts, s.dst)
			if err != nil {
				return err
			}
			pkts = pkts[n:]
		}
		return nil
	}
	for _, p := range pkts {
		if _, err := s.conn.WriteTo(p, s.dstAddr); err != nil {
			return err
		}
	}
	return nil
}

// timers flushes packets that waited FlushDelay and sends keep-alive PINGs
// when the session has been quiet for a third of its idle timeout.
func (s *Sender) timers(ctx context.Context) {
	defer close(s.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		now := time.Now()
		next := time.Duration(-1)
		if s.cur != nil {
			if d := s.curSince.Add(s.flushDelay).Sub(now); d <= 0 {
				if err := s.flushLocked(); err != nil {
					s.log.Debug("timed flush failed", "err", err)
				}
			} else {
				next = d
			}
		}
		// From here on, a packet being filled is covered by the timer set
		// below; a packet started later wakes this goroutine.
		s.flushArmed = s.cur != nil
		if s.signer != nil && !s.closed && s.err == nil {
			if due, ok := s.signer.Deadline(); ok && !due.After(now) {
				if err := s.emitManifests(false); err == nil {
					_ = s.flushLocked()
				}
			}
			if due, ok := s.signer.Deadline(); ok && s.err == nil {
				d := max(due.Sub(now), time.Millisecond/10)
				if next < 0 || d < next {
					next = d
				}
			}
		}
		if s.keepAlive > 0 && !s.closed && s.err == nil {
			last := s.lastSend
			if last.IsZero() {
				last = now
				s.lastSend = now
			}
			d := last.Add(s.keepAlive).Sub(now)
			if d <= 0 {
				if err := s.ensurePacket(1); err == nil {
					s.cur = wire.AppendPing(s.cur)
					s.st.Pings++
					_ = s.flushLocked()
				}
				d = s.keepAlive
			}
			if next < 0 || d < next {
				next = d
			}
		}
		s.mu.Unlock()
		if next < 0 {
			next = time.Hour
		}
		t.Reset(next) // Go 1.23 timers: Reset leaves no stale tick behind
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// SendStream is one stream of a Sender.
type SendStream struct {
	s      *Sender
	id     uint64
	off    uint64
	fin    bool
	finPos int    // index of the last STREAM frame's type byte in s.cur, or -1
	finPN  uint64 // packet that holds it
}

// ID returns the stream ID.
func (st *SendStream) ID() uint64 { return st.id }

// Offset returns how many bytes have been written to the stream.
func (st *SendStream) Offset() uint64 {
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	return st.off
}

// Write queues p on the stream; it may be split across packets anywhere.
// It returns when all of p is packetized (not necessarily sent).
func (st *SendStream) Write(p []byte) (int, error) {
	s := st.s
	written := 0
	for len(p) > 0 {
		s.mu.Lock()
		// Take the lock per batch of packets so concurrent streams interleave.
		n, err := st.writeLocked(p, s.batchN*s.maxChunk)
		s.mu.Unlock()
		written += n
		p = p[n:]
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

func (st *SendStream) writeLocked(p []byte, limit int) (int, error) {
	s := st.s
	if err := s.usable(); err != nil {
		return 0, err
	}
	if st.fin {
		return 0, fmt.Errorf("mquic: write on finished stream %d", st.id)
	}
	written := 0
	for len(p) > 0 && written < limit {
		if st.off+uint64(len(p)) > maxStreamOffset {
			return written, fmt.Errorf("mquic: stream %d: offset beyond 2^62-1", st.id)
		}
		// A frame must carry at least one byte after its header.
		hdr := wire.StreamFrameOverhead(st.id, st.off, s.room(), true)
		if err := s.ensurePacket(hdr + 1); err != nil {
			return written, err
		}
		room := s.payloadEnd - len(s.cur)
		n := min(len(p), room-wire.StreamFrameOverhead(st.id, st.off, room, true))
		st.appendFrame(p[:n])
		written += n
		p = p[n:]
		if len(s.cur) >= s.payloadEnd-1 {
			if err := s.finishPacket(); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// WriteChunk queues p on the stream as one STREAM frame in one packet, so
// that a lost packet never splits it: the layer above uses it for HTTP/3
// frame headers and for DATA frames that must stay whole. len(p) must not
// exceed Sender.MaxChunk.
func (st *SendStream) WriteChunk(p []byte) error {
	s := st.s
	if len(p) > s.maxChunk {
		return fmt.Errorf("mquic: chunk of %d bytes exceeds the %d that fit in a packet", len(p), s.maxChunk)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	if st.fin {
		return fmt.Errorf("mquic: write on finished stream %d", st.id)
	}
	if st.off+uint64(len(p)) > maxStreamOffset {
		return fmt.Errorf("mquic: stream %d: offset beyond 2^62-1", st.id)
	}
	if err := s.ensurePacket(wire.StreamFrameOverhead(st.id, st.off, len(p), true) + len(p)); err != nil {
		return err
	}
	st.appendFrame(p)
	if len(s.cur) >= s.payloadEnd-1 {
		return s.finishPacket()
	}
	return nil
}

// ChunkRoom is the largest chunk that WriteChunk would place in the packet
// being filled without starting a new one, or, if that is less than min, in
// a new packet.
func (st *SendStream) ChunkRoom(min int) int {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	room := s.room()
	n := room - wire.StreamFrameOverhead(st.id, st.off, room, true)
	if n < min || n <= 0 {
		room = s.payloadEnd - s.hdrLen
		n = room - wire.StreamFrameOverhead(st.id, st.off, room, true)
	}
	return n
}

func (st *SendStream) appendFrame(p []byte) {
	s := st.s
	st.finPos = len(s.cur)
	st.finPN = s.curPN
	s.cur = wire.AppendStreamFrame(s.cur, wire.StreamFrame{StreamID: st.id, Offset: st.off, Data: p}, true)
	st.off += uint64(len(p))
	s.st.StreamBytes += uint64(len(p))
}

// Close ends the stream (FIN). When the stream's last frame is still in the
// packet being filled, its FIN bit is set there; otherwise an empty STREAM
// frame with FIN is sent.
func (st *SendStream) Close() error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.fin {
		return nil
	}
	if err := s.usable(); err != nil {
		return err
	}
	st.fin = true
	if s.cur != nil && st.off > 0 && st.finPN == s.curPN && st.finPos > 0 {
		s.cur[st.finPos] |= 0x01 // the FIN bit of a STREAM frame type
		return nil
	}
	if err := s.ensurePacket(wire.StreamFrameOverhead(st.id, st.off, 0, true)); err != nil {
		return err
	}
	s.cur = wire.AppendStreamFrame(s.cur, wire.StreamFrame{StreamID: st.id, Offset: st.off, Fin: true}, true)
	return nil
}

// Reset abandons the stream with RESET_STREAM carrying code.
func (st *SendStream) Reset(code uint64) error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return err
	}
	st.fin = true
	f := wire.ResetStreamFrame{StreamID: st.id, ErrorCode: code, FinalSize: st.off}
	if err := s.ensurePacket(len(wire.AppendResetStreamFrame(make([]byte, 0, 32), f))); err != nil {
		return err
	}
	s.cur = wire.AppendResetStreamFrame(s.cur, f)
	return nil
}
