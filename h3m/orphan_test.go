package h3m_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/internal/pcapfile"
	"github.com/h3m-project/h3m/mquic/wire"
)

// TestOrphanPromiseLost: the capture of TestPromiseAfterItsStream with the
// second promise lost, received with KeepOrphans. The push whose promise was
// lost keeps its response and its whole body, and is settled as an orphan
// as soon as the next promise is parsed (not after the push timeout, here an
// hour); given its request (Adopt), it is whole and passes its checks, with
// the bytes the same push has when its promise is not lost.
func TestOrphanPromiseLost(t *testing.T) {
	pkts, err := pcapfile.ReadFile(filepath.Join(nghqDir, "capture.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	params := nghqParams()
	receive := func(losePromise bool) *h3m.Receiver {
		t.Helper()
		rcv, err := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{Session: params, PushTimeout: time.Hour, KeepOrphans: true})
		if err != nil {
			t.Fatal(err)
		}
		dropped := false
		for _, p := range pkts {
			promise := false
			streamFrames(t, params, p.Payload, func(sf wire.StreamFrame) { promise = promise || (sf.StreamID == 0 && sf.Offset > 0) })
			if promise && losePromise && !dropped {
				dropped = true
				continue
			}
			rcv.HandlePacket(p.Payload, p.Src)
		}
		return rcv
	}
	whole := receive(false)
	var want *h3m.Resource
	for _, res := range whole.Resources() {
		if res.PushID == 1 {
			want = res
		}
	}
	if want == nil {
		t.Fatal("push 1 not received without loss")
	}
	rcv := receive(true)
	select {
	case <-rcv.Ended():
	default:
		t.Fatal("the session did not end with its last push")
	}
	var orphan *h3m.Resource
	for _, res := range rcv.Resources() {
		if res.PushID == 1 {
			orphan = res
		}
	}
	if orphan == nil {
		t.Fatal("push 1 unknown")
	}
	st, err := orphan.State()
	isOrphan, idKnown := orphan.Orphan()
	if st != h3m.StateIncomplete || !isOrphan || !idKnown || orphan.Request() != nil || orphan.Response() == nil {
		t.Fatalf("push 1: %v %v, orphan %v (push ID known %v), request %v, response %v", st, err, isOrphan, idKnown, orphan.Request(), orphan.Response())
	}
	if s := rcv.Stats(); s.Orphans != 1 || s.UnpromisedPush != 1 {
		t.Errorf("stats %+v: want 1 orphan, 1 unpromised push", s)
	}
	if err := orphan.Adopt(1, nil, nil); err != nil {
		t.Fatal(err)
	}
	if orphan.Request() != nil {
		t.Fatal("adopted a request that was not given")
	}
	req := *want.Request()
	if err := orphan.Adopt(1, &req, &h3frame.Response{Status: 500}); err != nil {
		t.Fatal(err)
	}
	if orphan.Response().Status == 500 {
		t.Fatal("the response that arrived was replaced")
	}
	if m := orphan.Missing(); len(m) != 0 {
		t.Fatalf("missing %v of a push whose stream arrived whole", m)
	}
	if err := (&h3m.Verifier{}).Verify(orphan, h3m.Profile{}); err != nil {
		t.Fatalf("the adopted orphan fails its checks: %v", err)
	}
	if got, exp := bodyOf(t, orphan), bodyOf(t, want); !bytes.Equal(got, exp) {
		t.Fatalf("body of %d bytes, the push without loss has %d", len(got), len(exp))
	}
}
