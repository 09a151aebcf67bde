package client

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// TestLossRepair: 10 % random loss on the multicast path. Every resource
// ends byte-exact; incomplete ones are repaired with range requests whose
// bytes stay close to the bytes lost (the ratio is reported); those whose
// promise or headers were lost come whole by fallback.
func TestLossRepair(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 24, MinSize: 20 << 10, MaxSize: 300 << 10, Seed: 1, Loss: 0.10})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "loss")); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)

	via := countVia(ds)
	var lost, repaired, wire int64
	var ranges2K int64 // what merging gaps closer than 2 KiB would have fetched
	for _, d := range ds {
		if d.Via != ViaRepair {
			continue
		}
		if d.LostBytes <= 0 || d.RepairBytes < d.LostBytes {
			t.Errorf("%s: repaired %d bytes for %d lost", d.Path, d.RepairBytes, d.LostBytes)
		}
		lost += d.LostBytes
		repaired += d.RepairBytes
		wire += d.RepairWireBytes
		ranges2K += int64(mergedBytes(d.RepairRanges, 2048))
	}
	if via[ViaRepair] == 0 {
		t.Fatalf("no resource was repaired at 10%% loss: %v", via)
	}
	pkts, pktBytes := h.Dropped()
	ratio := float64(repaired) / float64(lost)
	t.Logf("deliveries %v; %d packets (%d bytes) dropped; repair: %d bytes lost, %d fetched (ratio %.3f), %d response body bytes (ratio %.3f)",
		via, pkts, pktBytes, lost, repaired, ratio, wire, float64(wire)/float64(lost))
	t.Logf("merging gaps below 2 KiB instead of %d bytes would have fetched %d bytes (ratio %.3f)", DefaultMergeGap, ranges2K, float64(ranges2K)/float64(lost))
	if ratio > 1.25 {
		t.Errorf("repair fetched %.2f times the bytes lost", ratio)
	}
	st := tc.c.Stats()
	if st.Failed != 0 || st.BadResponses != 0 {
		t.Errorf("stats: %+v", st)
	}
	if st.LostBytes != lost || st.RepairBytes != repaired {
		t.Errorf("stats lost/repaired %d/%d, deliveries say %d/%d", st.LostBytes, st.RepairBytes, lost, repaired)
	}
}

// mergedBytes is what fetching rs with gaps merged below gap would cost.
func mergedBytes(rs []ranges.Range, gap uint64) (n uint64) {
	for _, r := range mergeRanges(rs, gap) {
		n += r.Len()
	}
	return n
}

// TestFallbackWhenMulticastNeverArrives: nothing reaches the session's
// group, so the client falls back and every resource arrives by unicast;
// then multicast starts, the client leaves fallback and the next resources
// come by multicast.
func TestFallbackWhenMulticastNeverArrives(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 12, MaxSize: 100 << 10, Seed: 2})
	h.SetDrop(func([]byte) bool { return true }) // nobody sends to the group
	if _, err := h.Pub.Start(unicasttest.Ad(t, "silent")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.FallbackAfter = 400 * time.Millisecond
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	first, second := h.Paths[:6], h.Paths[6:]
	h.PushAll(first)
	tc.waitPaths(10*time.Second, first)
	for _, d := range tc.checkExact(h, first) {
		if d.Via != ViaFallback {
			t.Errorf("%s came via %s while multicast was silent", d.Path, d.Via)
		}
	}
	if !tc.c.InFallback() || tc.c.Stats().FallbackEntered == 0 {
		t.Fatalf("client not in fallback: %+v", tc.c.Stats())
	}

	h.SetDrop(nil) // multicast starts
	unicasttest.WaitFor(t, 5*time.Second, "the client to leave fallback", func() bool { return !tc.c.InFallback() })
	h.PushAll(second)
	tc.waitPaths(10*time.Second, second)
	for _, d := range tc.checkExact(h, second) {
		if d.Via != ViaMulticast {
			t.Errorf("%s came via %s after multicast returned", d.Path, d.Via)
		}
	}
	t.Logf("stats: %+v", tc.c.Stats())
}

