package forger_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/internal/forger"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/internal/netns"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

func testParams(group netip.AddrPort) mquic.Params {
	secret := make([]byte, 32)
	rand.Read(secret)
	return mquic.Params{
		Group: group, Source: mcasttest.Source, SessionID: []byte("forged"),
		CipherSuite: protect.SuiteAES128GCM, Secret: secret,
	}
}

var src = netip.AddrPortFrom(mcasttest.Source, 4433)

// receiver returns an h3m receiver fed by HandlePacket, and a sink into it.
func receiver(t *testing.T, p mquic.Params) (*h3m.Receiver, forger.Sink) {
	t.Helper()
	rcv, err := h3m.NewReceiver(&mcasttest.CaptureConn{}, h3m.ReceiverConfig{Session: p})
	if err != nil {
		t.Fatal(err)
	}
	return rcv, forger.SinkFunc(func(pkt []byte) error {
		rcv.HandlePacket(pkt, src)
		return nil
	})
}

func byPath(rcv *h3m.Receiver, path string) *h3m.Resource {
	for _, r := range rcv.Resources() {
		if r.Path() == path {
			return r
		}
	}
	return nil
}

// TestForgedPushAfterRealOnes: the forger observes a real sender's packets
// and its push continues the session where the real one left off, so a
// symmetric receiver takes it like a real one (the weakness the project's
// asymmetric mode and signatures remove).
func TestForgedPushAfterRealOnes(t *testing.T) {
	p := testParams(mcasttest.Group())
	cc := &mcasttest.CaptureConn{}
	snd, err := mcasttest.RunSender(t, cc, mquic.SenderConfig{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	pusher, err := h3m.NewPusher(snd, h3m.PusherConfig{Authority: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := bytes.Repeat([]byte{byte(i)}, 3000)
		if _, err := pusher.Push(context.Background(), &h3m.Push{Request: h3frame.Request{Path: fmt.Sprintf("/real%d", i)}, Body: bytes.NewReader(body), ContentLength: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
	}
	snd.Close()
	real := cc.Packets()

	f, err := forger.New(p)
	if err != nil {
		t.Fatal(err)
	}
	rcv, sink := receiver(t, p)
	for _, pkt := range real {
		if _, err := f.Observe(pkt); err != nil {
			t.Fatal(err)
		}
		sink.Send(pkt)
	}
	if f.NextPN() != uint64(len(real)) {
		t.Errorf("next packet number %d after %d real packets", f.NextPN(), len(real))
	}
	push := f.NewPush("/forged")
	if push.PushID != 3 || push.StreamID != 3+3*4 {
		t.Errorf("forged push %d on stream %d, want push 3 on stream 15", push.PushID, push.StreamID)
	}
	push.Body = bytes.Repeat([]byte("evil"), 1000)
	push.Header.Set("Content-Length", "4000")
	pkts, err := f.Packets(&push)
	if err != nil {
		t.Fatal(err)
	}
	if err := forger.Replay(sink, pkts); err != nil {
		t.Fatal(err)
	}
	res := byPath(rcv, "/forged")
	if res == nil {
		t.Fatal("the forged push was not received")
	}
	if st, err := res.State(); st != h3m.StateComplete {
		t.Fatalf("forged push %v (%v)", st, err)
	}
	for i := range 3 {
		if r := byPath(rcv, fmt.Sprintf("/real%d", i)); r == nil {
			t.Errorf("real push %d missing", i)
		} else if st, _ := r.State(); st != h3m.StateComplete {
			t.Errorf("real push %d: %v", i, st)
		}
	}
}

// TestPromiseFlood: a flood packs many promises in each packet, with
// consecutive push IDs.
func TestPromiseFlood(t *testing.T) {
	p := testParams(mcasttest.Group())
	f, err := forger.New(p)
	if err != nil {
		t.Fatal(err)
	}
	rcv, sink := receiver(t, p)
	n, err := forger.SendAll(sink, f.PromiseFlood(500, func(i int) string { return fmt.Sprintf("/flood/%d", i) }))
	if err != nil {
		t.Fatal(err)
	}
	if n >= 500/10 {
		t.Errorf("%d packets for 500 promises", n)
	}
	if got := rcv.Stats().Promises; got != 500 {
		t.Errorf("%d promises received, want 500", got)
	}
}

// TestPacketNumberJump: SetNextPN and SealPN put any packet number on a
// packet, which a receiver decodes as such.
func TestPacketNumberJump(t *testing.T) {
	p := testParams(mcasttest.Group())
	f, err := forger.New(p)
	if err != nil {
		t.Fatal(err)
	}
	r, err := mquic.NewReceiver(&mcasttest.CaptureConn{}, mquic.ReceiverConfig{Params: p, Handler: nopHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	r.HandlePacket(f.Seal([]byte{1}), src) // PING, pn 0
	r.HandlePacket(f.SealPN(1<<20, []byte{1}), src)
	if st := r.Stats(); st.Packets != 2 || st.Pings != 2 {
		t.Fatalf("stats %+v", st)
	}
	if f.NextPN() != 1 {
		t.Errorf("SealPN moved the next packet number to %d", f.NextPN())
	}
}

type nopHandler struct{}

func (nopHandler) OpenStream(*mquic.RecvStream) mquic.StreamHandler { return nil }

// TestDial: a forger on the sender's host (here: loopback, source
// 127.0.0.1) sends from the session's source address.
func TestDial(t *testing.T) {
	group := mcasttest.Group()
	p := testParams(group)
	rc, err := mcast.ListenReceiver(mcast.Config{Group: group, Source: p.Source, Interface: "lo"})
	if err != nil {
		t.Skipf("no multicast on lo: %v", err)
	}
	defer rc.Close()
	c, err := forger.Dial(&p, "lo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := forger.New(p)
	if err != nil {
		t.Fatal(err)
	}
	pkt := f.Seal([]byte{1})
	if err := c.Send(pkt); err != nil {
		t.Fatal(err)
	}
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2000)
	n, from, err := rc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], pkt) || netip.MustParseAddrPort(from.String()).Addr() != p.Source {
		t.Errorf("received %x from %v, sent %x from %s", buf[:n], from, pkt, p.Source)
	}
}

// TestDialSpoofed: a forger on another host of a test network (namespace
// a) writes packets whose source is the session's sender (an address it
// does not have), and a receiver joined to that source on its host
// (namespace b) gets them.
func TestDialSpoofed(t *testing.T) {
	a, b := netns.New(t, "forger"), netns.New(t, "rcv")
	ifA, ifB := netns.Veth(t, a, b, netip.MustParsePrefix("198.18.0.7/24"), netip.MustParsePrefix("198.18.0.2/24"))
	group := mcasttest.Group()
	p := testParams(group)
	p.Source = netip.MustParseAddr("198.18.0.1") // the sender, elsewhere
	var rc *mcast.Conn
	if err := b.Do(func() (err error) {
		rc, err = mcast.ListenReceiver(mcast.Config{Group: group, Source: p.Source, Interface: ifB})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var c *forger.Conn
	if err := a.Do(func() (err error) {
		c, err = forger.DialSpoofed(&p, ifA)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f, err := forger.New(p)
	if err != nil {
		t.Fatal(err)
	}
	pkt := f.Seal([]byte{1})
	if err := c.Send(pkt); err != nil {
		t.Fatal(err)
	}
	rc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2000)
	n, from, err := rc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf[:n], pkt) {
		t.Errorf("received %x, sent %x", buf[:n], pkt)
	}
	if got := netip.MustParseAddrPort(from.String()).Addr(); got != p.Source {
		t.Errorf("source %s, want %s", got, p.Source)
	}
}

// TestDiscover: the forger reads the session description over TLS.
func TestDiscover(t *testing.T) {
	p := testParams(netip.MustParseAddrPort("232.1.2.3:5000"))
	ad := altsvc.Advertisement{Draft: 11, Session: p}
	d := wellknown.Description{Version: wellknown.Version, Sessions: []wellknown.SessionInfo{{
		ID: wellknown.SessionID(&ad), State: wellknown.StateActive, AltSvc: ad.String(),
	}}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != wellknown.Path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	defer srv.Close()
	ads, err := forger.Discover(context.Background(), srv.Client(), srv.URL+"/some/file")
	if err != nil {
		t.Fatal(err)
	}
	if len(ads) != 1 || !bytes.Equal(ads[0].Session.Secret, p.Secret) {
		t.Fatalf("advertisements %+v", ads)
	}
	f, err := forger.FromAdvertisement(&ads[0])
	if err != nil {
		t.Fatal(err)
	}
	if f.Params().Group != p.Group {
		t.Errorf("group %s", f.Params().Group)
	}
	if _, err := forger.Discover(context.Background(), srv.Client(), "http://"+strings.TrimPrefix(srv.URL, "https://")); err == nil {
		t.Error("plain HTTP accepted by a TLS server")
	}
}
