package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
)

// Defaults of the intake-pause measurement.
const (
	PauseSize     = 256 << 20     // the push that completes and is verified
	PauseTailSize = 64 << 20      // the push that keeps packets coming after it
	PauseRate     = 1_000_000_000 // paced, so that no packet is lost
)

// pauseDigests are the digests of the measured pushes: the two the
// profile knows, SHA-512 being the slower.
var pauseDigests = []string{integrity.DigestSHA256, integrity.DigestSHA512}

// PauseRun is one measurement: a large push, then another, paced, while the
// receiver's socket reads are timed.
type PauseRun struct {
	// Trailer: the digests came in trailers the session did not announce,
	// so the receiver reads the body back to check them; otherwise they
	// came in the response header and were computed as the body arrived.
	Trailer bool
	// MaxPause is the longest time the receiver did not read its socket,
	// from the return of one read to the next, between the first packet of
	// the large push and the end of its verification and of the push after
	// it.
	MaxPause time.Duration
	Reads    uint64        // socket reads in that window
	Verified time.Duration // from the first read to the large push's verified completion
	State    string        // the large push's outcome
	Complete bool          // both pushes arrived whole and verified
}

// PauseResult is the intake-pause measurement.
type PauseResult struct {
	Size, TailSize int64
	Rate           uint64
	Runs           [2]PauseRun // digests in the header, then in trailers
	// Transport is the reference measured in the same run: the bare
	// transport carrying as many stream bytes at the same rate to a handler
	// that counts them. Its longest pause is what this machine's scheduling
	// costs the receiver with no HTTP layer at all.
	Transport PauseRun
	// WholePass is what one pass of the digests over the whole large body
	// takes on this machine: how long intake stopped when the receiver
	// verified a completed push under its locks.
	WholePass time.Duration
}

// Pause measures the longest pause in packet intake while a large push
// (PauseSize, SHA-256 and SHA-512 digests) completes and is verified,
// paced at PauseRate and followed by a second push (PauseTailSize), once
// with the digests in the response header and once in trailers the session
// does not announce. It also times one digest pass over the body, which is
// the pause a receiver that verifies under its locks would make.
func Pause(ctx context.Context, o Options) (PauseResult, error) {
	res := PauseResult{Size: PauseSize, TailSize: PauseTailSize, Rate: PauseRate}
	p := newPattern()
	// The digests are computed here, before any measurement, as a sender
	// that hashes files ahead would: in this one process the pusher's own
	// pass would compete with the receiver for the CPU.
	start := time.Now()
	large, err := digestFields(p, PauseSize)
	if err != nil {
		return res, err
	}
	res.WholePass = time.Since(start)
	tail, err := digestFields(p, PauseTailSize)
	if err != nil {
		return res, err
	}
	port := o.Group.Port()
	if res.Transport, err = o.pauseTransport(ctx, port+2, PauseSize+PauseTailSize); err != nil {
		return res, err
	}
	for i, trailer := range []bool{false, true} {
		run, err := o.pauseRun(ctx, port+uint16(i), p, large, tail, trailer)
		if err != nil {
			return res, err
		}
		res.Runs[i] = run
	}
	return res, nil
}

// pauseSession is one timed transfer of the pause measurement: a receiver
// whose socket reads are timed, and a sender paced at PauseRate.
type pauseSession struct {
	snd, rcv *mcast.Conn
	conn     *intakeConn
	params   mquic.Params
	sender   *mquic.Sender
	cancel   context.CancelFunc
	rdone    chan error
}

func (o *Options) newPauseSession(port uint16) (*pauseSession, error) {
	snd, rcv, err := o.conns(port)
	if err != nil {
		return nil, err
	}
	params := o.params(port)
	params.PeakFlowRate = PauseRate
	return &pauseSession{snd: snd, rcv: rcv, conn: &intakeConn{Conn: rcv}, params: params, cancel: func() {}}, nil
}

// start runs the receiver (run, reading s.conn) and opens the sender.
func (s *pauseSession) start(ctx context.Context, o *Options, run func(context.Context) error) error {
	rctx, cancel := context.WithCancel(ctx)
	s.cancel, s.rdone = cancel, make(chan error, 1)
	go func() { s.rdone <- run(rctx) }()
	var err error
	s.sender, err = mquic.NewSender(s.snd, mquic.SenderConfig{Params: s.params, MaxPacketSize: o.PacketSize,
		BatchSize: 2 * s.snd.MaxSegments(), Logger: o.Logger})
	if err != nil {
		return err
	}
	go s.sender.Run(rctx) // ends at Close or with rctx
	return nil
}

