package mquic_test

import (
	"runtime"
	"testing"
	"time"

	keyforger "github.com/h3m-project/h3m/internal/forger"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// realStreams hands streams 0 and 3 to a collector and the others (the
// forger's) to a handler that keeps nothing, so that the test measures the
// receiver's memory, not the collector's.
type realStreams struct{ *collector }

func (h realStreams) OpenStream(s *mquic.RecvStream) mquic.StreamHandler {
	if s.ID() == 0 || s.ID() == 3 {
		return h.collector.OpenStream(s)
	}
	return nopStream{}
}

// TestSparseStreamIDsFlood: 200,000 forged one-frame streams with
// scattered IDs, first 100,000 finished (FIN), then 100,000 left open,
// keep the receiver's memory bounded: the finished ones do not grow the set
// of finished streams past MaxClosedStreams, the open ones evict each other
// past MaxStreams; a real stream after the flood still arrives. (Before the
// caps, the finished-stream set grew by a range per forged stream, 3.7 MB
// here, and the open ones refused every real stream for good once
// MaxStreams were open.)
func TestSparseStreamIDsFlood(t *testing.T) {
	pat := newPattern()
	col := newCollector(pat)
	r, clk, f := clockedReceiver(t, mquic.ReceiverConfig{Params: testParams(t, mcasttest.Group()), Handler: realStreams{col}})
	const n = 200_000
	before := heapInUse()
	for i := range uint64(n) {
		id := 3 + 4*(1000+i*7919)
		r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, id, 0, []byte{'x'}, i < n/2)), src)
		clk.Advance(time.Microsecond)
		if i == n/2 {
			if grown := int64(heapInUse()) - int64(before); grown > 1<<20 {
				t.Errorf("heap grew %d bytes over %d finished forged streams", grown, n/2)
			}
		}
	}
	grown := int64(heapInUse()) - int64(before)
	st := r.Stats()
	t.Logf("heap grew %d bytes; evicted %d open streams, forgot %d finished ones", grown, st.EvictedStreams, st.ClosedForgotten)
	if st.EvictedStreams < n/2-mquic.DefaultMaxStreams || st.ClosedForgotten < n/2-mquic.DefaultMaxClosedStreams {
		t.Errorf("caps did not bite: %+v", st)
	}
	// What the receiver holds for 1024 open streams and 1024 ranges is far
	// below one range per forged stream.
	if limit := int64(1 << 20); grown > limit {
		t.Errorf("heap grew %d bytes over the flood, more than %d", grown, limit)
	}
	// A real stream still arrives.
	data := make([]byte, 1000)
	pat.fill(data, 3, 0)
	r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, 3, 0, data, true)), src)
	if l := streamOf(col, 3); l == nil || !l.finished {
		t.Fatal("a real stream after the flood did not arrive")
	}
}

// stream0Probe is stream 0's handler in TestOneByteStream0Frames: it only
// notes whether the real bytes [1000,2000) arrived.
type stream0Probe struct {
	s    *mquic.RecvStream
	real bool
}

func (p *stream0Probe) OpenStream(s *mquic.RecvStream) mquic.StreamHandler {
	p.s = s
	return p
}
func (p *stream0Probe) Data(off uint64, b []byte) { p.real = p.real || off == 1000 && len(b) == 1000 }
func (p *stream0Probe) Gap(from, to uint64)       {}
func (p *stream0Probe) Finish(uint64)             {}
func (p *stream0Probe) Reset(uint64, uint64)      {}

// TestOneByteStream0Frames: 100,000 forged one-byte frames scattered over
// stream 0 ahead of the real data keep its range lists under
// MaxStreamRanges and the held bytes under MaxBufferedBytes, and real
// stream-0 data still reaches the handler. (Before the cap, each frame
// added a range that stayed for the session's life.)
func TestOneByteStream0Frames(t *testing.T) {
	probe := &stream0Probe{}
	r, _, f := clockedReceiver(t, mquic.ReceiverConfig{Params: testParams(t, mcasttest.Group()), Handler: probe, ReorderDelay: time.Hour})
	data := make([]byte, 1000)
	r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, 0, 0, data, false)), src)
	before := heapInUse()
	const n = 100_000
	for i := range uint64(n) {
		r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, 0, 1_000_000+i*3, []byte{'x'}, false)), src)
	}
	grown := int64(heapInUse()) - int64(before)
	st := r.Stats()
	t.Logf("heap grew %d bytes; %d received ranges, %d lost ranges, %d bytes held, cut back %d times", grown, probe.s.Received().Count(), probe.s.Lost().Count(), st.Buffered, st.RangesCapped)
	if c := probe.s.Received().Count(); c > mquic.DefaultMaxStreamRanges {
		t.Errorf("%d received ranges on stream 0", c)
	}
	if c := probe.s.Lost().Count(); c > mquic.DefaultMaxStreamRanges {
		t.Errorf("%d lost ranges on stream 0", c)
	}
	if st.RangesCapped == 0 {
		t.Error("the range cap never bit")
	}
	// Ranges of 1024 ranges and the held bytes, far below a range per frame.
	if grown > 1<<20 {
		t.Errorf("heap grew %d bytes", grown)
	}
	// Real data where the real sender continues arrives (late, below the
	// forged offsets now reported as gaps).
	r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, 0, 1000, data, false)), src)
	if !probe.real {
		t.Error("real stream-0 data after the flood not delivered")
	}
}

// TestStream0NeverEvicted: however many forged streams open after it,
// stream 0 (the control stream, quiet between promises) stays open.
func TestStream0NeverEvicted(t *testing.T) {
	pat := newPattern()
	col := newCollector(pat)
	r, _, f := clockedReceiver(t, mquic.ReceiverConfig{Params: testParams(t, mcasttest.Group()), Handler: realStreams{col}, MaxStreams: 8})
	data := make([]byte, 100)
	pat.fill(data, 0, 0)
	r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, 0, 0, data, false)), src)
	for i := range uint64(100) {
		r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, 7+4*i, 0, []byte{'x'}, false)), src)
	}
	pat.fill(data, 0, 100)
	r.HandlePacket(f.Seal(keyforger.StreamFrame(nil, 0, 100, data, false)), src)
	l := streamOf(col, 0)
	if st := r.Stats(); l.evicted || !l.got.Contains(0, 200) || st.EvictedStreams != 100-7 {
		t.Fatalf("stream 0: evicted %v, got %s; %+v", l.evicted, l.got.String(), st)
	}
	noErrors(t, col)
}
