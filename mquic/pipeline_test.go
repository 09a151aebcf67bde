package mquic_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	keyforger "github.com/h3m-project/h3m/internal/forger"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
)

// feedConn is a batch-reading conn that serves prepared batches of
// datagrams, then waits for its read deadline.
type feedConn struct {
	captureConn
	mu       sync.Mutex
	batches  [][][]byte
	deadline time.Time
	wake     chan struct{}
}

func newFeedConn(batches [][][]byte) *feedConn {
	return &feedConn{batches: batches, wake: make(chan struct{}, 1)}
}

func (c *feedConn) ReadBatch(msgs []mcast.Message) (int, error) {
	for {
		c.mu.Lock()
		if len(c.batches) > 0 {
			b := c.batches[0]
			n := min(len(b), len(msgs))
			for i, p := range b[:n] {
				msgs[i].N = copy(msgs[i].Buf, p)
				msgs[i].SegSize, msgs[i].Src, msgs[i].Truncated = 0, src, false
			}
			c.batches[0] = b[n:]
			if len(c.batches[0]) == 0 {
				c.batches = c.batches[1:]
			}
			c.mu.Unlock()
			return n, nil
		}
		d := c.deadline
		c.mu.Unlock()
		if !d.IsZero() && !time.Now().Before(d) {
			time.Sleep(100 * time.Microsecond) // a past deadline: do not spin hard
			return 0, os.ErrDeadlineExceeded
		}
		var expire <-chan time.Time
		if !d.IsZero() {
			t := time.NewTimer(time.Until(d))
			expire = t.C
			defer t.Stop()
		}
		select {
		case <-c.wake:
		case <-expire:
		}
	}
}

