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

	"github.com/h3m-project/h3m/mquic/fec"
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
	// the wire (protected), as it is sealed: in packet-number order, except
	// that with FEC a block's repair packets are sealed after packets that
	// follow them (they are sent in order). It must not keep pkt.
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
	// FECUnpadded, in a session with FEC, leaves full source packets and
	// repair packets at their own sizes instead of padding them to one
	// datagram size: fewer bytes on the wire (the padding is 1.8 % of a
	// 1200-byte packet, up to 3.5 % at other sizes), but GSO and GRO trains
	// are cut at each block's repair packets (more CPU per byte on fast
	// links). Adaptive FEC (origin.AutoFECConfig), whose point is to save
	// bytes, sets it.
	FECUnpadded bool
	// Logger receives the sender's logs; nil means slog.Default().
	Logger *slog.Logger
}

// SenderStats are a Sender's counters.
type SenderStats struct {
	Packets     uint64 // packets sent
	Bytes       uint64 // UDP payload bytes sent
	StreamBytes uint64 // stream data bytes sent
	Pings       uint64 // keep-alive PING packets
	// RepeatedBytes are stream bytes sent a second time (WriteChunkRepeated).
	RepeatedBytes uint64
	Writes        uint64 // batched write calls
	// PaceWait is how long the writer waited for the pacer in all.
	PaceWait time.Duration
	// PaceLost is how much of the pacing schedule the writer gave up since
	// Run started: time with nothing queued, or woken later than the pacer
	// lets it catch up (a loaded machine; spec/transport.md, "Pacing").
	// Over the time Run has run but this, a paced sender sends at exactly
	// the peak flow rate: Bytes*8 ≈ PeakFlowRate × (elapsed - PaceLost),
	// within the catch-up.
	PaceLost time.Duration
	// Queued is how many packets are sealed and wait for the writer now.
	Queued    int
	Manifests manifest.SignerStats // asymmetric sessions only
	FEC       fec.EncoderStats     // sessions with forward error correction only
}

// ErrNotRunning is returned by a Sender's writes, Flush and Close when they
// have to wait for packets to be written but Run has not been started (or
// not within RunStartTimeout of their wait).
var ErrNotRunning = errors.New("mquic: sender: Run has not been started, so queued packets are not written")

// RunStartTimeout is how long a Sender operation that waits for the writer
// waits for Run to start before it fails with ErrNotRunning: long enough for
// a goroutine started just before to be scheduled on a loaded machine.
const RunStartTimeout = 2 * time.Second

// queueBatches is how many full write batches (BatchSize packets) of sealed
// packets may wait for the writer: the bound past which writes block.
const queueBatches = 4

