package client

import (
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
)

// feed drives b with a receiver that accepts rateBps of payload in
// 1200-byte packets and loses lossPct of the packets, checked every step
// from start for d; it returns when the breaker tripped (zero: never) and
// why.
type feed struct {
	b                    *breaker
	now                  time.Time
	bytes, packets, lost float64
}

func (f *feed) run(d, step time.Duration, rateBps float64, lossPct float64) (time.Duration, string) {
	start := f.now
	for f.now.Sub(start) < d {
		f.now = f.now.Add(step)
		got := rateBps / 8 * step.Seconds() / 1200 // packets accepted this step
		f.packets += got
		f.bytes += got * 1200
		if lossPct > 0 {
			f.lost += got * lossPct / (100 - lossPct)
		}
		if trip, why := f.b.observe(f.now, uint64(f.bytes), uint64(f.packets), uint64(f.lost)); trip {
			return f.now.Sub(start), why
		}
	}
	return 0, ""
}

func testBreakerConfig() BreakerConfig {
	return BreakerConfig{Window: time.Second, Sustain: 3 * time.Second, Backoff: 10 * time.Second, MaxBackoff: 40 * time.Second}.withDefaults()
}

func TestBreakerLoss(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 250 * time.Millisecond
	// A 20 Mbit/s link under a 50 Mbit/s session: 60 % lost.
	f := &feed{b: newBreaker(testBreakerConfig(), 50e6), now: t0}
	after, why := f.run(20*time.Second, step, 20e6, 60)
	// One window of history, then Sustain of bad windows.
	if after < 4*time.Second || after > 4*time.Second+2*step {
		t.Errorf("tripped after %v (%s), want about 4 s (1 s window + 3 s sustained)", after, why)
	}
	if !strings.Contains(why, "lost 60 %") {
		t.Errorf("why = %q, want the loss named", why)
	}
	// Loss under the threshold never trips, nor does a clean session.
	for _, loss := range []float64{0, 10, 25} {
		f := &feed{b: newBreaker(testBreakerConfig(), 50e6), now: t0}
		if after, why := f.run(30*time.Second, step, 40e6, loss); after != 0 {
			t.Errorf("%v %% loss tripped after %v: %s", loss, after, why)
		}
	}
	// Loss above the threshold that does not last: bad for 2 s, good for
	// 2 s, repeatedly, never trips.
	f = &feed{b: newBreaker(testBreakerConfig(), 50e6), now: t0}
	for i := 0; i < 5; i++ {
		if after, why := f.run(2*time.Second, step, 20e6, 60); after != 0 {
			t.Fatalf("round %d: 2 s of loss tripped: %s", i, why)
		}
		if after, why := f.run(2*time.Second, step, 40e6, 0); after != 0 {
			t.Fatalf("round %d: clean seconds tripped: %s", i, why)
		}
	}
	// A nearly idle session (a keep-alive a second) says nothing about
	// loss, even with every other one lost.
	f = &feed{b: newBreaker(testBreakerConfig(), 50e6), now: t0}
	if after, why := f.run(30*time.Second, step, 1200*8, 50); after != 0 {
		t.Errorf("an idle session tripped after %v: %s", after, why)
	}
}

func TestBreakerRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	step := 250 * time.Millisecond
	// 70 Mbit/s arriving for a session that advertises 50: over by 40 %.
	f := &feed{b: newBreaker(testBreakerConfig(), 50e6), now: t0}
	after, why := f.run(20*time.Second, step, 70e6, 0)
	if after == 0 || !strings.Contains(why, "peak flow rate") {
		t.Errorf("70 Mbit/s under a 50 Mbit/s peak: tripped after %v (%q), want a trip for the rate", after, why)
	}
	// At the peak, and 20 % over it (inside the 25 % margin): no trip.
	for _, r := range []float64{50e6, 60e6} {
		f := &feed{b: newBreaker(testBreakerConfig(), 50e6), now: t0}
		if after, why := f.run(30*time.Second, step, r, 0); after != 0 {
			t.Errorf("%.0f Mbit/s tripped after %v: %s", r/1e6, after, why)
		}
	}
	// A session that advertises no peak rate is never over it.
	f = &feed{b: newBreaker(testBreakerConfig(), 0), now: t0}
	if after, why := f.run(30*time.Second, step, 500e6, 0); after != 0 {
		t.Errorf("no peak rate: tripped after %v: %s", after, why)
	}
	// A late burst (a receiver catching up 300 ms of backlog once) does not
	// trip: it lasts less than Sustain.
	f = &feed{b: newBreaker(testBreakerConfig(), 50e6), now: t0}
	f.run(5*time.Second, step, 50e6, 0)
	f.bytes += 50e6 / 8 * 0.3
	if after, why := f.run(20*time.Second, step, 50e6, 0); after != 0 {
		t.Errorf("a catch-up burst tripped after %v: %s", after, why)
	}
}

