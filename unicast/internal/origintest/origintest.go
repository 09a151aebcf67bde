// Package origintest runs an origin for tests: files under a temporary
// folder, the unicast server on a free loopback port, the registries and a
// publisher whose multicast sockets can lose packets on purpose.
package origintest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Options shape a Harness.
type Options struct {
	Files   int // number of files (default 12)
	MinSize int // smallest file (default 1)
	MaxSize int // largest file (default 200 KiB)
	Seed    uint64
	Loss    float64
	// Wrap wraps the file handler (a misbehaving server).
	Wrap func(files *origin.FileServer, next http.Handler) http.Handler
	// Front wraps the whole server, well-known document included.
	Front func(http.Handler) http.Handler
	// Publisher adjusts the publisher's configuration.
	Publisher func(*origin.PublisherConfig)
}

// Harness is a unicast server, a publisher and the files they share, all
// on loopback.
type Harness struct {
	T         testing.TB
	Log       *slog.Logger
	Dir       string
	Paths     []string          // the files' request paths
	Content   map[string][]byte // by path
	Files     *origin.FileServer
	Handler   http.Handler
	Sessions  *origin.Sessions
	Catalog   *origin.Catalog
	Manifests *origin.Manifests
	Keys      *origin.Keys
	TLSConfig *tls.Config
	CAFile    string // the server's certificate, to trust
	Addr      string // the unicast server's address
	Pub       *origin.Publisher

	front     func(http.Handler) http.Handler
	pubConfig origin.PublisherConfig

	mu       sync.Mutex
	srvClose func(crash bool)
	lossy    []*mcasttest.Lossy
	loss     float64
	seed     uint64
	dropIf   func([]byte) bool
}

// New starts the origin of a test: files under a temporary folder, the
// unicast server on a free loopback port and a publisher on "lo", stopped
// when the test ends.
func New(t testing.TB, o Options) *Harness {
	t.Helper()
	if o.Files == 0 {
		o.Files = 12
	}
	if o.MinSize == 0 {
		o.MinSize = 1
	}
	if o.MaxSize == 0 {
		o.MaxSize = 200 << 10
	}
	h := &Harness{T: t, Log: unicasttest.Logger(t), Dir: t.TempDir(), Content: map[string][]byte{}, loss: o.Loss, seed: o.Seed + 1}
	rng := mrand.New(mrand.NewPCG(o.Seed, 7))
	for i := range o.Files {
		size := o.MinSize + rng.IntN(o.MaxSize-o.MinSize+1)
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := fmt.Sprintf("seg-%03d.bin", i)
		if err := os.WriteFile(filepath.Join(h.Dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		h.Paths = append(h.Paths, "/"+name)
		h.Content["/"+name] = b
	}
	certDir := t.TempDir()
	h.CAFile = filepath.Join(certDir, "cert.pem")
	cert, err := origin.LoadOrCreateCertificate(h.CAFile, filepath.Join(certDir, "key.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	h.Files, err = origin.NewFileServer(h.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Files.Close() })
	h.Handler = h.Files
	if o.Wrap != nil {
		h.Handler = o.Wrap(h.Files, h.Files)
	}
	h.Sessions, h.Catalog, h.Manifests, h.Keys = &origin.Sessions{}, &origin.Catalog{}, &origin.Manifests{}, &origin.Keys{}
	h.front = o.Front
	h.StartServer("127.0.0.1:0")
	pc := origin.PublisherConfig{
		Interface: "lo", TTL: 1, Files: h.Files, Authority: h.Addr,
		Sessions: h.Sessions, Catalog: h.Catalog, Manifests: h.Manifests, Keys: h.Keys, Logger: h.Log,
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
	if o.Publisher != nil {
		o.Publisher(&pc)
	}
	h.pubConfig = pc
	h.Pub, err = origin.NewPublisher(pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Pub.Close(context.Background()) })
	return h
}

// StartServer starts the unicast server on addr.
func (h *Harness) StartServer(addr string) {
	h.T.Helper()
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		h.T.Fatalf("unicast server on %s: %v", addr, err)
	}
	srv := &origin.Server{Handler: h.Handler, TLSConfig: h.TLSConfig, Sessions: h.Sessions, Catalog: h.Catalog,
		Manifests: h.Manifests, Keys: h.Keys, Logger: h.Log}
	stop := srv.Close
	if h.front != nil {
		// The Server as a mounted handler, behind a misbehaving front.
		h3s := &http3.Server{TLSConfig: http3.ConfigureTLSConfig(h.TLSConfig.Clone()), Handler: h.front(srv)}
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
	h.Addr = conn.LocalAddr().String()
	h.mu.Unlock()
	h.T.Cleanup(func() { closeFn(false) })
	// Serve registers the listener asynchronously; wait until it answers.
	hc := h.HTTPClient()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodHead, "https://"+h.Addr+wellknown.Path, nil)
		resp, err := hc.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			h.T.Fatalf("unicast server does not answer: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StopServer stops the unicast server: connections are closed at once,
// or, for a crash, the socket is closed first so that clients are not told.
func (h *Harness) StopServer(crash bool) {
	h.mu.Lock()
	closeFn := h.srvClose
	h.srvClose = nil
	h.mu.Unlock()
	closeFn(crash)
}

// URL is the unicast server's https URL.
func (h *Harness) URL() string { return "https://" + h.Addr + "/" }

// HTTPClient returns an HTTP/3 client that trusts the server.
func (h *Harness) HTTPClient() *http.Client {
	pem, err := os.ReadFile(h.CAFile)
	if err != nil {
		h.T.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, QUICConfig: &quic.Config{HandshakeIdleTimeout: 500 * time.Millisecond}}
	h.T.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

// SetDrop makes every session's socket (and later ones) drop what f says.
func (h *Harness) SetDrop(f func([]byte) bool) {
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

// Dropped sums what the lossy sockets dropped: packets and bytes.
func (h *Harness) Dropped() (pkts int, bytes int) {
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

// PushAll pushes paths on the publisher's current session.
func (h *Harness) PushAll(paths []string) {
	h.T.Helper()
	for _, p := range paths {
		if _, err := h.Pub.PushFile(context.Background(), p); err != nil {
			h.T.Fatalf("push %s: %v", p, err)
		}
	}
}

// Restart restarts the origin as a new process would: the publisher's
// session ends unannounced, and a server with empty registries and a new
// publisher come up on the same address, with the same files.
func (h *Harness) Restart() {
	h.T.Helper()
	addr := h.Addr
	h.StopServer(false)
	h.Pub.Close(context.Background())
	h.Sessions, h.Catalog, h.Manifests, h.Keys = &origin.Sessions{}, &origin.Catalog{}, &origin.Manifests{}, &origin.Keys{}
	pc := h.pubConfig
	pc.Sessions, pc.Catalog, pc.Manifests, pc.Keys = h.Sessions, h.Catalog, h.Manifests, h.Keys
	pub, err := origin.NewPublisher(pc)
	if err != nil {
		h.T.Fatal(err)
	}
	h.Pub = pub
	h.T.Cleanup(func() { pub.Close(context.Background()) })
	h.StartServer(addr)
}