// Sender sends the packets of one multicast QUIC session: stream 0 and any
// number of server-initiated unidirectional streams, packetized, protected,
// paced to the session's peak flow rate and written in batches.
//
// The caller runs the sender with Run, on a goroutine of its own: Run is the
// writer that paces and writes the packets, flushes partly filled packets
// after FlushDelay, sends keep-alives and, in an asymmetric session, the
// manifests that fall due by time. Writes on the streams packetize and seal
// on the caller's goroutine and queue the packets for Run; past a bounded
// queue (4 × BatchSize packets) they block until Run has written some.
// Writes made before Run starts are queued the same way; if the queue fills,
// or Flush or Close must wait, and Run has not started within
// RunStartTimeout, they fail with ErrNotRunning instead of hanging. Close
// ends the session: it flushes, waits until Run has written everything,
// and makes Run return.
//
// Its methods and those of its streams are safe for concurrent use; data of
// concurrent streams is interleaved at packet granularity. No lock is held
// while the writer waits for the pacer or writes: Stats never waits for
// either.
type Sender struct {
	conn     net.PacketConn
	batchW   mcast.BatchWriter // nil when conn does not batch
	dst      netip.AddrPort
	dstAddr  net.Addr
	log      *slog.Logger
	onPacket func(uint64, []byte)
	onWrite  func(at time.Time, bytes int, lost time.Duration) // tests: each write as the pacer booked it
	signer   *manifest.Signer                                  // nil in a symmetric session
	fec      *fec.Encoder                                      // nil without forward error correction (fec_send.go)
	tr       *sendTrace                                        // nil when not tracing

	sessionID  []byte
	pnLen      int
	hdrLen     int // first byte + session ID + packet number
	overhead   int // AEAD tag
	packetSize int
	payloadEnd int // largest len(packet) before sealing
	fecPadEnd  int // with FEC: len(packet) before sealing of full packets, padded (fec_send.go); payloadEnd when unpadded
	minPayload int
	maxChunk   int
	flushDelay time.Duration
	keepAlive  time.Duration
	peakRate   uint64 // bit/s, 0: unpaced
	batchN     int    // packets gathered before a write (about 1 ms at the paced rate)
	maxBatch   int    // most packets in one write

	// kick wakes the writer: a batch is ready, a flush is asked for, or a
	// packet was started that the flush timer must cover.
	kick chan struct{}

	// mu guards what follows. It is never held while sleeping or making a
	// system call: the writer (Run) takes it only to pick the packets to
	// write, and to count them once written.
	mu         sync.Mutex
	cond       *sync.Cond // on mu: room in the queue, packets written, Run started or ended
	prot       *protect.Protector
	nextPN     uint64
	nextUniID  uint64
	stream0    *SendStream
	slots      [][]byte    // ring of packet buffers: queued (sealed) packets, then the one being filled
	since      []time.Time // when each slot's packet was started
	head, tail uint64      // slots [head, tail) are sealed and queued (indices mod len(slots))
	flushTo    uint64      // write the queue up to here even if it is not a full batch
	cur        []byte      // packet being filled, in slot tail; nil when none
	curPN      uint64
	curSince   time.Time
	curTrigger bool   // the packet being filled carries more than MANIFEST frames: it calls for a manifest
	curRepair  bool   // the packet being filled is a repair packet
	emitting   bool   // inside emitManifests
	mframe     []byte // the MANIFEST frame being placed
	// manifestWaiting: emitManifests waits for room, and has the next free
	// slot before any writer of data.
	manifestWaiting bool
	inWriter        bool // the writer holds mu for its timers: it must not wait for room
	// roomWaiters and flushWaiters count the goroutines waiting for room in
	// the queue and for packets to be written.
	roomWaiters, flushWaiters int
	lastSend                  time.Time
	err                       error // sticky write or signing error
	closed                    bool
	running                   bool  // Run has started
	ended                     bool  // Run has returned
	endErr                    error // why Run returned, for the methods called after
	runLate                   bool  // a wait for Run has lasted RunStartTimeout
	lateTimer                 *time.Timer
	flushArmed                bool // the writer will look at the packet being filled
	st                        SenderStats

	// repairWaiting: fecClose waits for room for a block's repair packets,
	// and has the next free slots before anyone; res: the repair packets
	// reserved and not sealed yet (fec_send.go).
	repairWaiting bool
	res           fecReservation

	// repeats are chunks to send a second time at the start of the next
	// packet (WriteChunkRepeated); repeatData holds their bytes.
	repeats    []repeatChunk
	repeatData []byte
}

// repeatChunk is a chunk of a stream to send again: its bytes are
// repeatData[from:to], at stream offset off.
type repeatChunk struct {
	st       *SendStream
	off      uint64
	from, to int
}