// wait waits for done, then stops the receiver.
func (s *pauseSession) wait(ctx context.Context, done <-chan struct{}) error {
	s.sender.Flush()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return errors.New("bench: the transfer did not end 30 s after it was sent")
	case <-ctx.Done():
		return ctx.Err()
	}
	s.conn.armed.Store(false)
	s.cancel()
	return <-s.rdone
}

// close releases what the session holds.
func (s *pauseSession) close() {
	s.cancel()
	if s.sender != nil {
		s.sender.Close()
	}
	s.snd.Close()
	s.rcv.Close()
}

// pauseTransport times the receiver's reads while the bare transport
// carries size stream bytes at PauseRate.
func (o *Options) pauseTransport(ctx context.Context, port uint16, size int64) (PauseRun, error) {
	var run PauseRun
	s, err := o.newPauseSession(port)
	if err != nil {
		return run, err
	}
	defer s.close()
	h := &finishHandler{done: make(chan struct{})}
	r, err := mquic.NewReceiver(s.conn, mquic.ReceiverConfig{Params: s.params, Handler: h, Logger: o.Logger})
	if err != nil {
		return run, err
	}
	if err := s.start(ctx, o, r.Run); err != nil {
		return run, err
	}
	st, err := s.sender.OpenStream()
	if err != nil {
		return run, err
	}
	s.conn.armed.Store(true)
	chunk := make([]byte, s.sender.MaxChunk())
	for n := int64(0); n < size; n += int64(len(chunk)) {
		if err := st.WriteChunk(chunk[:min(int64(len(chunk)), size-n)]); err != nil {
			return run, err
		}
	}
	if err := st.Close(); err != nil {
		return run, err
	}
	if err := s.wait(ctx, h.done); err != nil {
		return run, err
	}
	run.MaxPause, run.Reads = time.Duration(s.conn.maxPause.Load()), s.conn.reads.Load()
	run.Complete = h.bytes.Load() == uint64(size)
	run.State = fmt.Sprintf("%d of %d bytes", h.bytes.Load(), size)
	return run, nil
}

// finishHandler counts a stream's bytes and says when it has finished.
type finishHandler struct {
	bytes atomic.Uint64
	done  chan struct{}
}

func (h *finishHandler) OpenStream(*mquic.RecvStream) mquic.StreamHandler { return h }
func (h *finishHandler) Data(_ uint64, p []byte)                          { h.bytes.Add(uint64(len(p))) }
func (h *finishHandler) Gap(uint64, uint64)                               {}
func (h *finishHandler) Finish(uint64)                                    { close(h.done) }
func (h *finishHandler) Reset(uint64, uint64)                             { close(h.done) }

// digestFields returns the Digest and Content-Digest fields of size bytes
// of the pattern.
func digestFields(p pattern, size int64) (http.Header, error) {
	h, err := integrity.NewHasher(pauseDigests...)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(h, &patternReader{p: p, size: size}); err != nil {
		return nil, err
	}
	return http.Header{integrity.FieldDigest: {h.Digest()}, integrity.FieldContentDigest: {h.ContentDigest()}}, nil
}

func (o *Options) pauseRun(ctx context.Context, port uint16, p pattern, large, tail http.Header, trailer bool) (PauseRun, error) {
	run := PauseRun{Trailer: trailer}
	s, err := o.newPauseSession(port)
	if err != nil {
		return run, err
	}
	defer s.close()
	var mu sync.Mutex
	settled := map[string]*h3m.Resource{}
	var verifiedAt time.Time
	done := make(chan struct{})
	r, err := h3m.NewReceiver(s.conn, h3m.ReceiverConfig{Session: s.params, Storage: patternStorage{p},
		Verifier: &h3m.Verifier{RequireDigest: true}, Logger: o.Logger,
		OnEvent: func(e h3m.Event) {
			switch e.Kind {
			case h3m.EventComplete, h3m.EventIncomplete, h3m.EventFailed:
			default:
				return
			}
			mu.Lock()
			defer mu.Unlock()
			settled[e.Resource.Path()] = e.Resource
			if e.Resource.Path() == "/large" {
				verifiedAt = time.Now()
			}
			if len(settled) == 2 {
				close(done)
			}
		}})
	if err != nil {
		return run, err
	}
	if err := s.start(ctx, o, r.Run); err != nil {
		return run, err
	}
	pusher, err := h3m.NewPusher(s.sender, h3m.PusherConfig{Authority: "bench.invalid", Logger: o.Logger})
	if err != nil {
		return run, err
	}
	push := func(path string, size int64, digests http.Header) error {
		pu := &h3m.Push{Request: h3frame.Request{Path: path}, Body: &patternReader{p: p, size: size}, ContentLength: size}
		if trailer {
			pu.Trailer = digests
		} else {
			pu.Header = digests
		}
		_, err := pusher.Push(ctx, pu)
		return err
	}
	s.conn.armed.Store(true)
	if err := push("/large", PauseSize, large); err != nil {
		return run, err
	}
	if err := push("/tail", PauseTailSize, tail); err != nil {
		return run, err
	}
	if err := s.wait(ctx, done); err != nil {
		return run, err
	}
	mu.Lock()
	defer mu.Unlock()
	run.MaxPause = time.Duration(s.conn.maxPause.Load())
	run.Reads = s.conn.reads.Load()
	if first := s.conn.first.Load(); first != 0 {
		run.Verified = verifiedAt.Sub(time.Unix(0, first))
	}
	run.Complete = true
	for _, path := range []string{"/large", "/tail"} {
		st, why := settled[path].State()
		if path == "/large" {
			run.State = st.String()
			if why != nil {
				run.State += ": " + why.Error()
			}
		}
		run.Complete = run.Complete && st == h3m.StateComplete
	}
	return run, nil
}

