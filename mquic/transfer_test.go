package mquic_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
)

// testParams returns secret-form AES-128-GCM parameters for group.
func testParams(t testing.TB, group netip.AddrPort) mquic.Params {
	secret := make([]byte, 32)
	rand.Read(secret)
	return mquic.Params{
		Group:       group,
		Source:      mcasttest.Source,
		SessionID:   []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4},
		CipherSuite: protect.SuiteAES128GCM,
		Secret:      secret,
	}
}

// pattern is the content of every test stream: byte o of stream s is
// block[(o + s*7919) % len(block)], cheap to generate and to check.
type pattern struct{ block []byte }

func newPattern() pattern {
	b := make([]byte, 1<<20+13)
	rand.Read(b)
	return pattern{b}
}

func (p pattern) fill(dst []byte, stream, off uint64) {
	for len(dst) > 0 {
		i := (off + stream*7919) % uint64(len(p.block))
		n := copy(dst, p.block[i:])
		dst, off = dst[n:], off+uint64(n)
	}
}

// collector is a Handler that checks stream data against the pattern and
// records what each stream saw.
type collector struct {
	mu      sync.Mutex
	pat     pattern
	streams map[uint64]*streamLog
	errs    []error
	done    chan uint64
}

type streamLog struct {
	c        *collector
	s        *mquic.RecvStream
	id       uint64
	next     uint64
	got      ranges.Set
	gaps     ranges.Set
	final    uint64
	finished bool
	evicted  bool
	scratch  []byte
}

func newCollector(p pattern) *collector {
	return &collector{pat: p, streams: map[uint64]*streamLog{}, done: make(chan uint64, 4096)}
}

func (c *collector) OpenStream(s *mquic.RecvStream) mquic.StreamHandler {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := &streamLog{c: c, s: s, id: s.ID()}
	c.streams[s.ID()] = l
	return l
}

func (c *collector) fail(format string, args ...any) {
	c.mu.Lock()
	c.errs = append(c.errs, fmt.Errorf(format, args...))
	c.mu.Unlock()
}

func (l *streamLog) Data(off uint64, p []byte) {
	if off != l.next && !l.gaps.Contains(off, off+uint64(len(p))) {
		l.c.fail("stream %d: data at %d, expected %d", l.id, off, l.next)
	}
	if cap(l.scratch) < len(p) {
		l.scratch = make([]byte, len(p))
	}
	want := l.scratch[:len(p)]
	l.c.pat.fill(want, l.id, off)
	if string(want) != string(p) {
		l.c.fail("stream %d: wrong bytes at [%d,%d)", l.id, off, off+uint64(len(p)))
	}
	l.got.Add(off, off+uint64(len(p)))
	l.next = max(l.next, off+uint64(len(p)))
}

func (l *streamLog) Gap(from, to uint64) {
	if from != l.next {
		l.c.fail("stream %d: gap at %d, expected %d", l.id, from, l.next)
	}
	l.gaps.Add(from, to)
	l.next = to
}

func (l *streamLog) Finish(final uint64) {
	l.final, l.finished = final, true
	l.c.done <- l.id
}

func (l *streamLog) Reset(code, final uint64) {
	if code == mquic.EvictedCode {
		l.evicted = true
		return
	}
	l.c.fail("stream %d: unexpected reset", l.id)
}

// sendStreams writes size bytes of pattern on n streams concurrently and
// closes them.
func sendStreams(t testing.TB, snd *mquic.Sender, pat pattern, n int, size int) []uint64 {
	t.Helper()
	var wg sync.WaitGroup
	ids := make([]uint64, n)
	errs := make(chan error, n)
	for i := range n {
		st, err := snd.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = st.ID()
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for off := 0; off < size; off += len(buf) {
				b := buf[:min(len(buf), size-off)]
				pat.fill(b, st.ID(), uint64(off))
				if _, err := st.Write(b); err != nil {
					errs <- err
					return
				}
			}
			errs <- st.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.Flush(); err != nil {
		t.Fatal(err)
	}
	return ids
}

func waitStreams(t testing.TB, c *collector, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for range n {
		select {
		case <-c.done:
		case <-deadline:
			t.Fatalf("only some of %d streams finished within %v", n, timeout)
		}
	}
}

// TestTransfer100MiB64Streams sends 100 MiB over 64 concurrent streams over
// real loopback multicast and checks every byte.
func TestTransfer100MiB64Streams(t *testing.T) {
	group := mcasttest.Group()
	params := testParams(t, group)
	params.PeakFlowRate = 2_000_000_000
	rconn := mcasttest.Receiver(t, group)
	sconn := mcasttest.Sender(t, group)
	pat := newPattern()
	col := newCollector(pat)
	rcv, err := mquic.NewReceiver(rconn, mquic.ReceiverConfig{Params: params, Handler: col})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- rcv.Run(ctx) }()
	snd, err := runSender(t, sconn, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()

	const streams, size = 64, 100 << 20 / 64
	start := time.Now()
	ids := sendStreams(t, snd, pat, streams, size)
	waitStreams(t, col, streams, 60*time.Second)
	elapsed := time.Since(start)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	for _, err := range col.errs {
		t.Error(err)
	}
	for _, id := range ids {
		l := col.streams[id]
		if l == nil || !l.finished || l.final != size || !l.got.Contains(0, size) || !l.gaps.Empty() {
			t.Fatalf("stream %d incomplete: %+v", id, l)
		}
	}
	st := rcv.Stats()
	ss := snd.Stats()
	t.Logf("100 MiB in %v (%.2f Gbit/s); sender %d packets in %d writes; receiver %d packets, lost %d",
		elapsed, float64(100<<20)*8/elapsed.Seconds()/1e9, ss.Packets, ss.Writes, st.Packets, st.LostPackets)
	if st.Packets != ss.Packets || st.LostPackets != 0 {
		t.Fatalf("sent %d packets, received %d (lost %d)", ss.Packets, st.Packets, st.LostPackets)
	}
}

// droppedRanges decodes the dropped packets and returns, per stream, the
// byte ranges they carried.
func droppedRanges(t testing.TB, params mquic.Params, pkts [][]byte) (map[uint64]*ranges.Set, []uint64) {
	t.Helper()
	prot, err := params.Protector()
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint64]*ranges.Set{}
	var pns []uint64
	for _, p := range pkts {
		pn, payload, err := prot.Open(append([]byte(nil), p...), 1+len(params.SessionID), params.PNLen(), 0, false)
		if err != nil {
			t.Fatalf("decode a dropped packet: %v", err)
		}
		pns = append(pns, pn)
		var f wire.Frame
		for len(payload) > 0 {
			n, err := wire.ParseFrame(payload, &f)
			if err != nil {
				t.Fatalf("parse a dropped packet: %v", err)
			}
			payload = payload[n:]
			if f.Type.IsStream() && len(f.Stream.Data) > 0 {
				s := out[f.Stream.StreamID]
				if s == nil {
					s = &ranges.Set{}
					out[f.Stream.StreamID] = s
				}
				s.Add(f.Stream.Offset, f.Stream.Offset+uint64(len(f.Stream.Data)))
			}
		}
	}
	return out, pns
}