// NewSender creates a sender for the session cfg.Params on conn, which must
// already be set up to reach the group (see mcast.ListenSender). If conn
// implements mcast.BatchWriter, packets are written in batches. Run it with
// Run.
func NewSender(conn net.PacketConn, cfg SenderConfig) (*Sender, error) {
	p := cfg.Params.Clone()
	prot, err := p.Protector()
	if err != nil {
		return nil, fmt.Errorf("mquic: new sender: %w", err)
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	orDefault(&cfg.BatchSize, DefaultBatchSize)
	orDefault(&cfg.FlushDelay, DefaultFlushDelay)
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
		kick:       make(chan struct{}, 1),
	}
	s.cond = sync.NewCond(&s.mu)
	s.hdrLen = 1 + len(p.SessionID) + s.pnLen
	s.payloadEnd = s.packetSize - s.overhead
	s.minPayload = prot.MinPayload(s.pnLen)
	if err := s.setupFEC(&p, cfg.FECUnpadded); err != nil {
		return nil, fmt.Errorf("mquic: new sender: %w", err)
	}
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
	s.maxBatch = cfg.BatchSize
	s.peakRate = p.PeakFlowRate
	s.batchN = batchPackets(p.PeakFlowRate, s.packetSize, cfg.BatchSize)
	s.slots = make([][]byte, queueBatches*cfg.BatchSize)
	s.since = make([]time.Time, len(s.slots))
	for i := range s.slots {
		s.slots[i] = make([]byte, 0, s.packetSize)
	}
	s.stream0 = &SendStream{s: s, id: 0}
	s.log.Debug("sender created", "suite", p.CipherSuite, "pn_len", s.pnLen, "packet_size", s.packetSize,
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
	if err := s.usable(); err != nil {
		return nil, err
	}
	if s.nextUniID > maxStreamOffset {
		return nil, errors.New("mquic: stream IDs exhausted")
	}
	st := &SendStream{s: s, id: s.nextUniID}
	s.nextUniID += 4
	return st, nil
}

// Flush seals the packet being filled, even if not full, and waits until
// Run has written every packet queued so far. It returns the first write
// error.
func (s *Sender) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.finishPacket(); err != nil {
		return err
	}
	if err := s.sendRepeats(); err != nil {
		return err
	}
	return s.waitWritten(s.tail)
}

// sendRepeats sends the chunks waiting to be repeated (WriteChunkRepeated)
// in a packet of their own, when no more data comes to carry them.
func (s *Sender) sendRepeats() error {
	for len(s.repeats) > 0 {
		if err := s.ensurePacket(0); err != nil {
			return err
		}
		if err := s.finishPacket(); err != nil {
			return err
		}
	}
	return nil
}

// Ping sends a packet with a PING frame (a keep-alive) and waits until it
// is written.
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
	if err := s.finishPacket(); err != nil {
		return err
	}
	return s.waitWritten(s.tail)
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
		// Room first: a frame taken from the signer must be placed without
		// waiting, while writers of data wait their turn (and the manifests
		// wait for repair packets).
		if !s.slotFree() || s.repairWaiting {
			if s.inWriter {
				return nil // the writer must not wait for room: it tries again after writing
			}
			s.manifestWaiting = true
			s.roomWaiters++
			err := s.wait()
			s.roomWaiters--
			s.manifestWaiting = false
			if err != nil {
				return err
			}
			continue
		}
		f, err := s.signer.Next(now, force)
		if err != nil {
			s.err = fmt.Errorf("mquic: manifest: %w", err)
			s.log.Error("manifest signing failed; sender stops", "err", err)
			return s.err
		}
		if f == nil {
			return nil
		}
		// The signer may recycle f's buffer when finishing the packet being
		// filled seals a manifest: keep a copy.
		s.mframe = append(s.mframe[:0], f...)
		f = s.mframe
		if err := s.ensurePacket(len(f)); err != nil {
			return err
		}
		if len(s.cur) == s.hdrLen {
			s.curTrigger = false // a packet of its own
		}
		s.cur = append(s.cur, f...)
		if err := s.finishPacket(); err != nil {
			return err
		}
	}
}

// Close ends the session: it seals the packet being filled, sends the last
// manifests of an asymmetric session, waits until Run has written every
// packet, and makes Run return. It does not close conn. Ending a session is
// otherwise the layer above's business (the draft has no transport-level
// close). Close returns the first write error, or ErrNotRunning if packets
// are queued and Run was never started.
func (s *Sender) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return s.err
	}
	err := s.finishPacket()
	if err == nil {
		err = s.sendRepeats()
	}
	if err == nil && s.fec != nil {
		err = s.fecClose()
	}
	if err == nil {
		// Every packet sent must be listed in a manifest.
		if err = s.emitManifests(true); err == nil {
			err = s.finishPacket()
		}
	}
	s.closed = true
	s.wakeWriter()
	if werr := s.waitWritten(s.tail); err == nil {
		err = werr
	}
	s.cond.Broadcast()
	return err
}

