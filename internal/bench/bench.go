// Package bench measures the project's throughput against a raw-UDP
// baseline taken in the same run with the same socket technique, and
// prints the ratios the performance targets are stated in (README.md,
// "Measured figures").
package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
)

// Options configure a benchmark run.
type Options struct {
	// Duration of each measured phase.
	Duration time.Duration
	// PacketSize is the UDP payload size of full packets.
	PacketSize int
	// GSO and GRO enable UDP segmentation offload on the sockets (both on
	// by default in the command).
	GSO, GRO bool
	// Suite protects the mquic packets.
	Suite protect.Suite
	// Interface and Group: where the sockets talk (loopback by default).
	// RecvInterface, when set, is the receiver's interface (the other end of
	// a veth pair).
	Interface     string
	RecvInterface string
	Group         netip.AddrPort
	Source        netip.Addr
	// InNS, when set, opens each socket inside the sender's or the
	// receiver's network namespace.
	InNS func(recv bool, fn func() error) error
	// AsymRates are the paced rates (bit/s) at which Asymmetric compares
	// symmetric and asymmetric sessions; nil means DefaultAsymRates.
	AsymRates []uint64
	// Out receives the report.
	Out io.Writer
	// Logger receives socket logs.
	Logger *slog.Logger
}

// Rate is a throughput measurement.
type Rate struct {
	Packets uint64
	Bytes   uint64 // payload bytes (UDP payload for packets, stream or body bytes for data)
	Elapsed time.Duration
}

// PPS is packets per second.
func (r Rate) PPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Packets) / r.Elapsed.Seconds()
}

// Gbps is payload gigabits per second.
func (r Rate) Gbps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Bytes) * 8 / r.Elapsed.Seconds() / 1e9
}

func (r Rate) String() string {
	return fmt.Sprintf("%7.2f Gbit/s %9.0f pkt/s", r.Gbps(), r.PPS())
}

