package bench

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/mquic/fec"
)

// TestSimMatchesDecoder: the simulation's rule for a block (rebuilt when it
// lost no more packets than it has repair packets) is what the real
// decoder does with the same losses.
func TestSimMatchesDecoder(t *testing.T) {
	c := newSimContent(4<<20, 5, 0.05)
	p, _ := fec.NewParams(0.05, 0, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	payload := func(pn int) []byte { return []byte{byte(pn), byte(pn >> 8), 1, 2, 3} }
	for trial := range 60 {
		b := c.blocks[trial%len(c.blocks)]
		x := b.m - 2 + trial%5 // around the limit
		if x < 0 {
			x = 0
		}
		lost := lostPositions(nil, b, x, rng)
		isLost := map[int]bool{}
		for _, pos := range lost {
			isLost[pos] = true
		}
		e, _ := fec.NewEncoder(p, 0.05, 64)
		d, _ := fec.NewDecoder(fec.DecoderConfig{Params: p})
		first := uint64(b.first)
		now := time.Unix(0, 0)
		for i := range b.k {
			e.Add(first+uint64(i), payload(b.first+i), 0, true, now)
		}
		if m := e.Close(); m != b.m {
			t.Fatalf("block of %d: the encoder makes %d repair packets, the simulation %d", b.k, m, b.m)
		}
		for i := range b.k {
			if !isLost[i] {
				d.Source(first+uint64(i), payload(b.first+i))
			}
		}
		rebuilt := map[int]bool{}
		for j := range b.m {
			f := e.AppendNext(nil)
			if isLost[b.k+j] {
				continue
			}
			var r fec.Repair
			fec.ParseFrame(f, &r)
			d.Repair(&r, first+uint64(b.k+j), now)
			for {
				pn, pl, ok := d.Next()
				if !ok {
					break
				}
				if !bytes.Equal(pl, payload(int(pn))) {
					t.Fatal("rebuilt wrong")
				}
				rebuilt[int(pn)] = true
			}
		}
		simLost := lostSources(nil, b, x, rand.New(rand.NewPCG(uint64(trial), 0)))
		_ = simLost
		srcLost := 0
		for _, pos := range lost {
			if pos < b.k {
				srcLost++
			}
		}
		wantRebuilt := 0
		if x <= b.m {
			wantRebuilt = srcLost
		}
		if len(rebuilt) != wantRebuilt {
			t.Fatalf("block of %d+%d, %d lost (%d sources): decoder rebuilt %d, the simulation says %d", b.k, b.m, x, srcLost, len(rebuilt), wantRebuilt)
		}
	}
}

// TestSimulate: no loss costs nothing; without FEC, unicast repair costs
// each receiver about the loss rate (and more for whole fetches); FEC and
// multicast repair bring it down; correlated loss makes every receiver ask
// for the same.
func TestSimulate(t *testing.T) {
	o := SimOptions{Receivers: []int{2000}, Size: 8 << 20, Files: 16, Sample: 2000, Seed: 3,
		Loss: []SimLoss{{0, false}, {2, false}, {2, true}}, FEC: []float64{0, 0.05}}
	rows := Simulate(o)
	var out strings.Builder
	ReportSim(&out, o, rows)
	t.Log("\n" + out.String())
	get := func(loss SimLoss, f float64) SimRow {
		for _, r := range rows {
			if r.Loss == loss && r.FEC == f {
				return r
			}
		}
		t.Fatalf("no row %v %v", loss, f)
		return SimRow{}
	}
	if r := get(SimLoss{0, false}, 0.05); r.Unicast != 0 || r.MulticastRepair != 0 || r.MulticastRequests != 0 {
		t.Errorf("no loss, yet %+v", r)
	}
	noFEC := get(SimLoss{2, false}, 0)
	if noFEC.UnicastPerReceiver < 0.02 || noFEC.UnicastPerReceiver > 0.5 {
		t.Errorf("2 %% loss without FEC: %.4f per receiver", noFEC.UnicastPerReceiver)
	}
	withFEC := get(SimLoss{2, false}, 0.05)
	if withFEC.UnicastPerReceiver >= noFEC.UnicastPerReceiver/10 {
		t.Errorf("FEC: %.5f per receiver against %.5f without", withFEC.UnicastPerReceiver, noFEC.UnicastPerReceiver)
	}
	if math.Abs(withFEC.Proactive-0.05) > 0.02 {
		t.Errorf("proactive FEC %.3f of content at 5 %%", withFEC.Proactive)
	}
	if noFEC.Total() >= noFEC.UnicastTotal()/10 {
		t.Errorf("multicast repair %.3f, unicast %.3f for %d receivers", noFEC.Total(), noFEC.UnicastTotal(), noFEC.Receivers)
	}
	corr := get(SimLoss{2, true}, 0)
	if corr.Unicast < 0.02*2000 {
		t.Errorf("correlated loss: every receiver repairs the same, yet %.3f", corr.Unicast)
	}
}