// Stats returns the sender's counters.
func (s *Sender) Stats() SenderStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Queued = int(s.tail - s.head)
	if s.signer != nil {
		st.Manifests = s.signer.Stats()
	}
	if s.fec != nil {
		st.FEC = s.fec.Stats()
	}
	return st
}

// usable returns why the sender takes no more data, or nil.
func (s *Sender) usable() error {
	switch {
	case s.closed:
		return errClosed
	case s.ended:
		return s.endErr
	}
	return s.err
}

// wakeWriter makes the writer look at the queue and its timers.
func (s *Sender) wakeWriter() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// wait waits on s.cond (releasing s.mu) for the writer to make progress. It
// fails when the writer has ended, and with ErrNotRunning when Run has not
// started within RunStartTimeout.
func (s *Sender) wait() error {
	if s.ended {
		return s.endErr
	}
	if !s.running {
		if s.runLate {
			return fmt.Errorf("%w (%d packets queued)", ErrNotRunning, s.tail-s.head)
		}
		if s.lateTimer == nil {
			s.lateTimer = time.AfterFunc(RunStartTimeout, func() {
				s.mu.Lock()
				s.runLate = true
				s.cond.Broadcast()
				s.mu.Unlock()
			})
		}
	}
	s.cond.Wait()
	return nil
}

// waitWritten asks the writer to write the queue up to packet index n and
// waits until it has.
func (s *Sender) waitWritten(n uint64) error {
	if n > s.flushTo {
		s.flushTo = n
		s.wakeWriter()
	}
	for s.head < n && s.err == nil {
		if s.inWriter {
			return nil // the writer writes it next
		}
		s.flushWaiters++
		err := s.wait()
		s.flushWaiters--
		if err != nil {
			return err
		}
	}
	return s.err
}

// slotFree reports whether a new packet can be started, after the one
// being filled is sealed, without waiting for the writer.
func (s *Sender) slotFree() bool {
	used := s.tail - s.head
	if s.cur != nil {
		used++
	}
	return used < uint64(len(s.slots))
}

// room is how many bytes the packet being filled can still take (the next
// packet, less the chunks it will repeat, when none is being filled).
func (s *Sender) room() int {
	if s.cur == nil {
		room := s.payloadEnd - s.hdrLen
		if len(s.repeats) > 0 {
			// The repeats that fit go first (appendRepeats); at least the
			// first always does.
			room -= s.repeatSize(0)
		}
		return room
	}
	return s.payloadEnd - len(s.cur)
}

// errQueueFull tells the writer's own timers that the queue has no room:
// they try again after the next write.
var errQueueFull = errors.New("mquic: sender queue full")

// ensurePacket makes sure a packet is open with at least need bytes free,
// finishing the current one if it has less. It waits (releasing s.mu) while
// the queue is full, so the state may have changed when it returns.
func (s *Sender) ensurePacket(need int) error {
	for {
		if s.cur != nil {
			if s.payloadEnd-len(s.cur) >= need {
				return nil
			}
			if err := s.finishPacket(); err != nil {
				return err
			}
			continue
		}
		if s.fec != nil && s.fec.Full() {
			// A full block closes (its repair packets take the next
			// numbers) before any packet starts.
			if err := s.fecClose(); err != nil {
				return err
			}
			continue
		}
		if s.tail-s.head < uint64(len(s.slots)) && !s.manifestWaiting && !s.repairWaiting {
			break
		}
		if s.inWriter {
			return errQueueFull
		}
		s.roomWaiters++
		err := s.wait()
		s.roomWaiters--
		if err != nil {
			return err
		}
		if err := s.usable(); err != nil {
			return err
		}
	}
	s.startPacket()
	if len(s.repeats) > 0 && !s.emitting {
		// The chunks to repeat go first; if what is asked for no longer
		// fits, the packet goes out with them alone. Not in a manifest's
		// packet: a manifest taken from the signer must be placed in the
		// slot it was given, without waiting for another.
		s.appendRepeats()
		return s.ensurePacket(need)
	}
	return nil
}

