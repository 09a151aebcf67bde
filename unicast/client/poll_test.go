package client

import (
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
)

// TestCataloguePollingIdle: two clients of one session, one reading the
// description at a fixed rate, the other letting the interval grow while
// multicast brings everything (CatalogIdlePoll). Over a quiet stretch the
// second reads the description a few times where the first reads it at
// every CatalogPoll; the reads of an unchanged description are answered
// 304; and both still get every resource pushed before and after.
func TestCataloguePollingIdle(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 8, MaxSize: 30 << 10, Seed: 11})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "idle-poll")); err != nil {
		t.Fatal(err)
	}
	fixedCfg := clientConfig(h)
	fixedCfg.CatalogPoll, fixedCfg.CatalogIdlePoll = 50*time.Millisecond, 50*time.Millisecond
	idleCfg := clientConfig(h)
	idleCfg.CatalogPoll, idleCfg.CatalogIdlePoll = 50*time.Millisecond, 800*time.Millisecond
	fixed, idle := runClient(h, fixedCfg), runClient(h, idleCfg)
	fixed.waitJoined(1)
	idle.waitJoined(1)
	first, rest := h.Paths[:4], h.Paths[4:]
	h.PushAll(first)
	fixed.waitPaths(10*time.Second, first)
	idle.waitPaths(10*time.Second, first)

	f0, i0 := fixed.c.Stats(), idle.c.Stats()
	time.Sleep(3 * time.Second) // a quiet stretch: nothing pushed
	f1, i1 := fixed.c.Stats(), idle.c.Stats()
	fixedReads, idleReads := f1.Polls-f0.Polls, i1.Polls-i0.Polls
	t.Logf("quiet stretch: fixed-rate client read the description %d times (%d answered 304), the idle one %d times (%d answered 304)",
		fixedReads, f1.DescriptionNotModified-f0.DescriptionNotModified, idleReads, i1.DescriptionNotModified-i0.DescriptionNotModified)
	if fixedReads < 4 {
		t.Fatalf("the fixed-rate client read the description only %d times", fixedReads)
	}
	if idleReads*3 > fixedReads {
		t.Errorf("the idle client read the description %d times, the fixed-rate one %d: want at most a third", idleReads, fixedReads)
	}
	// Every read of the quiet stretch finds the description the client
	// has, but the first two: the last entries listed, then the first read
	// asking for what was pushed after them.
	if nm := f1.DescriptionNotModified - f0.DescriptionNotModified; nm < fixedReads-2 {
		t.Errorf("%d of %d reads of an unchanged description answered 304", nm, fixedReads)
	}

	h.PushAll(rest)
	fixed.waitPaths(10*time.Second, rest)
	idle.waitPaths(10*time.Second, rest)
	fixed.checkExact(h, h.Paths)
	idle.checkExact(h, h.Paths)
}
