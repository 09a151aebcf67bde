package client

import (
	"slices"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/wellknown"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
)

// TestForgottenDeliveriesAreNotFetched: the client keeps far fewer
// deliveries (MaxDeliveries) than the catalogue lists; a delivery it no
// longer keeps must still count as received, so nothing that came by
// multicast is fetched again over unicast.
func TestForgottenDeliveriesAreNotFetched(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 40, MaxSize: 4 << 10, Seed: 21})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "forget")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.MaxDeliveries = 4
	cfg.CatalogIdlePoll = cfg.CatalogPoll // reads at a fixed rate, though the session is live in-band: each checks the catalogue again
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)
	// Let the catalogue list every push and the client check it against
	// what it received: two polls after the last entry was listed, and
	// LostGrace for entries the receiver would take as lost.
	unicasttest.WaitFor(t, 10*time.Second, "the catalogue read with every push", func() bool {
		tc.c.mu.Lock()
		defer tc.c.mu.Unlock()
		return len(tc.c.catalog) == len(h.Paths)
	})
	polls := tc.c.Stats().Polls
	unicasttest.WaitFor(t, 10*time.Second, "two more polls", func() bool { return tc.c.Stats().Polls >= polls+2 })
	time.Sleep(cfg.LostGrace)
	for _, d := range tc.checkExact(h, h.Paths) {
		if d.Via != ViaMulticast {
			t.Errorf("%s via %s", d.Path, d.Via)
		}
	}
	if st := tc.c.Stats(); st.Requests != 0 || st.Fallback != 0 || st.Duplicates != 0 {
		t.Errorf("deliveries the client no longer keeps were fetched again: %+v", st)
	}
}

// TestObsoleteVersionNotFetched: the catalogue lists two versions of a
// live manifest whose first push multicast lost; only the newest is
// fetched, the older counts as superseded and settled.
func TestObsoleteVersionNotFetched(t *testing.T) {
	c, err := New(Config{URL: "https://127.0.0.1:1/", Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.haveCat = true
	c.fallback = true // fetch at once what is not delivered
	c.catalog = []wellknown.CatalogEntry{
		{Path: "/manifest.mpd", ETag: `"v1"`, Session: "01", PushID: 3, Pushed: now},
		{Path: "/seg-1.m4s", ETag: `"s1"`, Session: "01", PushID: 4, Pushed: now},
		{Path: "/manifest.mpd", ETag: `"v2"`, Session: "01", PushID: 5, Pushed: now},
	}
	c.mu.Lock()
	jobs := c.catalogJobsLocked(now)
	c.mu.Unlock()
	var got []string
	for _, j := range jobs {
		got = append(got, j.path+" "+j.etag)
	}
	if want := []string{`/seg-1.m4s "s1"`, `/manifest.mpd "v2"`}; !slices.Equal(got, want) {
		t.Fatalf("jobs %q, want %q", got, want)
	}
	if _, ok := c.settled[entryKey(&c.catalog[0])]; !ok || c.stats.Superseded != 1 {
		t.Fatalf("the obsolete version is not settled: superseded %d", c.stats.Superseded)
	}
}

// TestReleasedHeldStaysBusy: a push released from the hold (its signed
// entry or a read came) keeps its path busy until it is handed on, so a
// catalogue pass in between — from another signed entry, or the monitor —
// does not take it for a resource multicast lost and fetch it whole. (In
// the scale bench, 32 receivers through a cache, one or two receivers a
// run fetched a file of up to 1.7 MB whole that they were repairing.)
func TestReleasedHeldStaysBusy(t *testing.T) {
	c, err := New(Config{URL: "https://127.0.0.1:1/", Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.haveCat = true
	c.fallback = true // fetch at once what is not received or under way
	c.catalog = []wellknown.CatalogEntry{{Path: "/a.bin", ETag: `"a"`, Session: "01", PushID: 3, Pushed: now}}
	c.indexCatalogLocked()
	c.held = []*outcome{{kind: outRepair, cs: &csession{id: "01"}, path: "/a.bin"}}
	c.busy["/a.bin"] = 1 // as hold counts it
	c.mu.Lock()
	released := c.takeHeldLocked(func(*outcome) bool { return true })
	jobs := c.catalogJobsLocked(now) // a pass before the release is handed on
	c.mu.Unlock()
	if len(released) != 1 || len(jobs) != 0 {
		t.Fatalf("released %d, jobs %d: the released push was taken for one not received", len(released), len(jobs))
	}
}
