package client

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
)

// TestAutoFEC: a session that advertises FEC (up to 25 %) with the
// adaptive policy (origin.AutoFEC), four receivers. Without loss no repair
// packet is ever sent. With 10 % loss on the multicast path the sender
// starts with none, the receivers repair over unicast, and once their
// requests show the loss the policy turns repair packets on: none was sent
// before the first repair request, some are after. Every file arrives
// intact either way.
func TestAutoFEC(t *testing.T) {
	for _, loss := range []float64{0, 0.1} {
		t.Run(fmt.Sprintf("loss%v", loss), func(t *testing.T) {
			var (
				auto *origin.AutoFEC
				h    *origintest.Harness
				mu   sync.Mutex
				// repairs the sender had sent when the first range
				// request came (-1: none came)
				atFirstAsk int64 = -1
			)
			h = origintest.New(t, origintest.Options{Files: 80, MinSize: 100 << 10, MaxSize: 300 << 10, Seed: 5, Loss: loss,
				Wrap: func(_ *origin.FileServer, next http.Handler) http.Handler {
					auto = origin.NewAutoFEC(origin.AutoFECConfig{
						Window: 400 * time.Millisecond, Lag: 100 * time.Millisecond, Hold: time.Hour, MinPushed: 256 << 10, Logger: unicasttest.Logger(t),
					}, next)
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if r.Header.Get("Range") != "" {
							mu.Lock()
							if atFirstAsk < 0 {
								atFirstAsk = int64(h.Pub.Transport().Stats().FEC.RepairPackets)
							}
							mu.Unlock()
						}
						auto.ServeHTTP(w, r)
					})
				}})
			auto.SetPublisher(h.Pub)
			ad := unicasttest.Ad(t, "autofec")
			ad.Session.PeakFlowRate = 40_000_000 // a batch of files takes a good part of the window
			if err := origin.AddFEC(&ad, origin.DefaultAutoFECMaxOverhead); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Pub.Start(ad); err != nil {
				t.Fatal(err)
			}
			auto.Start()
			t.Cleanup(auto.Stop)
			var clients []*testClient
			for range 4 {
				tc := runClient(h, clientConfig(h))
				tc.waitJoined(1)
				clients = append(clients, tc)
			}
			// Batches of files, each delivered to every receiver before
			// the next, until the policy has had two batches at its
			// overhead (with loss), or all of them.
			const batch = 5
			onAfter := -1
			for i := 0; i < len(h.Paths); i += batch {
				paths := h.Paths[i:min(i+batch, len(h.Paths))]
				h.PushAll(paths)
				for _, tc := range clients {
					tc.waitPaths(30*time.Second, paths)
				}
				if onAfter < 0 && auto.Stats().On > 0 {
					onAfter = i + batch
				}
				if onAfter >= 0 && i >= onAfter+batch {
					h.Paths = h.Paths[:i+len(paths)]
					break
				}
			}
			for _, tc := range clients {
				tc.checkExact(h, h.Paths)
			}
			snd := h.Pub.Transport().Stats()
			as := auto.Stats()
			pkts, _ := h.Dropped()
			mu.Lock()
			first := atFirstAsk
			mu.Unlock()
			t.Logf("%d files; %d packets dropped; policy %+v; sender %d packets, FEC %+v; repair packets when the first range request came: %d",
				len(h.Paths), pkts, as, snd.Packets, snd.FEC, first)
			if loss == 0 {
				if snd.FEC.RepairPackets != 0 || as.Changes != 0 || snd.FEC.Blocks != 0 {
					t.Errorf("lossless: %d repair packets, %d changes", snd.FEC.RepairPackets, as.Changes)
				}
				return
			}
			switch {
			case first != 0:
				t.Errorf("%d repair packets sent before the first repair request", first)
			case as.On == 0 || as.Overhead <= 0:
				t.Errorf("10 %% loss at 4 receivers: FEC never turned on (%+v)", as)
			case snd.FEC.RepairPackets == 0 || snd.FEC.Overhead != as.Overhead:
				t.Errorf("the policy set %v, the sender sent %d repair packets at %v", as.Overhead, snd.FEC.RepairPackets, snd.FEC.Overhead)
			case as.Loss < 0.05 || as.Loss > 0.5:
				// The estimate is bytes asked in a window over bytes pushed
				// a Lag earlier: on a loaded machine requests come later and
				// bunch, and receivers that fall behind lose more than the
				// harness drops (0.245 seen beside two CPU burners). The
				// policy's arithmetic on given samples is tested in
				// fecpolicy_internal_test.go; here the estimate must show
				// the loss, and not count it over and over.
				t.Errorf("loss estimate %v at 10 %% loss", as.Loss)
			}
		})
	}
}