// TestLossReportsExactRanges drops 5% of the packets between sender and
// receiver and checks that the receiver reports exactly the dropped bytes:
// as gaps where later data arrived, and as not received at the tail.
func TestLossReportsExactRanges(t *testing.T) {
	group := mcasttest.Group()
	params := testParams(t, group)
	params.PeakFlowRate = 500_000_000
	rconn := mcasttest.Receiver(t, group)
	lossy := mcasttest.NewLossy(mcasttest.Sender(t, group), 0.05, 7)
	pat := newPattern()
	col := newCollector(pat)
	rcv, err := mquic.NewReceiver(rconn, mquic.ReceiverConfig{Params: params, Handler: col})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- rcv.Run(ctx) }()
	snd, err := runSender(t, lossy, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	const streams, size = 16, 1 << 20
	ids := sendStreams(t, snd, pat, streams, size)
	snd.Close()
	waitDatagrams(rcv, uint64(lossy.Sent()), 30*time.Second)
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	rcv.Flush()
	for _, err := range col.errs {
		t.Error(err)
	}
	lost, lostPNs := droppedRanges(t, params, lossy.Dropped())
	if len(lossy.Dropped()) == 0 {
		t.Fatal("nothing was dropped")
	}
	totalLost := uint64(0)
	for _, id := range ids {
		l := col.streams[id]
		want := lost[id]
		if want == nil {
			want = &ranges.Set{}
		}
		totalLost += want.Len()
		var missing ranges.Set
		for _, r := range l.got.Missing(nil, 0, size) {
			missing.Add(r.Start, r.End)
		}
		if missing.String() != want.String() {
			t.Errorf("stream %d: missing %v, dropped %v", id, missing.String(), want.String())
		}
		// Every gap is a dropped range; every dropped range before the last
		// received byte is a gap.
		for _, g := range l.gaps.Ranges() {
			if !want.Contains(g.Start, g.End) {
				t.Errorf("stream %d: gap %v was not dropped", id, g)
			}
		}
		for _, d := range want.Ranges() {
			if d.End <= l.next && !l.gaps.Contains(d.Start, d.End) {
				t.Errorf("stream %d: dropped %v not reported as a gap", id, d)
			}
		}
		if !l.s.Lost().Contains(0, 0) || l.s.Lost().String() != l.gaps.String() {
			t.Errorf("stream %d: Lost() %v differs from reported gaps %v", id, l.s.Lost().String(), l.gaps.String())
		}
	}
	st := rcv.Stats()
	t.Logf("%s; %d stream bytes lost; receiver: %d packets, %d lost by packet number, %d gaps",
		lossy, totalLost, st.Packets, st.LostPackets, st.Gaps)
	// Packet-number gaps reveal every dropped packet but those before the
	// first and after the last one received.
	droppedPN := map[uint64]bool{}
	for _, pn := range lostPNs {
		droppedPN[pn] = true
	}
	firstReceived := uint64(0)
	for droppedPN[firstReceived] {
		firstReceived++
	}
	beforeLast := 0
	for _, pn := range lostPNs {
		if pn > firstReceived && pn < st.LargestPN {
			beforeLast++
		}
	}
	if st.LostPackets != uint64(beforeLast) {
		t.Errorf("receiver counts %d lost packets, %d were dropped before its largest packet number", st.LostPackets, beforeLast)
	}
}
