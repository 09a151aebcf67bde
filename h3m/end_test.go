package h3m_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/internal/pcapfile"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// TestEndSettlesWhatWasLost: the session's last push (connection: close)
// arrives while one push lost the head of its push stream (its promise
// came) and another the packet with its FIN. Every push was sent before the last one, so the
// receiver settles both at once — the first failed (its push ID never
// came), the second incomplete — and the session ends, with no push
// timeout: the packets are fed with HandlePacket, where no timer runs.
func TestEndSettlesWhatWasLost(t *testing.T) {
	params := mquic.Params{Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte("end"),
		CipherSuite: protect.SuiteNull, PacketNumberLen: 4}
	cc := &captureConn{}
	snd, err := mcasttest.RunSender(t, cc, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	p, err := h3m.NewPusher(snd, h3m.PusherConfig{Authority: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int{3000, 4000, 5000, 100}
	for i, n := range sizes {
		body := make([]byte, n)
		rand.Read(body)
		if _, err := p.Push(context.Background(), bytesPush(fmt.Sprintf("/%d", i), body)); err != nil {
			t.Fatal(err)
		}
		snd.Flush() // no packet carries two pushes
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	snd.Close()
	c := &captured{params: params, pkts: cc.Packets()}

	// Pushes go one after the other on streams 3, 7, 11, 15 (19 ends the
	// session): take the opening of stream 7 (push 1) out of its packet,
	// which keeps push 1's promise, and drop the packet that ends stream 11
	// (push 2).
	drop := map[int]bool{}
	cut := false
	for i := range c.pkts {
		c.streamFrames(t, i, func(sf wire.StreamFrame) {
			switch {
			case sf.StreamID == 7 && sf.Offset == 0:
				c.pkts[i] = withoutStream(t, c.params, c.pkts[i], 7)
				cut = true
			case sf.StreamID == 11 && sf.Fin:
				drop[i] = true
			}
		})
	}
	if len(drop) != 1 || !cut {
		t.Fatalf("dropping packets %v, cut %v", drop, cut)
	}
	r := c.receiver(t, h3m.ReceiverConfig{PushTimeout: time.Hour}, nil)
	c.feed(r, c.pkts, func(i int) bool { return drop[i] })
	select {
	case <-r.Ended():
	default:
		t.Fatal("the session did not end with its last push")
	}
	want := map[string]struct {
		st  h3m.State
		err error
	}{
		"/0": {h3m.StateComplete, nil}, "/1": {h3m.StateFailed, h3m.ErrPushLost},
		"/2": {h3m.StateIncomplete, nil}, "/3": {h3m.StateComplete, nil},
	}
	for _, res := range r.Resources() {
		w, ok := want[res.Path()]
		if !ok {
			continue
		}
		delete(want, res.Path())
		st, err := res.State()
		if st != w.st || (w.err != nil && !errors.Is(err, w.err)) {
			t.Errorf("%s: %v %v, want %v %v", res.Path(), st, err, w.st, w.err)
		}
		if st == h3m.StateIncomplete && len(res.Missing()) == 0 {
			t.Errorf("%s: incomplete with nothing missing", res.Path())
		}
	}
	if len(want) != 0 {
		t.Errorf("not received: %v", want)
	}
}

// withoutStream rewrites a packet of a NULL-suite session without its
// STREAM frames of stream id.
func withoutStream(t *testing.T, params mquic.Params, pkt []byte, id uint64) []byte {
	t.Helper()
	hdr := 1 + len(params.SessionID) + params.PNLen()
	out := append([]byte(nil), pkt[:hdr]...)
	var kept []wire.StreamFrame
	streamFrames(t, params, pkt, func(sf wire.StreamFrame) {
		if sf.StreamID != id {
			kept = append(kept, sf)
		}
	})
	for _, sf := range kept {
		out = wire.AppendStreamFrame(out, sf, true)
	}
	return wire.AppendPadding(out, 20)
}

// TestPromiseAfterItsStream: in nghq's capture, the packet that carries the
// second promise is lost, so the third promise waits on stream 0 behind
// the hole while its push stream arrives whole, FIN included. Once the
// promise comes the push completes (it does not wait for a timeout and is
// not taken as having lost bytes); the push whose promise was lost fails
// as such, and the session ends with its last push.
func TestPromiseAfterItsStream(t *testing.T) {
	pkts, err := pcapfile.ReadFile(filepath.Join(nghqDir, "capture.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	params := nghqParams()
	rcv, err := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{Session: params, PushTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	dropped := false
	for _, p := range pkts {
		promise := false
		streamFrames(t, params, p.Payload, func(sf wire.StreamFrame) { promise = promise || (sf.StreamID == 0 && sf.Offset > 0) })
		if promise && !dropped {
			dropped = true
			continue
		}
		rcv.HandlePacket(p.Payload, p.Src)
	}
	select {
	case <-rcv.Ended():
	default:
		t.Fatal("the session did not end with its last push")
	}
	states := map[uint64]string{}
	for _, res := range rcv.Resources() {
		st, err := res.State()
		states[res.PushID] = fmt.Sprintf("%s %v %v", res.Path(), st, err)
		switch res.PushID {
		case 1:
			if st != h3m.StateFailed || !errors.Is(err, h3m.ErrPromiseLost) {
				t.Errorf("push 1: %v %v", st, err)
			}
		default:
			if st != h3m.StateComplete {
				t.Errorf("push %d (%s): %v %v", res.PushID, res.Path(), st, err)
			}
		}
	}
	if len(states) != 4 {
		t.Errorf("pushes %v", states)
	}
}
