package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/internal/forger"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// forgeryFlood is how many promises of paths the origin never pushed the
// key holder sends.
const forgeryFlood = 2000

// forgery is the integrity case's key holder (Runner.Forger): every
// receiver of a symmetric session holds its key, so any receiver can forge
// its packets. It reads the session description over TLS from receiver
// 1's host, like any receiver, and sends from the attacker host (which
// holds the sender's address, so that SSM receivers take its packets)
// pushes that a receiver must refuse even from a key holder: paths that
// are not origin-form targets (one naming another authority,
// escape, which must never be contacted), a hidden name, and a flood of
// promises of paths the origin never pushed, which must not turn into
// requests or failures. The attacker's relay shows it the real packets, so
// that its packet numbers, stream 0 and push IDs continue the sender's.
type forgery struct {
	f      atomic.Pointer[forger.Forger]
	conn   *forger.Conn
	escape netip.AddrPort
	// stream0 holds copies of the last real packets that carried stream 0
	// (observe runs on the relay's goroutine; forge reads them after
	// every file arrived, under mu).
	mu      sync.Mutex
	stream0 [][]byte
	// sent counts forged packets; refused lists the names a receiver must
	// not have written.
	sent    int
	refused []string
}

// maxStream0 bounds the real stream-0 packets the key holder keeps.
const maxStream0 = 512

// observe moves the forger past a real packet of the session (the relay
// calls it with each one) and keeps a copy of those that carry stream 0.
func (fg *forgery) observe(pkt []byte) {
	f := fg.f.Load()
	if f == nil {
		return
	}
	o, err := f.Observe(pkt)
	if err != nil {
		return // the relay's own flipped copies fail to open
	}
	for _, fr := range o.Frames {
		if fr.Type.IsStream() && fr.Stream.StreamID == 0 {
			fg.mu.Lock()
			if len(fg.stream0) == maxStream0 {
				fg.stream0 = fg.stream0[1:]
			}
			fg.stream0 = append(fg.stream0, append([]byte(nil), pkt...))
			fg.mu.Unlock()
			return
		}
	}
}

// learnSession reads the session's keys like any receiver and opens the
// key holder's socket; from then on it follows the real packets.
func (c *caseRun) learnSession() error {
	fg := c.forgery
	ad, err := c.discoverAsReceiver()
	if err != nil {
		return fmt.Errorf("key holder: %w", err)
	}
	f, err := forger.FromAdvertisement(&ad)
	if err != nil {
		return fmt.Errorf("key holder: %w", err)
	}
	h := *c.net.Attacker
	if err := h.Do(func() error {
		var err error
		fg.conn, err = forger.Dial(&ad.Session, h.Iface)
		return err
	}); err != nil {
		return fmt.Errorf("key holder: %w", err)
	}
	fg.f.Store(f)
	return nil
}

