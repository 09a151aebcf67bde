package client

import (
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
)

// TestFECLossRepair: 2 % random loss on the multicast path of a session with
// 5 % FEC. The receiver rebuilds what it lost before asking the origin:
// every resource ends byte-exact, and what it fetches over unicast (repair
// ranges and whole resources) is a small share of what was lost (without
// FEC, repairs fetch at least every byte lost: TestLossRepair).
func TestFECLossRepair(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 24, MinSize: 20 << 10, MaxSize: 300 << 10, Seed: 1, Loss: 0.02})
	ad := unicasttest.Ad(t, "fec")
	if err := origin.AddFEC(&ad, 0.05); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Pub.Start(ad); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)
	var content int64
	for _, p := range h.Paths {
		content += int64(len(h.Content[p]))
	}
	pkts, pktBytes := h.Dropped()
	st := tc.c.Stats()
	unicast := st.RepairBytes + st.FetchBytes
	t.Logf("deliveries %v; %d packets (%d bytes) dropped of %d content bytes; unicast: %d repair + %d fetched bytes (%.4f of content)",
		countVia(ds), pkts, pktBytes, content, st.RepairBytes, st.FetchBytes, float64(unicast)/float64(content))
	if pkts == 0 {
		t.Fatal("nothing was dropped")
	}
	if unicast >= int64(pktBytes)/2 {
		t.Errorf("fetched %d bytes over unicast for %d bytes of packets dropped: FEC rebuilt little", unicast, pktBytes)
	}
	if st.Failed != 0 || st.BadResponses != 0 {
		t.Errorf("stats: %+v", st)
	}
}