func TestBreakerBackoff(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := newBreaker(testBreakerConfig(), 50e6)
	for i, want := range []time.Duration{10, 20, 40, 40} {
		now := t0.Add(time.Duration(i) * 30 * time.Second)
		if got := b.tripped(now); got != want*time.Second {
			t.Errorf("trip %d: back-off %v, want %v", i+1, got, want*time.Second)
		}
	}
	// After a quiet time longer than MaxBackoff it starts again.
	if got := b.tripped(t0.Add(10 * time.Minute)); got != 10*time.Second {
		t.Errorf("after a quiet time: back-off %v, want 10 s", got)
	}
	if b.trips != 5 {
		t.Errorf("trips = %d, want 5", b.trips)
	}
	// A trip forgets the measurements: the next receiver starts afresh.
	f := &feed{b: b, now: t0.Add(11 * time.Minute)}
	if after, _ := f.run(20*time.Second, 250*time.Millisecond, 20e6, 60); after < 4*time.Second {
		t.Errorf("after a trip, tripped again after %v: want a new window and Sustain", after)
	}
}

func TestBreakerDisabled(t *testing.T) {
	cfg := testBreakerConfig()
	cfg.Disabled = true
	f := &feed{b: newBreaker(cfg, 50e6), now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if after, why := f.run(30*time.Second, 250*time.Millisecond, 20e6, 60); after != 0 {
		t.Errorf("disabled breaker tripped: %s", why)
	}
	if err := (BreakerConfig{LossThreshold: 1}).check(); err == nil {
		t.Error("loss threshold 1 accepted")
	}
}

// TestBreakerLeavesAndRejoins runs a client on loopback against a session
// that loses 60 % of its packets (on the sender's socket) for seconds: its
// breaker trips, the client leaves the session, gets every resource
// byte-exact over unicast, and joins the session again after the back-off.
func TestBreakerLeavesAndRejoins(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 30, MinSize: 100 << 10, MaxSize: 300 << 10, Seed: 21, Loss: 0.6})
	ad := unicasttest.Ad(t, "breaker")
	// 20 Mbit/s: the pushes last about 2.5 s, several breaker windows.
	ad.Session.PeakFlowRate = 20_000_000
	if _, err := h.Pub.Start(ad); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.Breaker = BreakerConfig{Window: 250 * time.Millisecond, Sustain: 500 * time.Millisecond,
		Backoff: 700 * time.Millisecond, MaxBackoff: 2 * time.Second}
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	go h.PushAll(h.Paths)
	unicasttest.WaitFor(t, 15*time.Second, "a breaker trip", func() bool { return tc.c.Stats().BreakerTrips >= 1 })
	tc.waitPaths(30*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)
	// Joined again after the back-off; the session, now idle but for its
	// pings, keeps too few packets per window to measure loss.
	unicasttest.WaitFor(t, 10*time.Second, "a second join", func() bool {
		st := tc.c.Stats()
		return st.Joins >= 2 && st.BreakerOpen == 0
	})
	st := tc.c.Stats()
	via := countVia(ds)
	t.Logf("deliveries %v; breaker trips %d, joins %d, fallback entered %d", via, st.BreakerTrips, st.Joins, st.FallbackEntered)
	if st.FallbackEntered == 0 {
		t.Errorf("the breaker tripped but the client never entered fallback: %+v", st)
	}
	if via[ViaFallback]+via[ViaRepair] == 0 {
		t.Errorf("nothing came over unicast: %v", via)
	}
	if st.Failed != 0 {
		t.Errorf("%d resources failed", st.Failed)
	}
}
