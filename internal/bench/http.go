package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
)

// HTTPResult compares pushes with the bare transport stream.
type HTTPResult struct {
	Stream    Rate // mquic stream data delivered (the reference)
	Large     Rate // body bytes of large pushes delivered
	LargeSize int
	// StreamCPU and LargeCPU are the process's CPU time (sender and
	// receiver) per delivered byte of each phase, over all its rounds: what
	// the HTTP layer costs, whatever share of the machine the process got
	// (0 where the system does not say).
	StreamCPU, LargeCPU float64 // seconds per GB
	SmallPushes         uint64  // 1 KiB resources completed at the receiver
	SmallSent           uint64
	SmallElapsed        time.Duration
}

// countingStorage stores nothing and counts what it is given.
type countingStorage struct {
	bytes    atomic.Uint64
	lastNano atomic.Int64
}

func (c *countingStorage) NewBody(*h3m.Resource, int64) (h3m.Body, error) {
	return countingBody{c}, nil
}

type countingBody struct{ c *countingStorage }

func (b countingBody) WriteAt(p []byte, _ int64) (int, error) {
	b.c.bytes.Add(uint64(len(p)))
	b.c.lastNano.Store(time.Now().UnixNano())
	return len(p), nil
}
func (countingBody) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }
func (countingBody) Discard() error                    { return nil }

// zeroReader yields n zero bytes.
type zeroReader struct{ n int64 }

func (z *zeroReader) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// pushSession is a pusher and a counting receiver on fresh sockets.
type pushSession struct {
	snd     *mcast.Conn
	rcvConn *mcast.Conn
	sender  *mquic.Sender
	pusher  *h3m.Pusher
	store   *countingStorage
	rcv     *h3m.Receiver
	cancel  context.CancelFunc
	done    chan error
	mu      sync.Mutex
	ok      uint64
}

