package h3m_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
)

// TestPartialContent pushes a representation in two parts, the second while
// its total size is not yet known, as a sender of a growing file would.
func TestPartialContent(t *testing.T) {
	for _, dataOffset := range []bool{false, true} {
		s := newSession(t, sessionOpts{dataOffset: dataOffset, pusher: h3m.PusherConfig{Digests: []string{"SHA-256"}}})
		whole := bytes.Repeat([]byte("0123456789"), 30000)
		first := &h3m.Push{Request: h3frame.Request{Path: "/grow"}, Body: bytes.NewReader(whole[:100000]),
			ContentLength: 100000, Range: &h3m.ContentRange{First: 0, Complete: -1}}
		second := &h3m.Push{Request: h3frame.Request{Path: "/grow"}, Body: bytes.NewReader(whole[100000:]),
			ContentLength: int64(len(whole) - 100000), Range: &h3m.ContentRange{First: 100000, Complete: int64(len(whole))}}
		s.pushAll([]*h3m.Push{first})
		s.pushAll([]*h3m.Push{second})
		s.finish()
		var parts []*h3m.Resource
		for _, r := range s.rcv.Resources() {
			if r.Path() == "/grow" {
				parts = append(parts, r)
			}
		}
		if len(parts) != 2 {
			t.Fatalf("%d parts", len(parts))
		}
		for i, want := range []struct {
			first, length, complete int64
			contentRange, rangeReq  string
		}{{0, 100000, -1, "bytes 0-99999/*", "bytes=0-99999"}, {100000, 200000, 300000, "bytes 100000-299999/300000", "bytes=100000-299999"}} {
			r := parts[i]
			if st, err := r.State(); st != h3m.StateComplete {
				t.Fatalf("part %d: %v %v", i, st, err)
			}
			f, l, c := r.Span()
			if f != want.first || l != want.length || c != want.complete {
				t.Fatalf("part %d: span %d+%d/%d", i, f, l, c)
			}
			resp := r.Response()
			if resp.Status != 206 || resp.Header.Get("Content-Range") != want.contentRange || r.Request().Header.Get("Range") != want.rangeReq {
				t.Fatalf("part %d: %d %q %q", i, resp.Status, resp.Header.Get("Content-Range"), r.Request().Header.Get("Range"))
			}
			if !bytes.Equal(bodyOf(t, r), whole[f:f+l]) {
				t.Fatalf("part %d: body differs", i)
			}
		}
	}
}

// failingReader fails after n bytes.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("disk on fire")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// TestAbandonedPushAndCaps checks RESET_STREAM for a push whose body fails,
// the receiver's per-resource cap, and max-concurrent-resources.
func TestAbandonedPushAndCaps(t *testing.T) {
	s := newSession(t, sessionOpts{receiver: h3m.ReceiverConfig{MaxResourceSize: 50000}})
	_, err := s.pusher.Push(context.Background(), &h3m.Push{Request: h3frame.Request{Path: "/broken"},
		Body: &failingReader{n: 30000}, ContentLength: 40000})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("push of a failing body: %v", err)
	}
	s.pushAll([]*h3m.Push{bytesPush("/big", make([]byte, 60000)), bytesPush("/fits", make([]byte, 40000))})
	s.finish()
	if st, err := s.resource("/broken").State(); st != h3m.StateFailed || !errors.Is(err, h3m.ErrReset) {
		t.Fatalf("/broken: %v %v", st, err)
	}
	if st, err := s.resource("/big").State(); st != h3m.StateFailed || !errors.Is(err, h3m.ErrTooLarge) {
		t.Fatalf("/big: %v %v", st, err)
	}
	if st, err := s.resource("/fits").State(); st != h3m.StateComplete {
		t.Fatalf("/fits: %v %v", st, err)
	}
}

// gate counts the push bodies being read at once and holds each body's
// first read until the session's limit of them is reached, so that the
// test sees the limit reached whatever the scheduling.
type gate struct {
	mu                  sync.Mutex
	active, peak, limit int
	full                chan struct{} // closed once active reaches limit
	fullClosed          bool
}

// gatedReader is a push body that reports to a gate.
type gatedReader struct {
	r     io.Reader
	g     *gate
	begun bool
}

func (r *gatedReader) Read(p []byte) (int, error) {
	g := r.g
	if !r.begun {
		r.begun = true
		g.mu.Lock()
		g.active++
		g.peak = max(g.peak, g.active)
		if g.active == g.limit && !g.fullClosed {
			g.fullClosed = true
			close(g.full)
		}
		g.mu.Unlock()
		<-g.full
	}
	n, err := r.r.Read(p)
	if err == io.EOF {
		g.mu.Lock()
		g.active--
		g.mu.Unlock()
	}
	return n, err
}

// TestMaxConcurrentResources pushes 40 resources at once in a session that
// allows 16 in progress: 16 bodies are read at once, never more.
func TestMaxConcurrentResources(t *testing.T) {
	s := newSession(t, sessionOpts{})
	limit := int(s.params.MaxConcurrentResources)
	g := &gate{limit: limit, full: make(chan struct{})}
	var wg sync.WaitGroup
	for range 40 {
		p := bytesPush("/p", make([]byte, 5000))
		p.Body = &gatedReader{r: p.Body, g: g}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.pusher.Push(context.Background(), p); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if g.peak != limit {
		t.Fatalf("peak concurrent pushes %d, session allows %d", g.peak, limit)
	}
	s.finish()
}

// TestCancelPush sends a CANCEL_PUSH on stream 0 for a promised push.
func TestCancelPush(t *testing.T) {
	s := newSession(t, sessionOpts{})
	s.pushAll([]*h3m.Push{bytesPush("/kept", []byte("kept"))})
	// Promise push 1 by hand, then cancel it.
	block, _ := h3frame.AppendFieldSection(nil, h3frame.RequestFields(&h3frame.Request{Method: "GET", Scheme: "https", Authority: "example.org", Path: "/cancelled"}))
	st0 := s.snd.Stream0()
	if err := st0.WriteChunk(h3frame.AppendPushPromise(nil, 1, block)); err != nil {
		t.Fatal(err)
	}
	if err := st0.WriteChunk(h3frame.AppendCancelPush(nil, 1)); err != nil {
		t.Fatal(err)
	}
	s.snd.Flush()
	res := s.await("/cancelled", h3m.EventFailed)
	if st, err := res.State(); st != h3m.StateFailed || !errors.Is(err, h3m.ErrCancelled) {
		t.Fatalf("%v %v", st, err)
	}
}