// repeatSize is the size of repeat i's STREAM frame.
func (s *Sender) repeatSize(i int) int {
	r := &s.repeats[i]
	n := r.to - r.from
	return wire.StreamFrameOverhead(r.st.id, r.off, n, true) + n
}

// appendRepeats puts the chunks to repeat into the packet just started, as
// many as fit, in the order they were written; those that do not fit wait
// for the next packet.
func (s *Sender) appendRepeats() {
	done := 0
	for done < len(s.repeats) && s.repeatSize(done) <= s.payloadEnd-len(s.cur) {
		r := &s.repeats[done]
		data := s.repeatData[r.from:r.to]
		end := r.off + uint64(len(data))
		// A repeat of the stream's last bytes carries its FIN when the
		// stream has ended: the first copy's FIN may be the one lost.
		fin := r.st.fin && end == r.st.off
		s.cur = wire.AppendStreamFrame(s.cur, wire.StreamFrame{StreamID: r.st.id, Offset: r.off, Data: data, Fin: fin}, true)
		s.st.RepeatedBytes += uint64(len(data))
		done++
	}
	s.repeats = s.repeats[:copy(s.repeats, s.repeats[done:])]
	if len(s.repeats) == 0 {
		s.repeatData = s.repeatData[:0]
	}
}

// startPacket starts a packet in the next slot, which must be free.
func (s *Sender) startPacket() {
	s.curPN = s.nextPN
	s.nextPN++
	s.cur = wire.AppendShortHeader(s.slots[s.tail%uint64(len(s.slots))][:0], s.sessionID, s.curPN, s.pnLen)
	// One clock reading per write batch: its packets are filled within
	// microseconds, and FlushDelay and the manifest delay are milliseconds.
	if s.tail == s.head || s.tail%uint64(s.batchN) == 0 || s.curSince.IsZero() {
		s.curSince = time.Now()
	}
	s.curTrigger = true
	s.curRepair = false
	if !s.flushArmed {
		s.flushArmed = true
		s.wakeWriter()
	}
}

// finishPacket seals the packet being filled and queues it for the writer.
func (s *Sender) finishPacket() error {
	if s.cur == nil {
		return nil
	}
	if pad := s.minPayload - (len(s.cur) - s.hdrLen); pad > 0 {
		s.cur = wire.AppendPadding(s.cur, pad)
	}
	fecFull := s.fec != nil && !s.curRepair && s.fecAdd()
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
	s.slots[s.tail%uint64(len(s.slots))] = pkt
	s.since[s.tail%uint64(len(s.slots))] = s.curSince
	s.tail++
	s.cur = nil
	if s.tail-s.head == uint64(s.batchN) || s.tail-s.head == uint64(s.maxBatch) {
		s.wakeWriter()
	}
	if fecFull {
		if err := s.fecClose(); err != nil && err != errQueueFull {
			return err
		}
	}
	if s.signer != nil && s.signer.Ready() && !s.res.sealing {
		// A manifest just filled up: send it (and the copies it makes due)
		// now. Manifests due by time are the writer's business.
		return s.emitManifests(false)
	}
	return nil
}