// TestFallbackWhenJoinFails: the join itself fails (no such interface):
// everything comes by fallback, and the join keeps being retried.
func TestFallbackWhenJoinFails(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 4, MaxSize: 50 << 10, Seed: 3})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "nojoin")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.Interface = "h3m-no-such0"
	tc := runClient(h, cfg)
	unicasttest.WaitFor(t, 5*time.Second, "a failed join", func() bool { return tc.c.Stats().JoinErrors > 0 })
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)
	for _, d := range tc.checkExact(h, h.Paths) {
		if d.Via != ViaFallback {
			t.Errorf("%s came via %s without a join", d.Path, d.Via)
		}
	}
	unicasttest.WaitFor(t, 5*time.Second, "join retries", func() bool { return tc.c.Stats().JoinErrors >= 3 })
	if st := tc.c.Stats(); !st.FallbackActive || st.Joins != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestServerStoppedMidSession: the unicast server stops while the session
// runs with 5 % loss, closing its connections or, in a crash, without a
// word. Multicast delivery goes on; repairs fail, back off and retry, and
// finish once the server is back on the same address.
func TestServerStoppedMidSession(t *testing.T) {
	t.Run("closed", func(t *testing.T) { testServerStopped(t, false) })
	t.Run("crashed", func(t *testing.T) { testServerStopped(t, true) })
}

func testServerStopped(t *testing.T, crash bool) {
	// Small and large resources: at 5 % loss the small ones often arrive
	// whole, the large ones never.
	h := origintest.New(t, origintest.Options{Files: 16, MinSize: 1 << 10, MaxSize: 60 << 10, Seed: 4, Loss: 0.05})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "outage")); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	unicasttest.WaitFor(t, 5*time.Second, "a first description", func() bool { return tc.c.Stats().Joins > 0 })
	addr := h.Addr
	h.StopServer(crash)
	h.PushAll(h.Paths)

	// While the server is down, multicast keeps delivering and repairs fail.
	unicasttest.WaitFor(t, 10*time.Second, "multicast deliveries and failed repairs during the outage", func() bool {
		st := tc.c.Stats()
		return st.Multicast > 0 && st.RequestErrors >= 3
	})
	time.Sleep(1500 * time.Millisecond) // long enough for the back-off to grow
	during := tc.c.Stats()
	if during.Repaired+during.Fallback != 0 {
		t.Fatalf("unicast deliveries while the server was down: %+v", during)
	}
	h.StartServer(addr)
	tc.waitPaths(15*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)
	via := countVia(ds)
	retried, most := 0, 0
	for _, d := range ds {
		if d.Via != ViaMulticast && len(d.Problems) > 0 {
			retried++
			most = max(most, len(d.Problems))
		}
	}
	st := tc.c.Stats()
	t.Logf("during the outage: %d multicast deliveries, %d failed requests; at the end %v, %d resources needed retries (up to %d failed attempts); stats %+v",
		during.Multicast, during.RequestErrors, via, retried, most, st)
	if via[ViaRepair] == 0 || retried == 0 || most < 2 {
		t.Errorf("no repair retried across the outage: %v, %d retried", via, retried)
	}
	if st.Failed != 0 {
		t.Errorf("%d resources given up", st.Failed)
	}
}

// TestRollover: in the middle of a transfer (with 3 % loss) the publisher
// announces a successor session, switches to it and ends the old one. The
// client joins the successor, leaves the old session, and gets every
// resource exactly once.
func TestRollover(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 20, MaxSize: 80 << 10, Seed: 5, Loss: 0.03})
	idA, err := h.Pub.Start(unicasttest.Ad(t, "roll-a"))
	if err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)

	pushed := make(chan error, 1)
	go func() {
		for i, p := range h.Paths {
			if _, err := h.Pub.PushFile(context.Background(), p); err != nil {
				pushed <- err
				return
			}
			if i < len(h.Paths)-1 {
				time.Sleep(60 * time.Millisecond) // a paced transfer
			}
		}
		pushed <- nil
	}()
	time.Sleep(250 * time.Millisecond) // some resources go on A
	idB, err := h.Pub.Rollover(context.Background(), unicasttest.Ad(t, "roll-b"), 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-pushed; err != nil {
		t.Fatal(err)
	}
	tc.waitPaths(15*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)
	bySession := map[string]int{}
	for _, d := range ds {
		bySession[d.Session]++
	}
	if bySession[idA] == 0 || bySession[idB] == 0 {
		t.Errorf("deliveries per session %v: want some from %s and from %s", bySession, idA, idB)
	}
	unicasttest.WaitFor(t, 5*time.Second, "the client to leave the old session", func() bool { return tc.c.Stats().Leaves >= 1 })
	st := tc.c.Stats()
	if st.Joins < 2 || st.Failed != 0 {
		t.Errorf("stats: %+v", st)
	}
	old, _ := h.Sessions.Get(idA)
	if old.State != wellknown.StateEnded || old.Successor != idB {
		t.Errorf("old session: state %s successor %q", old.State, old.Successor)
	}
	t.Logf("deliveries per session %v, via %v; stats %+v", bySession, countVia(ds), st)
}

