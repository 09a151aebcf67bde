package client

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
)

// TestOrphanRepair: a large push loses the packets a push cannot live
// without — its promise and its push stream's first packet (push ID and
// HEADERS), with the copies the sender repeats them in — and some body
// packets. The receiver keeps the body
// bytes that arrived, the catalogue identifies the stream (by push ID, or
// by stream ID when the push ID was lost), and only the missing ranges are
// repaired: nothing is fetched whole, and what is repaired is what was
// lost.
func TestOrphanRepair(t *testing.T) {
	small := func(p []byte) bool { return len(p) < 1000 }
	for _, tt := range []struct {
		name string
		// drop says whether the n-th packet (from 1) of the push is lost.
		drop func(n int64, p []byte) bool
	}{
		// The promise and the push stream's first packet travel together
		// (both are small and written back to back), and so do their
		// copies (the sender repeats both, spec http.md): all are lost.
		{"promise-and-headers", func(n int64, p []byte) bool { return n <= 3 && small(p) }},
		// Every small packet: the first, and the last DATA frame, whose
		// loss also takes the stream's end.
		{"head-and-tail", func(n int64, p []byte) bool { return small(p) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := origintest.New(t, origintest.Options{Files: 1, MinSize: 1 << 20, MaxSize: 1 << 20, Seed: 3})
			if _, err := h.Pub.Start(unicasttest.Ad(t, "orph-"+tt.name[:4])); err != nil {
				t.Fatal(err)
			}
			tc := runClient(h, clientConfig(h))
			tc.waitJoined(1)
			var n atomic.Int64
			var bodyLost atomic.Int64
			h.SetDrop(func(p []byte) bool {
				k := n.Add(1)
				lose := tt.drop(k, p) || (k%37 == 0 && !small(p))
				if lose && !small(p) {
					bodyLost.Add(1)
				}
				return lose
			})
			h.PushAll(h.Paths)
			h.Pub.Transport().Flush()
			h.SetDrop(nil)
			tc.waitPaths(15*time.Second, h.Paths)
			ds := tc.checkExact(h, h.Paths)
			st := tc.c.Stats()
			d := ds[0]
			t.Logf("delivery via %s: lost %d bytes, repaired %d in %d requests, fetched %d; %d body packets dropped; stats: orphans %d matched %d fetched %d",
				d.Via, d.LostBytes, d.RepairBytes, d.Requests, d.FetchBytes, bodyLost.Load(), st.Orphans, st.OrphansMatched, st.OrphansFetched)
			if st.Orphans != 1 || st.OrphansMatched != 1 || st.OrphansFetched != 0 {
				t.Errorf("orphans %d, matched %d, fetched whole %d; want 1, 1, 0", st.Orphans, st.OrphansMatched, st.OrphansFetched)
			}
			if d.Via != ViaRepair || d.FetchBytes != 0 || st.FetchBytes != 0 {
				t.Errorf("delivered via %s with %d bytes fetched whole (client: %d); want a repair and none", d.Via, d.FetchBytes, st.FetchBytes)
			}
			if d.RepairBytes != d.LostBytes || d.LostBytes == 0 {
				t.Errorf("repaired %d bytes of %d lost: want exactly what was lost", d.RepairBytes, d.LostBytes)
			}
			if max := (bodyLost.Load() + 1) * 1500; d.LostBytes > max {
				t.Errorf("%d bytes counted lost for %d body packets dropped", d.LostBytes, bodyLost.Load())
			}
		})
	}
}