// Run is the sender's writer: it paces and writes the queued packets in
// batches, flushes a partly filled packet after FlushDelay, sends
// keep-alives and the manifests that fall due by time. It returns nil when
// Close has been called and everything queued is written, or when ctx ends
// (packets still queued are then dropped, and later writes fail); it
// returns the error of a failed write. Run must be called once.
func (s *Sender) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running || s.ended {
		s.mu.Unlock()
		return errors.New("mquic: sender: Run called twice")
	}
	s.running = true
	if s.lateTimer != nil {
		s.lateTimer.Stop()
	}
	s.cond.Broadcast()
	s.mu.Unlock()

	err := s.write(ctx)

	s.mu.Lock()
	s.ended = true
	switch {
	case err != nil:
		s.endErr = err
	case ctx.Err() != nil:
		s.endErr = fmt.Errorf("mquic: sender stopped: %w", context.Cause(ctx))
	default:
		s.endErr = errClosed
	}
	if s.head < s.tail {
		s.log.Debug("sender stopped with packets queued", "dropped", s.tail-s.head)
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// write is Run's loop.
func (s *Sender) write(ctx context.Context) error {
	pace := newPacer(s.peakRate, s.batchN*s.packetSize)
	out := make([][]byte, 0, s.maxBatch)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	paceTimer := time.NewTimer(time.Hour)
	defer paceTimer.Stop()
	idle := true
	for ctx.Err() == nil {
		s.mu.Lock()
		now := time.Now()
		next := s.timers(now)
		out = out[:0]
		if n := s.tail - s.head; n > 0 && (n >= uint64(s.batchN) || s.head < s.flushTo || s.closed) {
			if first, ok := s.fecReserved(); ok && first < s.head+uint64(s.batchN) {
				// Seal a block's repair packets before writing the batch they
				// fall in, rather than cut the batch short there.
				s.inWriter = true
				_ = s.fecSeal() // errQueueFull: another goroutine seals them and wakes us
				s.inWriter = false
			}
			reserved, ok := s.fecReserved()
			for i := s.head; i < s.tail && len(out) < s.batchN && (!ok || i < reserved); i++ {
				out = append(out, s.slots[i%uint64(len(s.slots))])
			}
		}
		done := s.closed && s.head == s.tail
		werr := s.err
		s.mu.Unlock()
		if werr != nil {
			return werr
		}
		if len(out) > 0 {
			if err := s.send(ctx, &pace, paceTimer, out, idle); err != nil {
				return err
			}
			idle = false
			continue
		}
		if done {
			return nil
		}
		idle = true // nothing to write: the pacer's catch-up ends here
		if next < 0 {
			next = time.Hour
		}
		t.Reset(next) // Go 1.23 timers: Reset leaves no stale tick behind
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		case <-t.C:
		}
	}
	return nil
}

// send paces and writes one batch of queued packets, then frees their slots.
func (s *Sender) send(ctx context.Context, pace *pacer, t *time.Timer, pkts [][]byte, idle bool) error {
	n := 0
	for _, p := range pkts {
		n += len(p)
	}
	wait := pace.delay(time.Now())
	if wait > 0 {
		t.Reset(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil
		}
	}
	at := time.Now()
	pace.sent(at, n, idle)
	if s.onWrite != nil {
		s.onWrite(at, n, pace.lostTime())
	}
	err := s.writePackets(pkts)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Writes++
	s.st.PaceWait += wait
	s.st.PaceLost = pace.lostTime()
	if err != nil {
		s.err = fmt.Errorf("mquic: send to %s: %w", s.dst, err)
		s.log.Error("send failed; sender stops", "err", err)
	} else {
		s.st.Packets += uint64(len(pkts))
		s.st.Bytes += uint64(n)
	}
	s.head += uint64(len(pkts))
	s.lastSend = now
	// Writers blocked on a full queue wake once half of it is free, not
	// after every write: fewer context switches per packet.
	if s.flushWaiters > 0 || s.err != nil || s.roomWaiters > 0 && s.tail-s.head <= uint64(len(s.slots)/2) {
		s.cond.Broadcast()
	}
	return s.err
}

