package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/quic-go/quic-go"
)

// clientConfig returns a client configuration with timings scaled for tests.
func clientConfig(h *origintest.Harness) Config {
	return Config{
		URL: h.URL(), CAFile: h.CAFile, Interface: "lo", RecvBuffer: 64 << 20,
		QUICConfig:     &quic.Config{HandshakeIdleTimeout: 500 * time.Millisecond, MaxIdleTimeout: 3 * time.Second, KeepAlivePeriod: time.Second},
		PushTimeout:    500 * time.Millisecond,
		RepairDelay:    50 * time.Millisecond,
		RepairBackoff:  100 * time.Millisecond,
		MaxBackoff:     800 * time.Millisecond,
		RequestTimeout: 5 * time.Second,
		FallbackAfter:  time.Second,
		ProbeInterval:  300 * time.Millisecond,
		CatalogPoll:    100 * time.Millisecond,
		LostGrace:      time.Second,
		EndDrain:       500 * time.Millisecond,
		Logger:         h.Log,
	}
}

// testClient runs a client and records its deliveries.
type testClient struct {
	t  testing.TB
	c  *Client
	mu sync.Mutex
	by map[string][]Delivery // by path
	// done is closed when Run returned.
	done chan struct{}
	err  error
}

func runClient(h *origintest.Harness, cfg Config) *testClient {
	h.T.Helper()
	tc := &testClient{t: h.T, by: map[string][]Delivery{}, done: make(chan struct{})}
	user := cfg.OnResource
	cfg.OnResource = func(d Delivery) {
		tc.mu.Lock()
		tc.by[d.Path] = append(tc.by[d.Path], d)
		tc.mu.Unlock()
		if user != nil {
			user(d)
		}
	}
	c, err := New(cfg)
	if err != nil {
		h.T.Fatal(err)
	}
	tc.c = c
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		tc.err = c.Run(ctx)
		close(tc.done)
	}()
	h.T.Cleanup(func() {
		cancel()
		select {
		case <-tc.done:
		case <-time.After(10 * time.Second):
			h.T.Error("client did not stop")
		}
	})
	return tc
}

// waitJoined waits until the client has joined n sessions.
// endAndExit ends the publisher's session and waits for the client
// (ExitOnEnd) to return, without an error.
func (tc *testClient) endAndExit(t *testing.T, h *origintest.Harness) {
	t.Helper()
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tc.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("Run did not return after the session ended: %+v", tc.c.Stats())
	}
	if tc.err != nil {
		t.Fatal(tc.err)
	}
}

func (tc *testClient) waitJoined(n int) {
	tc.t.Helper()
	unicasttest.WaitFor(tc.t, 5*time.Second, fmt.Sprintf("%d joins", n), func() bool { return tc.c.Stats().Joins >= n })
}

// waitPaths waits until every path was delivered or given up.
func (tc *testClient) waitPaths(timeout time.Duration, paths []string) {
	tc.t.Helper()
	unicasttest.WaitFor(tc.t, timeout, fmt.Sprintf("%d resources", len(paths)), func() bool {
		tc.mu.Lock()
		defer tc.mu.Unlock()
		for _, p := range paths {
			if len(tc.by[p]) == 0 {
				return false
			}
		}
		return true
	})
}

func (tc *testClient) deliveries(path string) []Delivery {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return slices.Clone(tc.by[path])
}

// checkExact checks that each path was delivered exactly once, with the
// exact bytes, and returns the deliveries.
func (tc *testClient) checkExact(h *origintest.Harness, paths []string) []Delivery {
	tc.t.Helper()
	var out []Delivery
	for _, p := range paths {
		ds := tc.deliveries(p)
		if len(ds) != 1 {
			tc.t.Errorf("%s delivered %d times", p, len(ds))
			continue
		}
		d := ds[0]
		if d.Err != nil {
			tc.t.Errorf("%s not delivered: %v", p, d.Err)
			continue
		}
		got := readBody(tc.t, d)
		if !bytes.Equal(got, h.Content[p]) {
			tc.t.Errorf("%s (via %s): %d bytes differ from the %d-byte file", p, d.Via, len(got), len(h.Content[p]))
		}
		out = append(out, d)
	}
	return out
}

func readBody(t testing.TB, d Delivery) []byte {
	t.Helper()
	b := make([]byte, d.Size)
	n, err := d.Body.ReadAt(b, 0)
	if err != nil && !(err == io.EOF && int64(n) == d.Size) {
		t.Fatalf("%s: reading body: %v (%d of %d bytes)", d.Path, err, n, d.Size)
	}
	return b[:n]
}

func countVia(ds []Delivery) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		m[d.Via]++
	}
	return m
}