// forge sends the forgeries: first the real stream-0 packets seen, again
// (a receiver that lost some takes them, which fills the gaps its stream 0
// may have before the forged promises), then the forged pushes.
func (c *caseRun) forge() error {
	fg := c.forgery
	f := fg.f.Load()
	if f == nil || f.NextPN() == 0 {
		return errors.New("key holder: no packet of the session observed")
	}
	fg.mu.Lock()
	replay := fg.stream0
	fg.mu.Unlock()
	fg.escape = netip.AddrPortFrom(c.net.Server.Addr(), c.net.Server.Port()+1)
	esc := "@" + fg.escape.String() + "/../"
	pkts := slices.Clone(replay)
	add := func(p forger.Push) error {
		b, err := f.Packets(&p)
		pkts = append(pkts, b...)
		return err
	}
	body := []byte("forged by a key holder\n")
	whole := func(path string) forger.Push {
		p := f.NewPush(path)
		p.Header.Set("Content-Type", "application/octet-stream")
		p.Header.Set("Content-Length", fmt.Sprint(len(body)))
		p.Body = body
		return p
	}
	for _, path := range []string{esc + "escape.bin", "/.profile", "/a/../../outside.bin"} {
		if err := add(whole(path)); err != nil {
			return err
		}
	}
	fg.refused = []string{"escape.bin", ".profile", "outside.bin", "fetched.bin"}
	promise := f.NewPush(esc + "fetched.bin") // no push stream: a receiver that fetched it would leave the origin
	promise.NoStream = true
	if err := add(promise); err != nil {
		return err
	}
	for p := range f.PromiseFlood(forgeryFlood, func(i int) string { return fmt.Sprintf("/forged/%d.bin", i) }) {
		pkts = append(pkts, p)
	}
	for _, p := range pkts {
		if err := fg.conn.Send(p); err != nil {
			return fmt.Errorf("key holder: %w", err)
		}
		fg.sent++
		if fg.sent%64 == 0 {
			time.Sleep(time.Millisecond) // not faster than a receiver's socket buffer takes
		}
	}
	c.logf("key holder: %d packets sent: %d real stream-0 packets again, then forged pushes (paths off the origin via %s, a hidden name, %d promises of paths never pushed)",
		fg.sent, len(replay), fg.escape, forgeryFlood)
	return nil
}

// discoverAsReceiver reads the session description from receiver 1's host
// over TLS, trusting CERTS/ca.pem, and returns the session's
// advertisement, keys included.
func (c *caseRun) discoverAsReceiver() (altsvc.Advertisement, error) {
	pem, err := os.ReadFile(filepath.Join(c.certs, "ca.pem"))
	if err != nil {
		return altsvc.Advertisement{}, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	var conn net.PacketConn
	if err := c.net.Receivers[0].Do(func() error {
		var err error
		conn, err = net.ListenPacket("udp", ":0")
		return err
	}); err != nil {
		return altsvc.Advertisement{}, err
	}
	defer conn.Close()
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			raddr, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			return quic.DialEarly(ctx, conn, raddr, tlsCfg, cfg)
		},
	}
	defer tr.Close()
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	ads, err := forger.Discover(ctx, &http.Client{Transport: tr}, "https://"+c.net.Server.String()+"/")
	if err != nil {
		return altsvc.Advertisement{}, err
	}
	for _, ad := range ads {
		if ad.Session.Group.Addr() == c.net.Group {
			return ad, nil
		}
	}
	return altsvc.Advertisement{}, fmt.Errorf("no session on group %s in the description", c.net.Group)
}

// checkForgery requires receiver i to have written none of the forged
// names (in its downloads or next to them) and to have sent nothing to
// the authority the forged paths named.
func (c *caseRun) checkForgery(i int) error {
	fg := c.forgery
	var errs []error
	if fg.sent == 0 {
		errs = append(errs, errors.New("the key holder sent nothing: nothing was tested"))
	}
	dl := c.downloads[i]
	filepath.WalkDir(dl, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dl, p)
		rel = filepath.ToSlash(rel)
		if _, ok := c.released[rel]; !ok && !strings.HasPrefix(rel, ".h3m-partial") {
			errs = append(errs, fmt.Errorf("receiver %d wrote %s, which the origin never pushed", i+1, rel))
		}
		return nil
	})
	for _, name := range fg.refused {
		if _, err := os.Stat(filepath.Join(filepath.Dir(dl), name)); err == nil {
			errs = append(errs, fmt.Errorf("receiver %d wrote %s outside its downloads", i+1, name))
		}
	}
	pkts, err := c.capture(c.net.Receivers[i].Name)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	off := 0
	for _, p := range pkts {
		if p.Dst == fg.escape {
			off++
		}
	}
	if off > 0 {
		errs = append(errs, fmt.Errorf("receiver %d sent %d datagrams to %s, the authority a forged path named", i+1, off, fg.escape))
	}
	if len(errs) == 0 {
		c.logf("receiver %d: refused every forgery (nothing written, nothing sent off the origin)", i+1)
	}
	return errors.Join(errs...)
}
