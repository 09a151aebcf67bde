package client

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
)

// TestOrphanNotExpectedDropped: a channel's session is joined on demand
// (ChannelIdle), and the first push after the join loses its promise and
// its stream's first packet (push ID and header section, with the copies
// the sender repeats them in). Its body is kept as an orphan; the
// catalogue then names it, but as a push from before the first the
// receiver saw since joining, which the client does not expect (a player
// that wants it gets it over unicast through the gateway). The orphan's
// body is let go then, not kept until more orphans push it out: up to 256
// bodies a session, each holding its receiver, which stayed reachable
// after a circuit-breaker trip (internal/soak's TestSoakFECBreaker, where
// the orphans were of resources the breaker's fallback had delivered).
func TestOrphanNotExpectedDropped(t *testing.T) {
	var pc origin.PublisherConfig // the harness's, whose sockets lose what SetDrop says
	h := origintest.New(t, origintest.Options{Files: 1, Publisher: func(c *origin.PublisherConfig) { pc = *c }})
	os.Mkdir(filepath.Join(h.Dir, "a"), 0o755)
	for _, p := range []string{"a/1.bin", "a/2.bin"} { // large enough for a body to outlive its head
		b := make([]byte, 256<<10)
		rand.Read(b)
		if err := os.WriteFile(filepath.Join(h.Dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Pub.Start(unicasttest.Ad(t, "main")); err != nil {
		t.Fatal(err)
	}
	pc.Channel = "/a/"
	ch, err := origin.NewPublisher(pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close(context.Background()) })
	if _, err := ch.Start(unicasttest.Ad(t, "chan-a")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ChannelIdle = time.Hour
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	unicasttest.WaitFor(t, 5*time.Second, "two sessions known", func() bool { return len(tc.c.Sessions()) == 2 })
	tc.c.Use("/a/1.bin")
	tc.waitJoined(2)

	var n atomic.Int64
	h.SetDrop(func(p []byte) bool { return n.Add(1) <= 3 && len(p) < 1000 })
	if _, err := ch.PushFile(context.Background(), "/a/1.bin"); err != nil {
		t.Fatal(err)
	}
	ch.Transport().Flush()
	h.SetDrop(nil)
	unicasttest.WaitFor(t, 10*time.Second, "the first push's orphan", func() bool { return tc.c.Stats().Orphans == 1 })
	if _, err := ch.PushFile(context.Background(), "/a/2.bin"); err != nil {
		t.Fatal(err)
	}
	tc.waitPaths(10*time.Second, []string{"/a/2.bin"})
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
		t.Errorf("%d orphan bodies kept after the catalogue named them as not expected", n)
	}
	st := tc.c.Stats()
	if st.OrphansMatched != 0 || len(tc.deliveries("/a/1.bin")) != 0 {
		t.Errorf("the orphan of a push from before the join was repaired or delivered: %d matched, %d deliveries", st.OrphansMatched, len(tc.deliveries("/a/1.bin")))
	}
}