// TestDuplicateAcrossSessions: the same resource carried by two sessions
// (a sender that pushes on both during an overlap) is delivered once.
func TestDuplicateAcrossSessions(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 3, MaxSize: 30 << 10, Seed: 6})
	other, err := origin.NewPublisher(origin.PublisherConfig{
		Interface: "lo", TTL: 1, Files: h.Files, Authority: h.Addr,
		Sessions: h.Sessions, Catalog: h.Catalog, Logger: h.Log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close(context.Background()) })
	if _, err := h.Pub.Start(unicasttest.Ad(t, "dup-a")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Start(unicasttest.Ad(t, "dup-b")); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(2)
	for _, p := range h.Paths {
		for _, pub := range []*origin.Publisher{h.Pub, other} {
			if _, err := pub.PushFile(context.Background(), p); err != nil {
				t.Fatal(err)
			}
		}
	}
	tc.waitPaths(10*time.Second, h.Paths)
	unicasttest.WaitFor(t, 5*time.Second, "the second copies", func() bool { return tc.c.Stats().Duplicates >= len(h.Paths) })
	time.Sleep(200 * time.Millisecond)
	tc.checkExact(h, h.Paths)
	if st := tc.c.Stats(); st.Multicast != len(h.Paths) || st.Duplicates != len(h.Paths) {
		t.Errorf("stats: %+v", st)
	}
}

// TestLostPromise: a push that never reaches the client at all (its
// promise lost with everything else) is fetched whole once the catalogue
// has listed it for LostGrace; multicast is not declared lost for it.
func TestLostPromise(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 5, MaxSize: 30 << 10, Seed: 13})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "lost")); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths[:2])
	h.Pub.Transport().Flush()
	h.SetDrop(func([]byte) bool { return true })
	h.PushAll(h.Paths[2:3])
	h.Pub.Transport().Flush()
	h.SetDrop(nil)
	h.PushAll(h.Paths[3:])
	tc.waitPaths(10*time.Second, h.Paths)
	for _, d := range tc.checkExact(h, h.Paths) {
		want := ViaMulticast
		if d.Path == h.Paths[2] {
			want = ViaFallback
		}
		if d.Via != want {
			t.Errorf("%s via %s, want %s", d.Path, d.Via, want)
		}
	}
	if st := tc.c.Stats(); st.FallbackEntered != 0 {
		t.Errorf("fallback entered for one lost push: %+v", st)
	}
}

// TestCatchUp: what the catalogue listed before the client started is not
// expected of it, unless CatchUp is set.
func TestCatchUp(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 4, MaxSize: 20 << 10, Seed: 14})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "catch")); err != nil {
		t.Fatal(err)
	}
	h.PushAll(h.Paths[:2])    // before any client
	h.Pub.Transport().Flush() // sent, not just queued for the sender's writer
	plain := runClient(h, clientConfig(h))
	cfg := clientConfig(h)
	cfg.CatchUp = true
	catchUp := runClient(h, cfg)
	plain.waitJoined(1)
	catchUp.waitJoined(1)
	h.PushAll(h.Paths[2:])
	catchUp.waitPaths(10*time.Second, h.Paths)
	for _, d := range catchUp.checkExact(h, h.Paths[:2]) {
		if d.Via != ViaFallback {
			t.Errorf("catch-up of %s via %s", d.Path, d.Via)
		}
	}
	plain.waitPaths(10*time.Second, h.Paths[2:])
	time.Sleep(cfg.LostGrace + 500*time.Millisecond)
	for _, p := range h.Paths[:2] {
		if ds := plain.deliveries(p); len(ds) != 0 {
			t.Errorf("%s, pushed before the client started, fetched via %s", p, ds[0].Via)
		}
	}
}

// TestExitOnEnd: with ExitOnEnd, Run returns once the session has ended
// and every resource is settled.
func TestExitOnEnd(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 6, MaxSize: 60 << 10, Seed: 15, Loss: 0.03})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "exit")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.endAndExit(t, h)
	tc.checkExact(h, h.Paths)
	if got := len(tc.c.Resources()); got != len(h.Paths) {
		t.Errorf("Resources: %d, want %d", got, len(h.Paths))
	}
}

