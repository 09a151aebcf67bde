package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/unicast/origin"
)

// mdbWatch polls the bridge's database and records, per port and group,
// when the port was first and last seen a member of (source, group).
type mdbWatch struct {
	mu          sync.Mutex
	first, last map[string]time.Time // port + " " + group
}

func watchMDB(ctx context.Context, n *Network, source netip.Addr, groups ...netip.Addr) *mdbWatch {
	w := &mdbWatch{first: map[string]time.Time{}, last: map[string]time.Time{}}
	go func() {
		for ctx.Err() == nil {
			mdb, err := n.MDB(ctx)
			now := time.Now()
			if err == nil {
				w.mu.Lock()
				for _, h := range n.Receivers {
					for _, g := range groups {
						if memberOf(mdb, h.Port, g, source) {
							k := h.Port + " " + g.String()
							if _, ok := w.first[k]; !ok {
								w.first[k] = now
							}
							w.last[k] = now
						}
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *mdbWatch) span(port string, g netip.Addr) (first, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := port + " " + g.String()
	return w.first[k], w.last[k]
}

// TestSnoopingRolloverNewGroup rolls a session over to a successor on
// another group at the same port, on the snooping switch: an origin runs in
// the sender's namespace (its library: Publisher.Rollover with a successor
// whose group differs), two `h3m receive` processes in the receivers'.
// Every receiver's (S,G2) entry must appear in the bridge's database before
// its (S,G1) entry goes (no gap), the old group's entries must go once the
// old session ended, and every file — pushed before and after the rollover — must
// arrive byte-exact by multicast, none by fallback.
func TestSnoopingRolloverNewGroup(t *testing.T) {
	needNetns(t)
	h3m := h3mBinary(t)
	needCLI(t, h3m, "receive")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := NewNetwork(ctx, ModeNetns, Topology{Receivers: 2, Snooping: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	g1, g2 := netip.MustParseAddr("232.77.0.1"), netip.MustParseAddr("232.77.0.2")

	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	content := map[string][]byte{}
	for b := 0; b < 2; b++ {
		for i := 0; i < 4; i++ {
			name := fmt.Sprintf("b%d-%d.bin", b, i)
			data := make([]byte, 100<<10+i*977)
			rand.Read(data)
			content[name] = data
			if err := os.WriteFile(filepath.Join(www, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert, err := origin.LoadOrCreateCertificate(certFile, keyFile, []string{n.Server.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "origin.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	o, err := origin.New(origin.Config{
		Dir: www, Addr: n.Server.String(), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Publisher: origin.PublisherConfig{Interface: n.Sender.Iface, TTL: 1,
			// The session sockets belong to the sender's namespace.
			Listen: func(c mcast.Config) (net.PacketConn, error) {
				var pc net.PacketConn
				err := n.Sender.Do(func() error {
					var err error
					pc, err = mcast.ListenSender(c)
					return err
				})
				return pc, err
			}},
		Logger: slog.New(slog.NewTextHandler(logf, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var uc net.PacketConn
	if err := n.Sender.Do(func() error {
		var err error
		uc, err = net.ListenPacket("udp", n.Server.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go o.Server.Serve(uc)
	defer o.Server.Close()
	session := func(g netip.Addr, port uint16) origin.SessionConfig {
		return origin.SessionConfig{Group: netip.AddrPortFrom(g, port), Source: n.Sender.Addr, Interface: n.Sender.Iface,
			Suite: protect.SuiteAES128GCM, PeakFlowRate: 50_000_000, MaxConcurrentResources: 16, IdleTimeout: 1500 * time.Millisecond}
	}
	ad1, err := origin.NewSession(session(g1, n.Port))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Publisher.Start(ad1); err != nil {
		t.Fatal(err)
	}
	defer o.Publisher.Close(context.Background())

	watch := watchMDB(ctx, n, n.Sender.Addr, g1, g2)

	var rcvs []*proc
	outs := make([]string, len(n.Receivers))
	for i, h := range n.Receivers {
		outs[i] = filepath.Join(dir, fmt.Sprintf("r%d", i+1))
		argv := []string{h3m, "receive", "--log-format", "json", "--url", "https://" + n.Server.String() + "/",
			"--ca", certFile, "--interface", h.Iface, "--out", outs[i]}
		p, err := startProc(h, h.Name, argv, []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, dir, outs[i]+".log")
		if err != nil {
			t.Fatal(err)
		}
		defer p.stop(2 * time.Second)
		rcvs = append(rcvs, p)
	}
	for _, h := range n.Receivers {
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		err := n.WaitMember(wctx, h, g1, n.Sender.Addr, true)
		wcancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	push := func(batch int) {
		t.Helper()
		for i := 0; i < 4; i++ {
			if _, err := o.Publisher.PushFile(ctx, fmt.Sprintf("/b%d-%d.bin", batch, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	push(0)
	// The successor keeps the port: while the receiver is a member of both
	// groups, two of its sockets are bound to the same port. (They once
	// shared an SO_REUSEPORT group, and datagrams arriving from the bridge
	// went to the other group's socket; see spec/transport.md.)
	ad2, err := origin.NewSession(session(g2, n.Port))
	if err != nil {
		t.Fatal(err)
	}
	rolledAt := time.Now()
	// Announced 4 s ahead: receivers read the description every second.
	if _, err := o.Publisher.Rollover(ctx, ad2, 4*time.Second); err != nil {
		t.Fatal(err)
	}
	push(1)
	// Every receiver joins the new group and leaves the old one.
	for _, h := range n.Receivers {
		for _, c := range []struct {
			g    netip.Addr
			want bool
		}{{g2, true}, {g1, false}} {
			wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
			err := n.WaitMember(wctx, h, c.g, n.Sender.Addr, c.want)
			wcancel()
			if err != nil {
				t.Fatalf("after the rollover: %v", err)
			}
		}
	}
	if err := o.Publisher.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for i, p := range rcvs {
		if !p.wait(ctx, 30*time.Second) {
			t.Fatalf("receiver %d did not exit after the session ended", i+1)
		}
		if _, code, _ := p.result(); code != 0 {
			b, _ := os.ReadFile(outs[i] + ".log")
			t.Errorf("receiver %d exited with %d: %s", i+1, code, lastLines(b, 6))
		}
	}
	for i, h := range n.Receivers {
		f1, l1 := watch.span(h.Port, g1)
		f2, l2 := watch.span(h.Port, g2)
		t.Logf("%s: (S,%s) member %v..%v, (S,%s) member %v..%v (rollover announced at %v)", h.Name,
			g1, f1.Sub(rolledAt).Round(time.Millisecond), l1.Sub(rolledAt).Round(time.Millisecond),
			g2, f2.Sub(rolledAt).Round(time.Millisecond), l2.Sub(rolledAt).Round(time.Millisecond), rolledAt.Format("15:04:05.000"))
		if f2.IsZero() || !f2.Before(l1) {
			t.Errorf("%s: joined %s at %v, after it was last a member of %s at %v: a gap", h.Name, g2, f2, g1, l1)
		}
		for name, data := range content {
			got, err := os.ReadFile(filepath.Join(outs[i], name))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: %s missing or different (%v)", h.Name, name, err)
			}
		}
		b, _ := os.ReadFile(outs[i] + ".log")
		if c := strings.Count(string(b), "\nmulticast "); c < len(content)-1 || strings.Contains(string(b), "\nfallback ") {
			t.Errorf("%s: %d of %d resources by multicast, or some by fallback: %s", h.Name, c, len(content), lastLines(b, 4))
		}
	}
}
