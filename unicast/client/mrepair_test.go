package client

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
)

// rangeCounter counts, per path and range, how many times the origin
// served a byte range over unicast.
type rangeCounter struct {
	mu sync.Mutex
	by map[string]int
}

func (rc *rangeCounter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok {
			rc.mu.Lock()
			if rc.by == nil {
				rc.by = map[string]int{}
			}
			for _, part := range strings.Split(v, ",") {
				rc.by[r.URL.Path+" "+strings.TrimSpace(part)]++
			}
			rc.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// totals returns the distinct ranges served and how many times in all.
func (rc *rangeCounter) totals() (distinct, served int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, n := range rc.by {
		distinct++
		served += n
	}
	return distinct, served
}

// TestMulticastRepair: eight receivers lose the same packets (the loss is
// at the sender, upstream of all of them). Each waits a random time before
// it asks to repair; the origin pushes a range once more on the session as
// soon as two receivers asked for it, and the receivers that had not asked
// yet take it from multicast and do not ask. Every resource ends intact,
// and the origin serves each lost range over unicast far fewer times than
// there are receivers.
func TestMulticastRepair(t *testing.T) {
	const receivers = 8
	var mr *origin.MulticastRepair
	rc := &rangeCounter{}
	h := origintest.New(t, origintest.Options{Files: 4, MinSize: 100 << 10, MaxSize: 200 << 10, Seed: 21,
		Wrap: func(_ *origin.FileServer, next http.Handler) http.Handler {
			mr = origin.NewMulticastRepair(origin.MulticastRepairConfig{Threshold: 2, Window: 10 * time.Second}, rc.wrap(next))
			return mr
		}})
	mr.SetPublisher(h.Pub)
	if _, err := h.Pub.Start(unicasttest.Ad(t, "mrepair")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	// A wide back-off: the repair a few receivers trigger reaches the
	// others while they wait.
	cfg.RepairDelay = 3 * time.Second
	// As h3m receive: every resource, a multicast repair included, must
	// carry a digest.
	cfg.RequireDigest, cfg.Verifier = true, &h3m.Verifier{RequireDigest: true}
	var tcs []*testClient
	for range receivers {
		tc := runClient(h, cfg)
		tc.waitJoined(1)
		tcs = append(tcs, tc)
	}
	h.SetDrop(dropBodyPackets(25))
	h.PushAll(h.Paths)
	h.Pub.Transport().Flush()
	h.SetDrop(nil)
	var lost, mcast, unicast int64
	var fills int
	for _, tc := range tcs {
		tc.waitPaths(30*time.Second, h.Paths)
		tc.checkExact(h, h.Paths)
		st := tc.c.Stats()
		lost += st.LostBytes
		mcast += st.MulticastRepairBytes
		unicast += st.RepairBytes + st.FetchBytes
		fills += st.MulticastRepairs
		if st.FetchBytes != 0 || st.Failed != 0 {
			t.Errorf("a receiver fetched %d bytes whole, %d failed", st.FetchBytes, st.Failed)
		}
	}
	distinct, served := rc.totals()
	ms := mr.Stats()
	t.Logf("%d receivers lost %d bytes in all: %d filled by %d multicast repairs (%d pushes, %d bytes, from %d range requests), %d repaired over unicast; the origin served %d distinct ranges %d times (%.2f per range per receiver)",
		receivers, lost, mcast, fills, ms.Pushes, ms.PushedBytes, ms.RangeRequests, unicast, distinct, served, float64(served)/float64(distinct*receivers))
	if distinct == 0 || ms.Pushes == 0 || mcast == 0 {
		t.Fatalf("no multicast repair happened: %d ranges, %d pushes, %d bytes filled", distinct, ms.Pushes, mcast)
	}
	if served*2 > distinct*receivers {
		t.Errorf("the origin served %d ranges %d times over unicast: want at most half of once per receiver (%d)", distinct, served, distinct*receivers/2)
	}
}
