package soak

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/origin"
)

// lossyOrigin is an origin on loopback whose multicast sockets (those of
// every session it starts, channels included) drop a fraction of their
// packets, counted rather than kept.
type lossyOrigin struct {
	*origin.Origin
	// CAFile is the certificate receivers trust.
	CAFile string

	conn     net.PacketConn
	served   chan struct{}
	mu       sync.Mutex
	lossy    []*mcasttest.Lossy
	rate     float64
	seed     uint64
	serving  bool
	closedMu sync.Once
}

// newLossyOrigin makes an origin serving www, with its certificate in dir,
// dropping rate of the multicast packets on iface (reproducibly from seed).
// Serve starts it.
func newLossyOrigin(dir, www, iface string, rate float64, seed uint64, log *slog.Logger) (*lossyOrigin, error) {
	lo := &lossyOrigin{CAFile: filepath.Join(dir, "cert.pem"), rate: rate, seed: seed, served: make(chan struct{})}
	cert, err := origin.LoadOrCreateCertificate(lo.CAFile, filepath.Join(dir, "key.pem"), []string{"127.0.0.1"})
	if err != nil {
		return nil, err
	}
	lo.conn, err = net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	lo.Origin, err = origin.New(origin.Config{
		Dir: www, Addr: lo.conn.LocalAddr().String(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:    log.With("part", "origin"),
		Publisher: origin.PublisherConfig{Interface: iface, TTL: 1, Listen: lo.listen},
	})
	if err != nil {
		lo.conn.Close()
		return nil, err
	}
	return lo, nil
}

func (lo *lossyOrigin) listen(c mcast.Config) (net.PacketConn, error) {
	mc, err := mcast.ListenSender(c)
	if err != nil {
		return nil, err
	}
	lo.mu.Lock()
	defer lo.mu.Unlock()
	lo.seed++
	l := mcasttest.NewLossy(mc, lo.rate, lo.seed)
	l.CountOnly() // a long run cannot keep every packet it drops
	lo.lossy = append(lo.lossy, l)
	return l, nil
}

// Serve serves unicast requests until Close.
func (lo *lossyOrigin) Serve() {
	lo.serving = true
	go func() {
		defer close(lo.served)
		lo.Server.Serve(lo.conn)
	}()
}

// Close ends the origin's sessions and its server; again, nothing.
func (lo *lossyOrigin) Close(ctx context.Context) {
	lo.closedMu.Do(func() {
		lo.Origin.Close(ctx)
		if lo.serving {
			<-lo.served
		} else {
			lo.conn.Close()
		}
	})
}

// SetRate changes the loss of every socket, and returns the packets they
// dropped so far.
func (lo *lossyOrigin) SetRate(rate float64) (dropped int) {
	lo.mu.Lock()
	defer lo.mu.Unlock()
	lo.rate = rate
	for _, l := range lo.lossy {
		l.SetRate(rate)
		n, _ := l.DroppedCount()
		dropped += n
	}
	return dropped
}

// Counts returns what the sockets dropped (packets, bytes) and sent.
func (lo *lossyOrigin) Counts() (dropped, droppedBytes, sent int) {
	lo.mu.Lock()
	defer lo.mu.Unlock()
	for _, l := range lo.lossy {
		p, b := l.DroppedCount()
		dropped, droppedBytes, sent = dropped+p, droppedBytes+b, sent+l.Sent()
	}
	return dropped, droppedBytes, sent
}

// compressTimings gives cfg the timings of a run in compressed time: a
// loss is repaired, a receiver that stopped joined again, a session that
// went quiet fallen back from, within a second or two.
func compressTimings(cfg *client.Config) {
	cfg.QUICConfig = &quic.Config{HandshakeIdleTimeout: time.Second, MaxIdleTimeout: 5 * time.Second, KeepAlivePeriod: time.Second}
	cfg.PushTimeout, cfg.RepairDelay, cfg.RepairBackoff, cfg.MaxBackoff = 500*time.Millisecond, 50*time.Millisecond, 100*time.Millisecond, time.Second
	cfg.FallbackAfter, cfg.ProbeInterval, cfg.CatalogPoll, cfg.LostGrace, cfg.EndDrain = 2*time.Second, 300*time.Millisecond, 200*time.Millisecond, time.Second, 500*time.Millisecond
}

// serveHTTP serves h over HTTP on a loopback port of its own until close.
func serveHTTP(h http.Handler) (base string, close func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	return "http://" + ln.Addr().String(), hs.Close, nil
}