// TestAltSvcOnly: a server without the well-known document; the client
// learns the session from the Alt-Svc field alone and receives. (Without a
// catalogue nothing names a push whose promise was lost, so this runs
// without loss; repair and fetch work the same in both modes.)
func TestAltSvcOnly(t *testing.T) {
	noDoc := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == wellknown.Path {
				r.URL.Path = "/no-such-file" // still answered by the Server: Alt-Svc and a 404
			}
			next.ServeHTTP(w, r)
		})
	}
	h := origintest.New(t, origintest.Options{Files: 6, MaxSize: 60 << 10, Seed: 18, Front: noDoc})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "altsvc")); err != nil {
		t.Fatal(err)
	}
	d, err := Discover(context.Background(), h.HTTPClient(), h.URL())
	if err != nil || !d.FromAltSvc || len(d.Sessions) != 1 {
		t.Fatalf("discover: %+v, %v", d, err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)
	for _, d := range tc.checkExact(h, h.Paths) {
		if d.Via != ViaMulticast {
			t.Errorf("%s via %s", d.Path, d.Via)
		}
	}
}

// readCountingStorage keeps bodies in memory and counts the bytes read
// back from each.
type readCountingStorage struct{ h3m.MemoryStorage }

type readCountingBody struct {
	h3m.Body
	read atomic.Int64
}

func (s readCountingStorage) NewBody(res *h3m.Resource, size int64) (h3m.Body, error) {
	b, err := s.MemoryStorage.NewBody(res, size)
	if err != nil {
		return nil, err
	}
	return &readCountingBody{Body: b}, nil
}

func (b *readCountingBody) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.Body.ReadAt(p, off)
	b.read.Add(int64(n))
	return n, err
}

// TestRepairHashesOnce: a repaired resource is read back for its digests
// once, from its first loss, not once more for the origin's Repr-Digest,
// which is the pushed Content-Digest that pass has just checked.
func TestRepairHashesOnce(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 12, MinSize: 100 << 10, MaxSize: 300 << 10, Seed: 3, Loss: 0.10})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "hash-once")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.Storage = readCountingStorage{}
	var mu sync.Mutex
	readBack := map[string][2]int64{} // path: bytes read back on delivery, size
	cfg.OnResource = func(d Delivery) {
		if b, ok := d.Body.(*readCountingBody); ok && d.Via == ViaRepair {
			mu.Lock()
			readBack[d.Path] = [2]int64{b.read.Load(), d.Size}
			mu.Unlock()
		}
	}
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	tc.checkExact(h, h.Paths)
	mu.Lock()
	defer mu.Unlock()
	if len(readBack) == 0 {
		t.Fatal("nothing was repaired at 10 % loss")
	}
	for p, rs := range readBack {
		if rs[0] > rs[1] {
			t.Errorf("%s: %d bytes read back to verify a repaired body of %d", p, rs[0], rs[1])
		}
	}
}

// TestLateJoinMissesNothing: a client that joins a session after its first
// push (here a rollover's successor, found by the read the old session's
// in-band end set off, with no pause for the join) still gets that push,
// which no multicast packet brought: the read that found the session
// listed no entries, and nothing may count as accounted for until a read
// of the entries has. It once ended with the file missing and no error.
func TestLateJoinMissesNothing(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 4, MaxSize: 20 << 10, Seed: 11, Publisher: func(pc *origin.PublisherConfig) {
		pc.RolloverJoin = time.Nanosecond // the successor pushes at once: the client joins it late
	}})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "late-a")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	cfg.CatalogIdlePoll = time.Minute // reads back off: the successor is found by the end's read
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	if _, err := h.Pub.PushFile(context.Background(), h.Paths[0]); err != nil {
		t.Fatal(err)
	}
	tc.waitPaths(10*time.Second, h.Paths[:1])
	if _, err := h.Pub.Rollover(context.Background(), unicasttest.Ad(t, "late-b"), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, p := range h.Paths[1:] {
		if _, err := h.Pub.PushFile(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	tc.endAndExit(t, h)
	for _, p := range h.Paths {
		if len(tc.deliveries(p)) == 0 {
			t.Errorf("%s was never delivered: the client ended without it (stats %+v)", p, tc.c.Stats())
		}
	}
	tc.checkExact(h, h.Paths)
}
