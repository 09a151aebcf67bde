package client

import (
	"testing"
	"time"

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