func (s *Sender) writePackets(pkts [][]byte) error {
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

// timers seals a packet that waited FlushDelay, sends the manifests due by
// time and a keep-alive PING when the session has been quiet too long. It
// returns how long until it has something to do again (-1: nothing
// planned). It runs on the writer's goroutine with s.mu held, and never
// waits for room in the queue: what does not fit waits for the next round.
func (s *Sender) timers(now time.Time) time.Duration {
	s.inWriter = true
	defer func() { s.inWriter = false }()
	next := time.Duration(-1)
	soonest := func(d time.Duration) {
		if next < 0 || d < next {
			next = d
		}
	}
	if s.cur != nil {
		if d := s.curSince.Add(s.flushDelay).Sub(now); d <= 0 {
			if s.finishPacket() == nil {
				_ = s.sendRepeats() // a full queue: they go with the next packet
			}
			s.flushTo = s.tail
		} else {
			soonest(d)
		}
	}
	// Full packets short of a batch wait no longer than FlushDelay either.
	if oldest := max(s.head, s.flushTo); oldest < s.tail {
		if d := s.since[oldest%uint64(len(s.slots))].Add(s.flushDelay).Sub(now); d <= 0 {
			s.flushTo = s.tail
		} else {
			soonest(d)
		}
	}
	if d := s.fecTimers(now); d >= 0 {
		soonest(d)
	}
	// From here on, a packet being filled is covered by the timer set
	// below; a packet started later wakes the writer.
	s.flushArmed = s.cur != nil
	if s.signer != nil && !s.closed && s.err == nil {
		if due, ok := s.signer.Deadline(); ok && !due.After(now) {
			if err := s.emitManifests(false); err == nil {
				_ = s.finishPacket()
				s.flushTo = s.tail
			}
		}
		if due, ok := s.signer.Deadline(); ok && s.err == nil {
			soonest(max(due.Sub(now), time.Millisecond/10))
		}
	}
	if s.keepAlive > 0 && !s.closed && s.err == nil {
		if s.lastSend.IsZero() {
			s.lastSend = now
		}
		d := s.lastSend.Add(s.keepAlive).Sub(now)
		if d <= 0 && s.head == s.tail {
			if err := s.ensurePacket(1); err == nil {
				s.cur = wire.AppendPing(s.cur)
				s.st.Pings++
				_ = s.finishPacket()
				s.flushTo = s.tail
			}
			d = s.keepAlive
		}
		soonest(max(d, time.Millisecond))
	}
	return next
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
		if n <= 0 {
			// ensurePacket waited, and the packet another writer opened
			// meanwhile has less room than estimated.
			if err := s.finishPacket(); err != nil {
				return written, err
			}
			continue
		}
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
	st.s.mu.Lock()
	defer st.s.mu.Unlock()
	_, err := st.writeChunkLocked(p)
	return err
}

// writeChunkLocked writes the chunk p and returns the stream offset it
// went at (ensurePacket may wait, and other writers advance the stream
// meanwhile).
func (st *SendStream) writeChunkLocked(p []byte) (uint64, error) {
	s := st.s
	if len(p) > s.maxChunk {
		return 0, fmt.Errorf("mquic: chunk of %d bytes exceeds the %d that fit in a packet", len(p), s.maxChunk)
	}
	if err := s.usable(); err != nil {
		return 0, err
	}
	if st.fin {
		return 0, fmt.Errorf("mquic: write on finished stream %d", st.id)
	}
	if st.off+uint64(len(p)) > maxStreamOffset {
		return 0, fmt.Errorf("mquic: stream %d: offset beyond 2^62-1", st.id)
	}
	if err := s.ensurePacket(wire.StreamFrameOverhead(st.id, st.off, len(p), true) + len(p)); err != nil {
		return 0, err
	}
	if st.fin {
		return 0, fmt.Errorf("mquic: write on finished stream %d", st.id)
	}
	off := st.off
	st.appendFrame(p)
	if len(s.cur) >= s.payloadEnd-1 {
		return off, s.finishPacket()
	}
	return off, nil
}

// WriteChunkRepeated is WriteChunk, and the same chunk goes again, as a
// second STREAM frame with the same offset and bytes (RFC 9000 §2.2), at
// the start of the next packet: for a chunk whose loss costs more than its
// own bytes, such as the head of a push stream, without which a receiver
// cannot tell what the rest of the stream is. The copy costs its bytes
// once; a receiver takes whichever copy arrives and drops the other as a
// duplicate, so with independent losses the chunk is lost with the square
// of the loss rate.
func (st *SendStream) WriteChunkRepeated(p []byte) error {
	s := st.s
	s.mu.Lock()
	defer s.mu.Unlock()
	off, err := st.writeChunkLocked(p)
	if err != nil {
		return err
	}
	from := len(s.repeatData)
	s.repeatData = append(s.repeatData, p...)
	s.repeats = append(s.repeats, repeatChunk{st: st, off: off, from: from, to: len(s.repeatData)})
	if s.cur == nil {
		// The chunk closed its packet: start the next one with the copy,
		// which the flush timer then covers like any packet being filled.
		return s.ensurePacket(0)
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