func (c *feedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// testClock is a receiver clock that moves only when the test says: what
// expires by time expires when the test advances it, not when a loaded
// machine happens to be slow.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// fixedClock is a clock that stands still: nothing expires by time.
func fixedClock() time.Time { return time.Unix(1_800_000_000, 0) }

// receivePipelined runs a receiver's Run over the batches and returns its
// stats once every datagram has been processed.
func receivePipelined(t testing.TB, cfg mquic.ReceiverConfig, batches [][][]byte) mquic.ReceiverStats {
	t.Helper()
	total := 0
	for _, b := range batches {
		total += len(b)
	}
	cfg.ReadBatch = 0
	for _, b := range batches {
		cfg.ReadBatch = max(cfg.ReadBatch, len(b))
	}
	r, stop := runPipelined(t, newFeedConn(batches), cfg)
	waitPipelined(r, total)
	stop()
	r.Flush()
	return r.Stats()
}

// runPipelined runs a receiver of conn, on a clock that stands still, until
// stop.
func runPipelined(t testing.TB, conn net.PacketConn, cfg mquic.ReceiverConfig) (r *mquic.Receiver, stop func()) {
	t.Helper()
	r, err := mquic.NewReceiver(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.SetClock(fixedClock)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for !r.Running() {
		runtime.Gosched()
	}
	if err := r.Run(ctx); err == nil {
		t.Fatal("Run twice")
	}
	return r, func() {
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// waitPipelined waits until r has handled n datagrams.
func waitPipelined(r *mquic.Receiver, n int) {
	for r.Stats().Datagrams < uint64(n) {
		time.Sleep(time.Millisecond)
	}
}

// receiveSequential hands the same datagrams to HandlePacket one by one.
func receiveSequential(t testing.TB, cfg mquic.ReceiverConfig, batches [][][]byte) mquic.ReceiverStats {
	t.Helper()
	r, err := mquic.NewReceiver(&captureConn{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.SetClock(fixedClock)
	for _, b := range batches {
		for _, p := range b {
			r.HandlePacket(append([]byte(nil), p...), src)
		}
	}
	r.Flush()
	return r.Stats()
}

// packetCounters are the counters that do not depend on how datagrams were
// grouped into reads. (Stream counters do: holes are declared after each
// read, so a late packet may fill a hole in one grouping and find its
// stream finished in another.)
func packetCounters(s mquic.ReceiverStats) [21]uint64 {
	a := s.Auth
	return [21]uint64{s.Datagrams, s.Packets, s.Bytes, s.Pings, s.WrongSource, s.NotShort,
		s.WrongSession, s.DecryptFailed, s.Duplicate, s.Stale, s.UnknownFrame, s.BadFrame, s.LostPackets,
		s.LargestPN, s.BadManifest, a.Manifests, a.Authenticated, uint64(a.Held), a.PNMismatch, s.PNLeaps, s.PNMoves}
}

// batched splits datagrams into reads of n.
func batched(pkts [][]byte, n int) [][][]byte {
	var out [][][]byte
	for len(pkts) > 0 {
		k := min(n, len(pkts))
		out = append(out, pkts[:k])
		pkts = pkts[k:]
	}
	return out
}

// mangle returns the session's packets with replays, corrupted copies,
// truncated ones and some dropped, in a reproducible order.
func mangle(pkts [][]byte, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 7))
	var out [][]byte
	for i, p := range pkts {
		switch rng.IntN(12) {
		case 0:
			continue // lost
		case 1:
			q := append([]byte(nil), p...)
			q[len(q)/2] ^= 0x40
			out = append(out, q) // corrupted: decryption fails
		case 2:
			if i > 0 {
				out = append(out, pkts[rng.IntN(i)]) // a replay of an older one
			}
		case 3:
			out = append(out, p[:len(p)-3]) // truncated
		}
		out = append(out, p)
	}
	return out
}

// withJumps inserts, between the packets, forged ones whose packet
// numbers jump far ahead of the real ones (and back), and copies of them.
func withJumps(t testing.TB, params mquic.Params, pkts [][]byte, seed uint64) [][]byte {
	f, err := keyforger.New(params)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	var out [][]byte
	for i, p := range pkts {
		if rng.IntN(40) == 0 {
			jump := []uint64{1 << 12, 1 << 20, 1 << 29, 3 << 30}[rng.IntN(4)]
			q := f.SealPN(uint64(i)+jump, []byte{0x01})
			out = append(out, q, q)
		}
		out = append(out, p)
	}
	return out
}

// TestPipelineMatchesSequential: Run opens packets on parallel workers and
// processes them in read order; whatever the grouping into reads, every
// packet-level outcome (accepted, duplicate, stale, decryption failure,
// packet numbers decoded, held and authenticated packets) is the one of
// handling the datagrams one at a time. Sessions with 1-byte packet numbers
// wrap the packet-number window many times within one read (those packets
// are decrypted in order), 4-byte ones are opened in parallel; forged
// packet-number jumps (beyond MaxPNJump, and beyond the quarter of the
// packet-number space that openers running ahead decode) end the same.
func TestPipelineMatchesSequential(t *testing.T) {
	pat := newPattern()
	for _, tc := range []struct {
		name  string
		pnLen int
		asym  bool
		jumps bool
	}{{"pn4", 4, false, false}, {"pn1", 1, false, false}, {"pn2", 2, false, false}, {"asym-pn4", 4, true, false}, {"pn4-jumps", 4, false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var params mquic.Params
			var sc *manifest.SignerConfig
			if tc.asym {
				params, sc = asymParams(t, mcasttest.Group())
			} else {
				params = testParams(t, mcasttest.Group())
			}
			params.PacketNumberLen = tc.pnLen
			cc := &captureConn{}
			snd, err := runSender(t, cc, mquic.SenderConfig{Params: params, Manifests: sc})
			if err != nil {
				t.Fatal(err)
			}
			sendStreams(t, snd, pat, 4, 1_200_000)
			if err := snd.Close(); err != nil {
				t.Fatal(err)
			}
			pkts := mangle(cc.Packets(), 1)
			if tc.jumps {
				pkts = withJumps(t, params, pkts, 2)
			}
			cfg := mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Workers: 4}
			want := receiveSequential(t, cfg, [][][]byte{pkts})
			if want.Packets < uint64(len(pkts))/2 || want.DecryptFailed == 0 || want.Duplicate == 0 {
				t.Fatalf("sequential: %+v", want)
			}
			for _, n := range []int{1, 7, 64, 700, len(pkts)} {
				got := receivePipelined(t, cfg, batched(pkts, n))
				if packetCounters(got) != packetCounters(want) {
					t.Errorf("reads of %d: %v, one at a time: %v", n, packetCounters(got), packetCounters(want))
				}
			}
			t.Logf("%d datagrams: %d accepted, %d duplicate, %d decryption failures, %d stale", len(pkts), want.Packets, want.Duplicate, want.DecryptFailed, want.Stale)
		})
	}
}

// Run's pipeline allocates nothing per packet: reading, opening on the
// workers, processing in order (asymmetric sessions included: digests,
// holding, verifying, releasing).
func TestRunPipelineAllocations(t *testing.T) {
	for _, asym := range []bool{false, true} {
		params, pkts := capturedStream(t, asym, 12_000_000)
		warm := batched(pkts[:2000], 256)
		rest := batched(pkts[2000:], 256)
		conn := newFeedConn(warm)
		r, stop := runPipelined(t, conn, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, ReadBatch: 256, Workers: 2})
		waitPipelined(r, 2000)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		conn.mu.Lock()
		conn.batches = rest
		conn.mu.Unlock()
		conn.SetReadDeadline(time.Time{})
		waitPipelined(r, len(pkts))
		runtime.ReadMemStats(&after)
		stop()
		// The polling above (Stats copies a map) and the feeding conn's
		// timers allocate a little; the pipeline itself nothing.
		n := len(pkts) - 2000
		per := float64(after.Mallocs-before.Mallocs) / float64(n)
		t.Logf("asymmetric %v: %d allocations over %d packets", asym, after.Mallocs-before.Mallocs, n)
		if per > 0.05 {
			t.Errorf("asymmetric %v: %.3f allocations per packet over %d packets", asym, per, n)
		}
	}
}

// BenchmarkRunPipeline measures Run's receive path (read, open on the
// workers, process in order) over prepared reads of 64 packets, against
// HandlePacket one packet at a time.
func BenchmarkRunPipeline(b *testing.B) {
	params := testParams(b, mcasttest.Group())
	cc := &captureConn{}
	snd, err := runSender(b, cc, mquic.SenderConfig{Params: params})
	if err != nil {
		b.Fatal(err)
	}
	sendStreams(b, snd, newPattern(), 1, 24_000_000)
	snd.Close()
	pkts := cc.Packets()
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers-%d", workers), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(pkts[0])))
			done := 0
			for done < b.N {
				n := min(len(pkts), b.N-done)
				receivePipelined(b, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Workers: workers}, batched(pkts[:n], 64))
				done += n
			}
		})
	}
	b.Run("HandlePacket", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pkts[0])))
		buf := make([]byte, 2048)
		done := 0
		for done < b.N {
			r, _ := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}})
			n := min(len(pkts), b.N-done)
			for _, p := range pkts[:n] {
				r.HandlePacket(buf[:copy(buf, p)], src)
			}
			done += n
		}
	})
}

