package client

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
)

// TestOrphanOfSettledEntryDropped: a representation already delivered is
// pushed again (a live origin pushes a file anew), and the second push
// loses its promise and header section. Its body is kept as an orphan;
// the catalogue names it, but as a representation already delivered,
// nothing is repaired — and the orphan's body is let go then, not kept
// until more orphans push it out (up to 256 bodies a session: a breaker
// trip in a burst of loss left a whole stopped receiver reachable through
// them; internal/soak's TestSoakFECBreaker).
func TestOrphanOfSettledEntryDropped(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1, MinSize: 256 << 10, MaxSize: 256 << 10, Seed: 5})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "orph-settled")); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)

	// Again, losing the promise, the push stream's first packet and their
	// repeated copies (the small packets at its start).
	var n atomic.Int64
	h.SetDrop(func(p []byte) bool { return n.Add(1) <= 3 && len(p) < 1000 })
	h.PushAll(h.Paths)
	h.Pub.Transport().Flush()
	h.SetDrop(nil)
	unicasttest.WaitFor(t, 10*time.Second, "the second push's orphan", func() bool { return tc.c.Stats().Orphans == 1 })
	orphans := func() int {
		n := 0
		for _, cs := range tc.c.sessionList() {
			cs.mu.Lock()
			n += len(cs.orphans)
			cs.mu.Unlock()
		}
		return n
	}
	// The client reads the catalogue while an orphan waits: it is let
	// go, or three reads list its entry and it is still kept.
	polls := tc.c.Stats().Polls
	unicasttest.WaitFor(t, 10*time.Second, "the orphan let go or three catalogue reads", func() bool {
		return orphans() == 0 || tc.c.Stats().Polls >= polls+3
	})
	if n := orphans(); n != 0 {
		t.Errorf("%d orphan bodies kept after the catalogue named them as delivered", n)
	}
	st := tc.c.Stats()
	if st.OrphansMatched != 0 || st.Requests != 0 || len(tc.deliveries(h.Paths[0])) != 1 {
		t.Errorf("the orphan of a delivered representation was repaired or delivered again: %d matched, %d requests, %d deliveries",
			st.OrphansMatched, st.Requests, len(tc.deliveries(h.Paths[0])))
	}
}
