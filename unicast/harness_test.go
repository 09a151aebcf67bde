package unicast

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
)

// testLogger logs to t until the test ends (goroutines that outlive it log
// nowhere). H3M_TEST_DEBUG=1 lowers the level to debug.
func testLogger(t testing.TB) *slog.Logger {
	lw := &testLogWriter{t: t}
	t.Cleanup(lw.stop)
	level := slog.LevelInfo
	if os.Getenv("H3M_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: level}))
}

type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// testAd returns the advertisement of a new loopback session.
func testAd(t testing.TB, id string) altsvc.Advertisement {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	return altsvc.Advertisement{
		Draft: 11,
		Session: mquic.Params{
			Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte(id),
			CipherSuite: protect.SuiteAES128GCM, Secret: secret,
			// Modest rate: CI runs several packages on 2 cores.
			PeakFlowRate: 200_000_000, MaxConcurrentResources: 16,
			// Idle pings every ~0.5 s let a client see that multicast is back
			// even when nothing is pushed.
			IdleTimeout: 1500 * time.Millisecond,
		},
	}
}

type harnessOpts struct {
	files   int // number of files (default 12)
	minSize int // smallest file (default 1)
	maxSize int // largest file (default 200 KiB)
	seed    uint64
	loss    float64
	// wrap wraps the file handler (a misbehaving server).
	wrap func(files *FileServer, next http.Handler) http.Handler
	// front wraps the whole server, well-known document included.
	front func(http.Handler) http.Handler
	// publisher adjusts the publisher's configuration.
	publisher func(*PublisherConfig)
}

// harness is a unicast server, a publisher and the files they share, all
// on loopback.
type harness struct {
	t         testing.TB
	log       *slog.Logger
	dir       string
	paths     []string
	content   map[string][]byte
	files     *FileServer
	handler   http.Handler
	sessions  *Sessions
	catalog   *Catalog
	manifests *Manifests
	keys      *Keys
	tlsConf   *tls.Config
	caFile    string
	addr      string

	front func(http.Handler) http.Handler

	mu       sync.Mutex
	srvClose func(crash bool)
	lossy    []*mcasttest.Lossy
	loss     float64
	seed     uint64
	dropIf   func([]byte) bool

	pub *Publisher
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	if o.files == 0 {
		o.files = 12
	}
	if o.minSize == 0 {
		o.minSize = 1
	}
	if o.maxSize == 0 {
		o.maxSize = 200 << 10
	}
	h := &harness{t: t, log: testLogger(t), dir: t.TempDir(), content: map[string][]byte{}, loss: o.loss, seed: o.seed + 1}
	rng := mrand.New(mrand.NewPCG(o.seed, 7))
	for i := range o.files {
		size := o.minSize + rng.IntN(o.maxSize-o.minSize+1)
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("seg-%03d.bin", i)
		if err := os.WriteFile(filepath.Join(h.dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		h.paths = append(h.paths, "/"+name)
		h.content["/"+name] = b
	}
	certDir := t.TempDir()
	h.caFile = filepath.Join(certDir, "cert.pem")
	cert, err := LoadOrCreateCertificate(h.caFile, filepath.Join(certDir, "key.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}}
	h.files, err = NewFileServer(h.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.files.Close() })
	h.handler = h.files
	if o.wrap != nil {
		h.handler = o.wrap(h.files, h.files)
	}
	h.sessions, h.catalog, h.manifests, h.keys = &Sessions{}, &Catalog{}, &Manifests{}, &Keys{}
	h.front = o.front
	h.startServer("127.0.0.1:0")
	pc := PublisherConfig{
		Interface: "lo", TTL: 1, Files: h.files, Authority: h.addr,
		Sessions: h.sessions, Catalog: h.catalog, Manifests: h.manifests, Keys: h.keys, Logger: h.log,
		Listen: func(c mcast.Config) (net.PacketConn, error) {
			conn, err := mcast.ListenSender(c)
			if err != nil {
				return nil, err
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			l := mcasttest.NewLossy(conn, h.loss, h.seed)
			h.seed++
			if h.dropIf != nil {
				l.DropIf(h.dropIf)
			}
			h.lossy = append(h.lossy, l)
			return l, nil
		},
	}
	if o.publisher != nil {
		o.publisher(&pc)
	}
	h.pub, err = NewPublisher(pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.pub.Close(context.Background()) })
	return h
}

// startServer starts the unicast server on addr.
func (h *harness) startServer(addr string) {
	h.t.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		h.t.Fatalf("unicast server on %s: %v", addr, err)
	}
	srv := &Server{Handler: h.handler, TLSConfig: h.tlsConf, Sessions: h.sessions, Catalog: h.catalog,
		Manifests: h.manifests, Keys: h.keys, Logger: h.log}
	stop := srv.Close
	if h.front != nil {
		// The Server as a mounted handler, behind a misbehaving front.
		h3s := &http3.Server{TLSConfig: http3.ConfigureTLSConfig(h.tlsConf.Clone()), Handler: h.front(srv)}
		go h3s.Serve(conn)
		stop = h3s.Close
	} else {
		go srv.Serve(conn)
	}
	closeFn := func(crash bool) {
		if crash {
			// The socket goes first: clients hear nothing.
			conn.Close()
		}
		stop()
		conn.Close()
	}
	h.mu.Lock()
	h.srvClose = closeFn
	h.addr = conn.LocalAddr().String()
	h.mu.Unlock()
	h.t.Cleanup(func() { closeFn(false) })
	// Serve registers the listener asynchronously; wait until it answers.
	hc := h.httpClient()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := get(ctx, hc, http.MethodHead, "https://"+h.addr+WellKnownPath)
		cancel()
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("unicast server does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopServer stops the unicast server: connections are closed at once,
// or, for a crash, the socket is closed first so that clients are not told.
func (h *harness) stopServer(crash bool) {
	h.mu.Lock()
	closeFn := h.srvClose
	h.srvClose = nil
	h.mu.Unlock()
	closeFn(crash)
}

func (h *harness) url() string { return "https://" + h.addr + "/" }

func (h *harness) httpClient() *http.Client {
	pool, err := LoadCertPool(h.caFile)
	if err != nil {
		h.t.Fatal(err)
	}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, QUICConfig: &quic.Config{HandshakeIdleTimeout: 500 * time.Millisecond}}
	h.t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

// setDrop makes every session's socket (and later ones) drop what f says.
func (h *harness) setDrop(f func([]byte) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropIf = f
	for _, l := range h.lossy {
		if f == nil {
			l.DropIf(func([]byte) bool { return false })
		} else {
			l.DropIf(f)
		}
	}
}

// dropped sums what the lossy sockets dropped: packets and bytes.
func (h *harness) dropped() (pkts int, bytes int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.lossy {
		for _, p := range l.Dropped() {
			pkts++
			bytes += len(p)
		}
	}
	return pkts, bytes
}

// clientConfig returns a client configuration with timings scaled for tests.
func (h *harness) clientConfig() ClientConfig {
	return ClientConfig{
		URL: h.url(), CAFile: h.caFile, Interface: "lo", RecvBuffer: 64 << 20,
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
		Logger:         h.log,
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

func (h *harness) runClient(cfg ClientConfig) *testClient {
	h.t.Helper()
	tc := &testClient{t: h.t, by: map[string][]Delivery{}, done: make(chan struct{})}
	user := cfg.OnResource
	cfg.OnResource = func(d Delivery) {
		tc.mu.Lock()
		tc.by[d.Path] = append(tc.by[d.Path], d)
		tc.mu.Unlock()
		if user != nil {
			user(d)
		}
	}
	c, err := NewClient(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	tc.c = c
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		tc.err = c.Run(ctx)
		close(tc.done)
	}()
	h.t.Cleanup(func() {
		cancel()
		select {
		case <-tc.done:
		case <-time.After(10 * time.Second):
			h.t.Error("client did not stop")
		}
	})
	return tc
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitJoined waits until the client has joined n sessions.
func (tc *testClient) waitJoined(n int) {
	tc.t.Helper()
	waitFor(tc.t, 5*time.Second, fmt.Sprintf("%d joins", n), func() bool { return tc.c.Stats().Joins >= n })
}

// waitPaths waits until every path was delivered or given up.
func (tc *testClient) waitPaths(timeout time.Duration, paths []string) {
	tc.t.Helper()
	waitFor(tc.t, timeout, fmt.Sprintf("%d resources", len(paths)), func() bool {
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
func (tc *testClient) checkExact(h *harness, paths []string) []Delivery {
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
		if !bytes.Equal(got, h.content[p]) {
			tc.t.Errorf("%s (via %s): %d bytes differ from the %d-byte file", p, d.Via, len(got), len(h.content[p]))
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

// pushAll pushes paths on the publisher's current session.
func (h *harness) pushAll(paths []string) {
	h.t.Helper()
	for _, p := range paths {
		if _, err := h.pub.PushFile(context.Background(), p); err != nil {
			h.t.Fatalf("push %s: %v", p, err)
		}
	}
}

func countVia(ds []Delivery) map[string]int {
	m := map[string]int{}
	for _, d := range ds {
		m[d.Via]++
	}
	return m
}
