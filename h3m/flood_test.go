package h3m_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/internal/forger"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
)

var floodSrc = netip.AddrPortFrom(mcasttest.Source, 4433)

// runs holds how to stop the Run of each receiver floodSession started.
var runs sync.Map

// cancelRun stops rcv's Run and waits until it returned, its events
// delivered.
func cancelRun(t *testing.T, rcv *h3m.Receiver) {
	t.Helper()
	stop, ok := runs.Load(rcv)
	if !ok {
		t.Fatal("not running")
	}
	stop.(func())()
}

// heapAlloc returns the live heap, after a full collection when gc.
func heapAlloc(gc bool) uint64 {
	if gc {
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// floodSession returns a receiver fed by HandlePacket (running, so that
// events are delivered to onEvent) and a forger of its session.
func floodSession(t *testing.T, prof h3m.Profile, onEvent func(h3m.Event)) (*h3m.Receiver, *forger.Forger, forger.Sink) {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	p := mquic.Params{
		Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte("flood"),
		CipherSuite: protect.SuiteAES128GCM, Secret: secret, MaxConcurrentResources: 16,
	}
	// A real socket, whose Run ends when asked; the packets come from
	// HandlePacket.
	rcv, err := h3m.NewReceiver(mcasttest.Receiver(t, p.Group), h3m.ReceiverConfig{Session: p, Profile: prof, OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	if onEvent != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			rcv.Run(ctx)
		}()
		stop := func() {
			cancel()
			<-done
		}
		runs.Store(rcv, stop)
		t.Cleanup(stop)
	}
	f, err := forger.New(p)
	if err != nil {
		t.Fatal(err)
	}
	return rcv, f, forger.SinkFunc(func(pkt []byte) error {
		rcv.HandlePacket(append([]byte(nil), pkt...), floodSrc) // it decrypts in place
		return nil
	})
}

// TestPromiseFlood: 200,000 forged promises (no push stream follows any)
// keep the receiver's heap bounded — the pushes in progress are capped,
// the oldest promise without a stream making room for a new one — and a
// real push in the middle of the flood still completes. Before the cap,
// every promise stayed in progress until PushTimeout (heap +300 MB here).
func TestPromiseFlood(t *testing.T) {
	var mu sync.Mutex
	kinds := map[h3m.EventKind]int{}
	evicted := 0
	var real *h3m.Resource
	rcv, f, sink := floodSession(t, h3m.Profile{}, func(e h3m.Event) {
		mu.Lock()
		defer mu.Unlock()
		kinds[e.Kind]++
		if e.Kind == h3m.EventComplete && e.Resource.Path() == "/real.bin" {
			real = e.Resource
		}
		if _, err := e.Resource.State(); errors.Is(err, h3m.ErrPushEvicted) {
			evicted++
		}
	})
	const n = 200_000
	before := heapAlloc(true)
	var peak uint64
	path := func(i int) string { return fmt.Sprintf("/forged/%08d/with/a/longer/path/like/a/real/one.bin", i) }
	sent := 0
	for pkt := range f.PromiseFlood(n/2, path) {
		sink.Send(pkt)
		if sent++; sent%200 == 0 {
			peak = max(peak, heapAlloc(false))
		}
	}
	push := f.NewPush("/real.bin")
	push.Body = bytes.Repeat([]byte("real"), 5000)
	push.Header.Set("Content-Length", strconv.Itoa(len(push.Body)))
	pkts, err := f.Packets(&push)
	if err != nil {
		t.Fatal(err)
	}
	forger.Replay(sink, pkts)
	for pkt := range f.PromiseFlood(n/2, func(i int) string { return path(n/2 + i) }) {
		sink.Send(pkt)
		if sent++; sent%200 == 0 {
			peak = max(peak, heapAlloc(false))
		}
	}
	after := heapAlloc(true)
	st := rcv.Stats()
	mu.Lock()
	t.Logf("heap %d MiB before, %d MiB after, peak %d MiB (whole test process); promises %d, evicted %d (%d reported), refused %d; events %v",
		before>>20, after>>20, peak>>20, st.Promises, st.PushesEvicted, evicted, st.PushesRefused, kinds)
	mu.Unlock()
	if st.Promises != n+1 || st.PushesEvicted < n-h3m.DefaultMaxActivePushes {
		t.Errorf("promises %d, evicted %d", st.Promises, st.PushesEvicted)
	}
	if grown := int64(after) - int64(before); grown > 32<<20 {
		t.Errorf("heap grew %d MiB over the flood", grown>>20)
	}
	if peak > 256<<20 {
		t.Errorf("heap peaked at %d MiB during the flood", peak>>20)
	}
	cancelRun(t, rcv) // delivers the events still queued
	mu.Lock()
	defer mu.Unlock()
	if real == nil {
		t.Fatal("the real push did not complete")
	}
	if b := real.Body().(*h3m.MemoryBody).Bytes(); !bytes.Equal(b, push.Body) {
		t.Fatal("the real push's body differs")
	}
}

// TestHugeContentLength: a forged response that claims a 128 MiB body and
// sends a few bytes takes a few pages of memory, not 128 MiB (before, the
// default storage allocated the claimed size at once).
func TestHugeContentLength(t *testing.T) {
	rcv, f, sink := floodSession(t, h3m.Profile{}, nil)
	before := heapAlloc(true)
	for i := range 8 {
		p := f.NewPush(fmt.Sprintf("/huge%d", i))
		p.Header.Set("Content-Length", strconv.Itoa(128<<20))
		p.Body = []byte("only this")
		p.NoFin = true
		pkts, err := f.Packets(&p)
		if err != nil {
			t.Fatal(err)
		}
		forger.Replay(sink, pkts)
	}
	grown := int64(heapAlloc(true)) - int64(before)
	t.Logf("8 pushes claiming 128 MiB each: heap grew %d KiB", grown>>10)
	if grown > 4<<20 {
		t.Errorf("heap grew %d MiB", grown>>20)
	}
	if n := len(rcv.Resources()); n != 8 {
		t.Errorf("%d resources", n)
	}
	for _, r := range rcv.Resources() {
		if s, err := r.State(); s != h3m.StateReceiving || len(r.Received()) != 1 {
			t.Errorf("%s: %v %v, received %v", r.Path(), s, err, r.Received())
		}
	}
	runtime.KeepAlive(rcv)
}

// TestScatteredBodyBytes: one-byte DATA_WITH_OFFSET frames scattered over
// a body that claims 128 MiB keep its received ranges under MaxBodyRanges
// and its memory to the pages of the islands it keeps (before, the body
// grew to the highest offset written, and one range per frame stayed).
func TestScatteredBodyBytes(t *testing.T) {
	rcv, f, sink := floodSession(t, h3m.Profile{DataOffset: true}, nil)
	p := f.NewPush("/scattered")
	p.Header.Set("Content-Length", strconv.Itoa(128<<20))
	p.DataOffset = true
	p.NoFin = true
	pkts, err := f.Packets(&p)
	if err != nil {
		t.Fatal(err)
	}
	forger.Replay(sink, pkts)
	before := heapAlloc(true)
	// Frames of one byte every 6 KiB, many per STREAM frame.
	off := uint64(0)
	for _, pk := range pkts {
		o, err := f.Observe(pk)
		if err != nil {
			t.Fatal(err)
		}
		for _, fr := range o.Frames {
			if fr.Type.IsStream() && fr.Stream.StreamID == p.StreamID {
				off = max(off, fr.Stream.Offset+uint64(len(fr.Stream.Data)))
			}
		}
	}
	const n = 20_000
	var b []byte
	for i := range n {
		b = h3frame.AppendDataWithOffsetHeader(b, uint64(i)*6<<10+7, 1)
		b = append(b, 'x')
		if len(b) > 1000 || i == n-1 {
			sink.Send(f.Seal(forger.StreamFrame(nil, p.StreamID, off, b, false)))
			off += uint64(len(b))
			b = b[:0]
		}
	}
	grown := int64(heapAlloc(true)) - int64(before)
	st := rcv.Stats()
	var res *h3m.Resource
	for _, r := range rcv.Resources() {
		res = r
	}
	state, why := res.State()
	t.Logf("heap grew %d KiB; %d received ranges; cut back %d times; push %v %v", grown>>10, len(res.Received()), st.BodyRangesCapped, state, why)
	if state != h3m.StateReceiving {
		t.Errorf("push %v: %v", state, why)
	}
	if c := len(res.Received()); c > h3m.DefaultMaxBodyRanges {
		t.Errorf("%d received ranges", c)
	}
	if st.BodyRangesCapped == 0 {
		t.Error("the cap never bit")
	}
	// The islands kept, a page each, and the ranges.
	if grown > h3m.DefaultMaxBodyRanges*4<<10+1<<20 {
		t.Errorf("heap grew %d MiB", grown>>20)
	}
}

// TestStreamOfEvictedPush: the push stream of a promise evicted by the
// flood is discarded, not stored for a push that was settled already.
func TestStreamOfEvictedPush(t *testing.T) {
	rcv, f, sink := floodSession(t, h3m.Profile{}, nil)
	first := f.NewPush("/first")
	first.NoStream = true
	pkts, err := f.Packets(&first)
	if err != nil {
		t.Fatal(err)
	}
	forger.Replay(sink, pkts)
	forger.SendAll(sink, f.PromiseFlood(h3m.DefaultMaxActivePushes, func(i int) string { return fmt.Sprintf("/flood/%d", i) }))
	if st := rcv.Stats(); st.PushesEvicted != 1 {
		t.Fatalf("evicted %d", st.PushesEvicted)
	}
	first.NoPromise, first.NoStream = true, false
	first.Body = bytes.Repeat([]byte("x"), 100_000)
	pkts, err = f.Packets(&first)
	if err != nil {
		t.Fatal(err)
	}
	forger.Replay(sink, pkts)
	found := false
	for _, res := range rcv.Resources() {
		if res.PushID == first.PushID {
			found = true
			if st, err := res.State(); !errors.Is(err, h3m.ErrPushEvicted) || res.Body() != nil {
				t.Fatalf("evicted push: %v %v, body %v", st, err, res.Body())
			}
		}
	}
	if !found {
		t.Fatal("the evicted push is not remembered")
	}
}
