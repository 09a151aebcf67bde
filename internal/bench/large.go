package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
)

// LargeResult is the outcome of one large paced transfer.
type LargeResult struct {
	Size      int64
	Rate      uint64 // the session's peak flow rate, bit/s
	Elapsed   time.Duration
	Intact    bool // every byte arrived and matched
	Missing   int64
	Wrong     int64 // bytes that arrived different from what was sent
	LostPkts  uint64
	State     string
	TransPkts uint64
}

// pattern is deterministic content: byte o is block[o % len(block)], with a
// block length prime to the packet payloads so that no two packets repeat.
type pattern struct{ block []byte }

func newPattern() pattern {
	b := make([]byte, 1<<20+7)
	rand.Read(b)
	return pattern{b}
}

func (p pattern) fill(dst []byte, off int64) {
	for len(dst) > 0 {
		n := copy(dst, p.block[off%int64(len(p.block)):])
		dst, off = dst[n:], off+int64(n)
	}
}

// patternReader reads size bytes of a pattern.
type patternReader struct {
	p         pattern
	off, size int64
}

func (r *patternReader) Read(b []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), r.size-r.off)]
	r.p.fill(b, r.off)
	r.off += int64(len(b))
	return len(b), nil
}

// checkingStorage compares every body byte written with the pattern.
type checkingStorage struct {
	p       pattern
	wrong   atomic.Int64
	mu      sync.Mutex
	scratch []byte
}

func (c *checkingStorage) NewBody(*h3m.Resource, int64) (h3m.Body, error) {
	return checkingBody{c}, nil
}

type checkingBody struct{ c *checkingStorage }

func (b checkingBody) WriteAt(p []byte, off int64) (int, error) {
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if cap(c.scratch) < len(p) {
		c.scratch = make([]byte, len(p))
	}
	want := c.scratch[:len(p)]
	c.p.fill(want, off)
	for i := range p {
		if p[i] != want[i] {
			c.wrong.Add(1)
		}
	}
	return len(p), nil
}
func (checkingBody) ReadAt([]byte, int64) (int, error) {
	return 0, errors.New("bench: bodies are checked, not kept")
}
func (checkingBody) Discard() error { return nil }

// Large pushes one resource of size bytes paced at rate bit/s and checks
// that it arrives intact (the target: 1 GiB at 2 Gbit/s on loopback).
func Large(ctx context.Context, o Options, size int64, rate uint64) (LargeResult, error) {
	res := LargeResult{Size: size, Rate: rate}
	port := o.Group.Port()
	snd, rcv, err := o.conns(port)
	if err != nil {
		return res, err
	}
	defer snd.Close()
	defer rcv.Close()
	params := o.params(port)
	params.PeakFlowRate = rate
	p := newPattern()
	store := &checkingStorage{p: p}
	var mu sync.Mutex
	var got *h3m.Resource
	done := make(chan struct{})
	r, err := h3m.NewReceiver(rcv, h3m.ReceiverConfig{Session: params, Storage: store, Logger: o.Logger,
		OnEvent: func(e h3m.Event) {
			switch e.Kind {
			case h3m.EventComplete, h3m.EventIncomplete, h3m.EventFailed:
				mu.Lock()
				if got == nil {
					got = e.Resource
					close(done)
				}
				mu.Unlock()
			}
		}})
	if err != nil {
		return res, err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rdone := make(chan error, 1)
	go func() { rdone <- r.Run(rctx) }()
	s, err := mquic.NewSender(snd, mquic.SenderConfig{Params: params, MaxPacketSize: o.PacketSize, Logger: o.Logger})
	if err != nil {
		return res, err
	}
	go s.Run(rctx) // ends at Close
	defer s.Close()
	pusher, err := h3m.NewPusher(s, h3m.PusherConfig{Authority: "bench.invalid", Logger: o.Logger})
	if err != nil {
		return res, err
	}
	start := time.Now()
	if _, err := pusher.Push(ctx, &h3m.Push{Request: h3frame.Request{Path: "/large"},
		Body: &patternReader{p: p, size: size}, ContentLength: size}); err != nil {
		return res, err
	}
	s.Flush()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return res, fmt.Errorf("the resource did not settle 10 s after it was sent")
	case <-ctx.Done():
		return res, ctx.Err()
	}
	res.Elapsed = time.Since(start)
	st, ferr := got.State()
	res.State = st.String()
	if ferr != nil {
		res.State += ": " + ferr.Error()
	}
	for _, m := range got.Missing() {
		res.Missing += int64(m.Len())
	}
	res.Wrong = store.wrong.Load()
	ts := r.Transport().Stats()
	res.LostPkts, res.TransPkts = ts.LostPackets, ts.Packets
	res.Intact = st == h3m.StateComplete && res.Missing == 0 && res.Wrong == 0
	return res, nil
}

// Report prints the result.
func (r LargeResult) Report(w io.Writer, o Options) {
	verdict := "INTACT"
	if !r.Intact {
		verdict = "NOT INTACT"
	}
	fmt.Fprintf(w, "one %d MiB push over %s paced at %.1f Gbit/s, GSO %v, GRO %v: %s in %v (%.2f Gbit/s); %s, %d bytes missing, %d wrong, %d of %d packets lost\n",
		r.Size>>20, o.link(), float64(r.Rate)/1e9, o.GSO, o.GRO, verdict, r.Elapsed.Round(time.Millisecond),
		float64(r.Size)*8/r.Elapsed.Seconds()/1e9, r.State, r.Missing, r.Wrong, r.LostPkts, r.TransPkts+r.LostPkts)
}