// readTimes is a feedConn that records when each read returned datagrams.
type readTimes struct {
	*feedConn
	mu    sync.Mutex
	times []time.Time
}

func (c *readTimes) ReadBatch(msgs []mcast.Message) (int, error) {
	n, err := c.feedConn.ReadBatch(msgs)
	if n > 0 {
		c.mu.Lock()
		c.times = append(c.times, time.Now())
		c.mu.Unlock()
	}
	return n, err
}

// A read that takes under half a batch makes Run wait ReadGather before it
// reads again (a slow flow then costs a wake-up per several packets, not
// per packet); a read that fills the batch is followed at once, and with a
// negative ReadGather every read is. The test checks only lower bounds on
// the waits, which a loaded machine can only lengthen.
func TestReadGatherWaitsAfterSmallReads(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pkts := capturedSession(t, params, newPattern(), 12_000)
	if len(pkts) < 6 {
		t.Fatalf("%d packets", len(pkts))
	}
	const gather = 40 * time.Millisecond
	for _, tc := range []struct {
		name   string
		gather time.Duration
		batch  int // datagrams per prepared read
		waits  bool
	}{
		{"small reads", gather, 1, true},
		{"full reads", gather, 4, false},
		{"never", -1, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := &readTimes{feedConn: newFeedConn(batched(pkts, tc.batch))}
			r, stop := runPipelined(t, conn, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, ReadBatch: 4, ReadGather: tc.gather})
			waitPipelined(r, len(pkts))
			stop()
			if got := r.Stats().Packets; got != uint64(len(pkts)) {
				t.Fatalf("%d of %d packets accepted", got, len(pkts))
			}
			conn.mu.Lock()
			times := conn.times
			conn.mu.Unlock()
			if !tc.waits {
				t.Logf("%d reads", len(times))
				return
			}
			if len(times) != len(pkts) {
				t.Fatalf("%d reads with datagrams, want %d", len(times), len(pkts))
			}
			for i := 1; i < len(times); i++ {
				if d := times[i].Sub(times[i-1]); d < gather {
					t.Errorf("read %d came %v after a read of one datagram, want at least %v", i, d, gather)
				}
			}
		})
	}
}