// intakeConn times the receiver's reads: the pause between the return of
// one read and the start of the next is time spent handling packets, during
// which nothing is taken from the socket.
type intakeConn struct {
	*mcast.Conn
	armed    atomic.Bool
	first    atomic.Int64 // UnixNano of the first read that returned data while armed
	maxPause atomic.Int64
	reads    atomic.Uint64
	last     time.Time // when the previous read returned (the reader's goroutine only)
}

// ReadBatch implements mcast.BatchReader.
func (c *intakeConn) ReadBatch(msgs []mcast.Message) (int, error) {
	if now := time.Now(); c.armed.Load() && c.first.Load() != 0 && !c.last.IsZero() {
		if pause := int64(now.Sub(c.last)); pause > c.maxPause.Load() {
			c.maxPause.Store(pause)
		}
	}
	n, err := c.Conn.ReadBatch(msgs)
	c.last = time.Now()
	if c.armed.Load() {
		c.reads.Add(1)
		if n > 0 {
			c.first.CompareAndSwap(0, c.last.UnixNano())
		}
	}
	return n, err
}

// patternStorage keeps no bytes: a body reads back as the pattern, which
// is what the pusher sent.
type patternStorage struct{ p pattern }

func (s patternStorage) NewBody(*h3m.Resource, int64) (h3m.Body, error) { return patternBody(s), nil }

type patternBody struct{ p pattern }

func (patternBody) WriteAt(b []byte, _ int64) (int, error) { return len(b), nil }
func (b patternBody) ReadAt(dst []byte, off int64) (int, error) {
	b.p.fill(dst, off)
	return len(dst), nil
}
func (patternBody) Discard() error { return nil }

// Report prints the result.
func (r PauseResult) Report(w io.Writer, o Options) {
	fmt.Fprintf(w, "packet intake while a %d MiB push (SHA-256, SHA-512) completes and is verified, then a %d MiB push, over %s paced at %.1f Gbit/s, GSO %v, GRO %v\n",
		r.Size>>20, r.TailSize>>20, o.link(), float64(r.Rate)/1e9, o.GSO, o.GRO)
	fmt.Fprintf(w, "  %-44s longest pause %7.2f ms, %d reads; %s\n", "bare transport, same bytes and rate (reference)",
		float64(r.Transport.MaxPause)/1e6, r.Transport.Reads, r.Transport.State)
	for _, run := range r.Runs {
		where := "digests in the header (computed on arrival)"
		if run.Trailer {
			where = "digests in unannounced trailers (read back)"
		}
		verdict := "both pushes complete"
		if !run.Complete {
			verdict = "NOT COMPLETE: " + run.State
		}
		fmt.Fprintf(w, "  %-44s longest pause %7.2f ms (target <= 5; %.1f x the bare transport's), %d reads, verified %v after the first packet; %s\n",
			where, float64(run.MaxPause)/1e6, float64(run.MaxPause)/float64(max(r.Transport.MaxPause, 1)), run.Reads, run.Verified.Round(time.Millisecond), verdict)
	}
	fmt.Fprintf(w, "  one digest pass over the %d MiB body takes %v here (the sender's, before the measurement): the pause of verifying under the packet locks; ratio longest pause / that %.4f\n",
		r.Size>>20, r.WholePass.Round(time.Millisecond), float64(max(r.Runs[0].MaxPause, r.Runs[1].MaxPause))/float64(r.WholePass))
}