func (o *Options) pushSession(ctx context.Context, port uint16, maxConc uint32) (*pushSession, error) {
	snd, rcv, err := o.conns(port)
	if err != nil {
		return nil, err
	}
	params := o.params(port)
	params.MaxConcurrentResources = maxConc
	s := &pushSession{snd: snd, rcvConn: rcv, store: &countingStorage{}, done: make(chan error, 1)}
	s.rcv, err = h3m.NewReceiver(rcv, h3m.ReceiverConfig{Session: params, Storage: s.store, MaxResources: 1 << 16,
		Logger: o.Logger, OnEvent: func(e h3m.Event) {
			if e.Kind == h3m.EventComplete {
				s.mu.Lock()
				s.ok++
				s.mu.Unlock()
			}
		}})
	if err != nil {
		s.close()
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	go func() { s.done <- s.rcv.Run(rctx) }()
	s.sender, err = mquic.NewSender(snd, mquic.SenderConfig{Params: params, MaxPacketSize: o.PacketSize,
		BatchSize: 2 * snd.MaxSegments(), Logger: o.Logger})
	if err != nil {
		s.close()
		return nil, err
	}
	go s.sender.Run(rctx) // ends at Close
	s.pusher, err = h3m.NewPusher(s.sender, h3m.PusherConfig{Authority: "bench.invalid", MaxConcurrentResources: maxConc, Logger: o.Logger})
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *pushSession) finish() {
	if s.sender != nil {
		s.sender.Close()
	}
	time.Sleep(200 * time.Millisecond)
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.close()
}

func (s *pushSession) close() {
	s.snd.Close()
	s.rcvConn.Close()
}

// httpRounds is how many times the stream and the large pushes are
// measured, alternately.
const httpRounds = 3

// HTTP measures the bare stream rate, large pushes and 1 KiB pushes, each
// for o.Duration, unpaced. The stream and the large pushes are measured
// three times, alternately, and the best of each kept: on a shared machine
// the ratio then compares like with like. The CPU time per byte of each is
// measured too, which does not depend on the share of the machine the
// process got.
func HTTP(ctx context.Context, o Options) (HTTPResult, error) {
	var res HTTPResult
	res.LargeSize = 32 << 20
	var streamCPU, largeCPU time.Duration
	var streamBytes, largeBytes uint64
	for round := range httpRounds {
		port := o.Group.Port() + uint16(3*round)
		cpu := processCPU()
		_, _, stream, err := o.streamPhase(ctx, port)
		if err != nil {
			return res, err
		}
		streamCPU += processCPU() - cpu
		streamBytes += stream.Bytes
		if stream.Gbps() > res.Stream.Gbps() {
			res.Stream = stream
		}
		cpu = processCPU()
		large, err := o.largePushes(ctx, port+1, int64(res.LargeSize))
		if err != nil {
			return res, err
		}
		largeCPU += processCPU() - cpu
		largeBytes += large.Bytes
		if large.Gbps() > res.Large.Gbps() {
			res.Large = large
		}
	}
	if streamBytes > 0 && largeBytes > 0 {
		res.StreamCPU = streamCPU.Seconds() / (float64(streamBytes) / 1e9)
		res.LargeCPU = largeCPU.Seconds() / (float64(largeBytes) / 1e9)
	}
	s, err := o.pushSession(ctx, o.Group.Port()+9, 64)
	if err != nil {
		return res, err
	}
	body := make([]byte, 1024)
	start := time.Now()
	var sent atomic.Uint64
	var wg sync.WaitGroup
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < o.Duration && ctx.Err() == nil; i++ {
				p := &h3m.Push{Request: h3frame.Request{Path: fmt.Sprintf("/small/%d/%d", w, i)}, Body: &zeroReader{int64(len(body))}, ContentLength: int64(len(body))}
				if _, err := s.pusher.Push(ctx, p); err != nil {
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	res.SmallElapsed = time.Since(start)
	s.finish()
	res.SmallSent = sent.Load()
	s.mu.Lock()
	res.SmallPushes = s.ok
	s.mu.Unlock()
	return res, nil
}

// largePushes pushes size-byte resources back to back and measures the body
// bytes delivered.
func (o *Options) largePushes(ctx context.Context, port uint16, size int64) (Rate, error) {
	s, err := o.pushSession(ctx, port, 0)
	if err != nil {
		return Rate{}, err
	}
	start := time.Now()
	for time.Since(start) < o.Duration && ctx.Err() == nil {
		p := &h3m.Push{Request: h3frame.Request{Path: "/large"}, Body: &zeroReader{size}, ContentLength: size}
		if _, err := s.pusher.Push(ctx, p); err != nil {
			s.finish()
			return Rate{}, err
		}
	}
	s.sender.Flush()
	packets := s.sender.Stats().Packets
	s.finish()
	return Rate{Packets: packets, Bytes: s.store.bytes.Load(), Elapsed: time.Duration(s.store.lastNano.Load() - start.UnixNano())}, nil
}

// Report prints an HTTP result with its ratios.
func (r HTTPResult) Report(w io.Writer, o Options) {
	fmt.Fprintf(w, "HTTP pushes over multicast QUIC over %s, %d-byte packets, %v per phase, GSO %v, GRO %v, unpaced\n", o.link(), o.PacketSize, o.Duration, o.GSO, o.GRO)
	fmt.Fprintf(w, "  mquic stream data      %7.2f Gbit/s (best of %d)", r.Stream.Gbps(), httpRounds)
	if r.StreamCPU > 0 {
		fmt.Fprintf(w, "   %.2f cpu-s/GB", r.StreamCPU)
	}
	fmt.Fprintf(w, "\n  %d MiB pushes (bodies) %7.2f Gbit/s (best of %d)", r.LargeSize>>20, r.Large.Gbps(), httpRounds)
	if r.LargeCPU > 0 {
		fmt.Fprintf(w, "   %.2f cpu-s/GB", r.LargeCPU)
	}
	fmt.Fprintf(w, "\n  ratio to the stream    %7.2f (target >= 0.9)", r.Large.Gbps()/r.Stream.Gbps())
	if r.StreamCPU > 0 && r.LargeCPU > 0 {
		fmt.Fprintf(w, "   CPU per GB %.2f of the stream's", r.LargeCPU/r.StreamCPU)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  1 KiB pushes           %7.0f pushes/s sent, %.0f/s received complete\n",
		float64(r.SmallSent)/r.SmallElapsed.Seconds(), float64(r.SmallPushes)/r.SmallElapsed.Seconds())
}