// conns opens a sender and a receiver socket pair for one phase.
func (o *Options) conns(port uint16) (snd, rcv *mcast.Conn, err error) {
	group := netip.AddrPortFrom(o.Group.Addr(), port)
	in := o.InNS
	if in == nil {
		in = func(_ bool, fn func() error) error { return fn() }
	}
	riface := o.RecvInterface
	if riface == "" {
		riface = o.Interface
	}
	err = in(true, func() (err error) {
		rcv, err = mcast.ListenReceiver(mcast.Config{Group: group, Source: o.Source, Interface: riface,
			RecvBuffer: 64 << 20, DisableGRO: !o.GRO, Logger: o.Logger})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	err = in(false, func() (err error) {
		snd, err = mcast.ListenSender(mcast.Config{Group: group, Source: o.Source, Interface: o.Interface, TTL: 1,
			DisableGSO: !o.GSO, Logger: o.Logger})
		return err
	})
	if err != nil {
		rcv.Close()
		return nil, nil, err
	}
	return snd, rcv, nil
}

func (o *Options) params(port uint16) mquic.Params {
	p := mquic.Params{
		Group:       netip.AddrPortFrom(o.Group.Addr(), port),
		Source:      o.Source,
		SessionID:   []byte{0xb1, 0xe2, 0xc3, 0xd4, 0x01, 0x02, 0x03, 0x04},
		CipherSuite: o.Suite,
	}
	if o.Suite != protect.SuiteNull {
		p.Secret = make([]byte, o.Suite.Hash()().Size())
		rand.Read(p.Secret)
	}
	return p
}

// TransportResult compares mquic with raw UDP.
type TransportResult struct {
	RawSend, RawRecv     Rate
	MquicSend, MquicRecv Rate
	MquicStream          Rate // stream bytes delivered to the handler
}

// countingHandler counts delivered stream bytes.
type countingHandler struct {
	bytes atomic.Uint64
	last  atomic.Int64
}

func (h *countingHandler) OpenStream(*mquic.RecvStream) mquic.StreamHandler { return h }
func (h *countingHandler) Data(_ uint64, p []byte) {
	h.bytes.Add(uint64(len(p)))
	h.last.Store(time.Now().UnixNano())
}
func (h *countingHandler) Gap(uint64, uint64)   {}
func (h *countingHandler) Finish(uint64)        {}
func (h *countingHandler) Reset(uint64, uint64) {}

// Transport measures raw UDP and then mquic, unpaced, for o.Duration each.
func Transport(ctx context.Context, o Options) (TransportResult, error) {
	var res TransportResult
	var err error
	if res.RawSend, res.RawRecv, err = o.rawPhase(ctx, o.Group.Port()); err != nil {
		return res, err
	}
	res.MquicSend, res.MquicRecv, res.MquicStream, err = o.streamPhase(ctx, o.Group.Port()+1)
	return res, err
}

// rawPhase measures the raw-UDP baseline.
func (o *Options) rawPhase(ctx context.Context, port uint16) (send, recv Rate, err error) {
	snd, rcv, err := o.conns(port)
	if err != nil {
		return send, recv, err
	}
	defer snd.Close()
	defer rcv.Close()
	base, err := mcast.Baseline(ctx, snd, rcv, o.PacketSize, o.Duration, 0)
	if err != nil {
		return send, recv, fmt.Errorf("raw baseline: %w", err)
	}
	send = Rate{Packets: base.Sent, Bytes: base.Sent * uint64(o.PacketSize), Elapsed: base.Elapsed}
	recv = Rate{Packets: base.Received, Bytes: base.Received * uint64(o.PacketSize), Elapsed: base.RecvElapsed}
	return send, recv, nil
}

// streamPhase sends one mquic stream as fast as possible and measures the
// packets sent, the packets received and the stream data delivered.
func (o *Options) streamPhase(ctx context.Context, port uint16) (send, recv, stream Rate, err error) {
	h := &countingHandler{}
	x, err := o.startSession(ctx, port, o.params(port), h, mquic.SenderConfig{})
	if err != nil {
		return send, recv, stream, err
	}
	defer x.stop()
	s := x.s
	st, err := s.OpenStream()
	if err != nil {
		return send, recv, stream, err
	}
	chunk := make([]byte, s.MaxChunk())
	start := time.Now()
	for time.Since(start) < o.Duration && ctx.Err() == nil {
		for range 64 {
			if err := st.WriteChunk(chunk); err != nil {
				return send, recv, stream, err
			}
		}
	}
	s.Flush()
	sent := time.Since(start)
	ss := s.Stats()
	s.Close()
	time.Sleep(200 * time.Millisecond) // let the receiver drain its socket
	x.stop()
	rs := x.r.Stats()
	recvElapsed := time.Duration(h.last.Load() - start.UnixNano())
	send = Rate{Packets: ss.Packets, Bytes: ss.Bytes, Elapsed: sent}
	recv = Rate{Packets: rs.Packets, Bytes: rs.Bytes, Elapsed: recvElapsed}
	stream = Rate{Packets: rs.Packets, Bytes: h.bytes.Load(), Elapsed: recvElapsed}
	return send, recv, stream, nil
}

// session is a sender and a receiver of one session on fresh sockets, both
// running.
type session struct {
	snd, rcv *mcast.Conn
	s        *mquic.Sender
	r        *mquic.Receiver
	cancel   context.CancelFunc
	done     chan error
}

// startSession opens the sockets of port and runs a receiver delivering to
// h and a sender configured by sc (whose Params, packet and batch sizes and
// logger it sets).
func (o *Options) startSession(ctx context.Context, port uint16, params mquic.Params, h mquic.Handler, sc mquic.SenderConfig) (*session, error) {
	snd, rcv, err := o.conns(port)
	if err != nil {
		return nil, err
	}
	x := &session{snd: snd, rcv: rcv, done: make(chan error, 1)}
	if x.r, err = mquic.NewReceiver(rcv, mquic.ReceiverConfig{Params: params, Handler: h, Logger: o.Logger}); err != nil {
		x.close()
		return nil, err
	}
	sc.Params, sc.MaxPacketSize, sc.BatchSize, sc.Logger = params, o.PacketSize, 2*snd.MaxSegments(), o.Logger
	if x.s, err = mquic.NewSender(snd, sc); err != nil {
		x.close()
		return nil, err
	}
	var rctx context.Context
	rctx, x.cancel = context.WithCancel(ctx)
	go func() { x.done <- x.r.Run(rctx) }()
	go x.s.Run(rctx) // ends at Close
	return x, nil
}

// stop ends the receiver (the sender ends at its Close) and closes the
// sockets.
func (x *session) stop() {
	if x.cancel == nil {
		return // stopped already
	}
	x.cancel()
	<-x.done
	x.cancel = nil
	x.close()
}

func (x *session) close() {
	x.snd.Close()
	x.rcv.Close()
}

// Report prints a transport result with its ratios.
func (r TransportResult) Report(w io.Writer, o Options) {
	fmt.Fprintf(w, "transport over %s, %d-byte packets, %v per phase, GSO %v, GRO %v, unpaced, %s\n",
		o.link(), o.PacketSize, o.Duration, o.GSO, o.GRO, o.Suite)
	fmt.Fprintf(w, "  raw UDP   send %s   receive %s\n", r.RawSend, r.RawRecv)
	fmt.Fprintf(w, "  mquic     send %s   receive %s   (stream data %.2f Gbit/s)\n", r.MquicSend, r.MquicRecv, r.MquicStream.Gbps())
	fmt.Fprintf(w, "  ratio     send %.2f                         receive %.2f   (target >= 0.5)\n",
		r.MquicSend.PPS()/r.RawSend.PPS(), r.MquicRecv.PPS()/r.RawRecv.PPS())
}

// link names where the sockets talk, for reports.
func (o *Options) link() string {
	if o.RecvInterface != "" {
		return "a veth pair between two network namespaces"
	}
	return "interface " + o.Interface
}

// PaceRun is one paced transfer of the pacing measurement.
type PaceRun struct {
	Rate     uint64        // the session's peak flow rate, bit/s
	Sent     Rate          // UDP payload bytes the sender wrote, over the transfer
	Received Rate          // UDP payload bytes accepted, first to last arrival
	Lost     uint64        // packets lost
	PaceLost time.Duration // pacing schedule the sender gave up (idle, or woken late)
}

// Pace sends one stream paced at each rate for o.Duration and compares the
// rate achieved with the rate set, at the sender (bytes written over the
// transfer) and at the receiver (bytes accepted between the first and the
// last packet).
func Pace(ctx context.Context, o Options, rates []uint64) ([]PaceRun, error) {
	var runs []PaceRun
	for i, rate := range rates {
		run, err := o.pacePhase(ctx, o.Group.Port()+uint16(i), rate)
		if err != nil {
			return runs, err
		}
		runs = append(runs, run)
	}
	return runs, nil
}

func (o *Options) pacePhase(ctx context.Context, port uint16, rate uint64) (PaceRun, error) {
	run := PaceRun{Rate: rate}
	params := o.params(port)
	params.PeakFlowRate = rate
	h := &countingHandler{}
	var first atomic.Int64
	x, err := o.startSession(ctx, port, params, &firstArrival{h, &first}, mquic.SenderConfig{KeepAlive: -1})
	if err != nil {
		return run, err
	}
	defer x.stop()
	s := x.s
	st, err := s.OpenStream()
	if err != nil {
		return run, err
	}
	chunk := make([]byte, s.MaxChunk())
	start := time.Now()
	// Write what the rate carries in o.Duration; the writes block on the
	// sender's queue, so they follow the pacer.
	for sent := uint64(0); sent*8 < rate*uint64(o.Duration.Milliseconds())/1000 && ctx.Err() == nil; sent += uint64(len(chunk)) {
		if err := st.WriteChunk(chunk); err != nil {
			return run, err
		}
	}
	if err := s.Close(); err != nil {
		return run, err
	}
	sent := time.Since(start)
	ss := s.Stats()
	for last := h.bytes.Load(); ; {
		time.Sleep(100 * time.Millisecond) // until the receiver has drained its socket
		if now := h.bytes.Load(); now == last {
			break
		} else {
			last = now
		}
	}
	x.stop()
	rs := x.r.Stats()
	run.Sent = Rate{Packets: ss.Packets, Bytes: ss.Bytes, Elapsed: sent}
	run.Received = Rate{Packets: rs.Packets, Bytes: rs.Bytes, Elapsed: time.Duration(h.last.Load() - first.Load())}
	run.Lost, run.PaceLost = rs.LostPackets, ss.PaceLost
	return run, nil
}

// firstArrival notes when the first stream data arrives.
type firstArrival struct {
	*countingHandler
	first *atomic.Int64
}

func (f *firstArrival) OpenStream(*mquic.RecvStream) mquic.StreamHandler {
	f.first.CompareAndSwap(0, time.Now().UnixNano())
	return f.countingHandler
}

// ReportPace prints set and achieved rates.
func ReportPace(w io.Writer, o Options, runs []PaceRun) {
	fmt.Fprintf(w, "pacing over %s, %d-byte packets, %v per rate, GSO %v, GRO %v, %s (rates of UDP payload)\n",
		o.link(), o.PacketSize, o.Duration, o.GSO, o.GRO, o.Suite)
	for _, r := range runs {
		fmt.Fprintf(w, "  set %8.1f Mbit/s   sent %8.1f Mbit/s (%.4f)   received %8.1f Mbit/s (%.4f)   %d packets lost, %v of schedule lost (idle or woken late)\n",
			float64(r.Rate)/1e6, r.Sent.Gbps()*1e3, r.Sent.Gbps()*1e9/float64(r.Rate),
			r.Received.Gbps()*1e3, r.Received.Gbps()*1e9/float64(r.Rate), r.Lost, r.PaceLost.Round(time.Microsecond))
	}
}
