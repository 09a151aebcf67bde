package origin

import (
	"math"
	"strings"
	"testing"
	"time"
)

// testPolicy is the policy of a session advertising K = 200, M = 50 (25 %),
// with the defaults of AutoFECConfig.
func testPolicy() *fecPolicy {
	return &fecPolicy{k: 200, maxM: 50, framing: fecFraming, target: fecTarget, hysteresis: fecHysteresis,
		settle: 2 * time.Second, hold: 6 * time.Second}
}

// window is a sample of 10 MB pushed in which each receiver asked for
// loss[i] of it.
func window(loss ...float64) fecSample {
	s := fecSample{pushed: 10_000_000}
	for _, l := range loss {
		s.asked = append(s.asked, int64(l*float64(s.pushed)))
	}
	return s
}

func TestFECPolicyBinomial(t *testing.T) {
	// P(X > 0) for Binomial(10, 0.1) = 1 − 0.9^10.
	if got, want := binomialTail(10, 0.1, 0), 1-math.Pow(0.9, 10); math.Abs(got-want) > 1e-12 {
		t.Errorf("binomialTail(10, 0.1, 0) = %v, want %v", got, want)
	}
	// At 10 % loss a block of 200 loses 20 on average (σ ≈ 4.2): covering
	// it but with probability 1 % takes about 20 + 2.33 σ of the k + m.
	if m := repairsFor(0.1, 200, 50, 0.01); m < 30 || m > 40 {
		t.Errorf("repairsFor(10 %%) = %d, want 30..40", m)
	}
	if m := repairsFor(0.02, 200, 50, 0.01); m < 7 || m > 12 {
		t.Errorf("repairsFor(2 %%) = %d, want 7..12", m)
	}
	if m := repairsFor(0.5, 200, 50, 0.01); m != 50 {
		t.Errorf("repairsFor(50 %%) = %d, want the maximum 50", m)
	}
	for _, loss := range []float64{0.03, 0.1, 0.2} {
		r := residualLoss(loss, 200, 20)
		if got := invertResidual(r, 200, 20); math.Abs(got-loss) > 1e-4 {
			t.Errorf("invertResidual(residualLoss(%v)) = %v", loss, got)
		}
	}
}

// TestFECPolicyDecisions: from the loss the receivers' repair requests
// show, FEC goes on only where the unicast repair it saves costs more than
// its repair packets.
func TestFECPolicyDecisions(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, c := range []struct {
		name   string
		s      fecSample
		on     bool
		lo, hi int // repair packets per full block when on
	}{
		{"N=4, 10 %", window(0.1, 0.1, 0.1, 0.1), true, 30, 40},
		{"N=4, 2 %", window(0.02, 0.02, 0.02, 0.02), true, 7, 12},
		{"N=4, 0 %", window(), false, 0, 0},
		{"N=1, 10 %: unicast repair is cheaper", window(0.1), false, 0, 0},
		{"N=1, 2 %", window(0.02), false, 0, 0},
		{"N=2, 10 %", window(0.1, 0.1), true, 30, 40},
		{"N=100, 0.1 %", window(repeat(0.001, 100)...), true, 1, 3},
		{"N=3, 0.1 %", window(0.001, 0.001, 0.001), false, 0, 0},
		{"N=4, nothing pushed", fecSample{asked: []int64{1, 1, 1, 1}}, false, 0, 0},
		{"N=4, 2 %, padding 3.6 %: costs more than it saves", window(0.02, 0.02, 0.02, 0.02), false, 0, 0},
		{"N=4, 10 %, padding 3.6 %", window(0.1, 0.1, 0.1, 0.1), true, 30, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testPolicy()
			if strings.Contains(c.name, "padding") {
				p.extra = 0.036
			}
			d, changed := p.decide(now, c.s)
			if changed != c.on {
				t.Fatalf("changed %v (%+v), want on %v", changed, d, c.on)
			}
			if !c.on {
				return
			}
			m := int(math.Round(d.overhead * 200))
			if m < c.lo || m > c.hi || d.benefit <= d.cost || d.receivers != len(c.s.asked) {
				t.Errorf("%+v: %d repair packets, want %d..%d, and a benefit above the cost", d, m, c.lo, c.hi)
			}
			if math.Abs(d.loss-float64(c.s.asked[0])/float64(c.s.pushed)) > 1e-6 {
				t.Errorf("loss estimate %v", d.loss)
			}
		})
	}
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// TestFECPolicyHysteresis: once on, the overhead holds while the residual
// repair is what the estimate predicts, rises when it shows more loss, and
// steps down (then off) only after a hold time of no residual repair;
// decisions wait for the window to hold only what followed a change.
func TestFECPolicyHysteresis(t *testing.T) {
	p := testPolicy()
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	d, on := p.decide(t0, window(0.02, 0.02, 0.02, 0.02))
	if !on {
		t.Fatal("not on at N=4, 2 %")
	}
	low := d.overhead
	// Within the settle time nothing changes, whatever the window says.
	if d, changed := p.decide(at(time.Second), window(0.3, 0.3, 0.3, 0.3)); changed {
		t.Fatalf("changed within the settle time: %+v", d)
	}
	// The loss is 10 %, not 2 %: the blocks that FEC at 2 % cannot rebuild
	// are asked for whole.
	m := repairCount(low, 200, 50)
	r := residualLoss(0.1, 200, m)
	d, changed := p.decide(at(3*time.Second), window(r, r, r, r))
	if !changed || d.overhead <= low || math.Abs(d.loss-0.1) > 0.005 {
		t.Fatalf("residual repair of 10 %% loss at %d repair packets: %+v, %v; want the estimate raised to 10 %%", m, d, changed)
	}
	high := d.overhead
	// What 10 % loss leaves at that overhead (a block in a hundred, or
	// less) changes nothing, for as long as it lasts.
	m = repairCount(high, 200, 50)
	r = residualLoss(0.1, 200, m)
	for s := 6; s < 60; s++ {
		if d, changed := p.decide(at(time.Duration(s)*time.Second), window(r, r, r, r)); changed {
			t.Fatalf("at %d s, the residual repair the estimate predicts: %+v", s, d)
		}
	}
	// The loss goes away: no residual repair. Nothing changes before the
	// hold time; then the overhead steps down, and at last goes off.
	tq := 60 * time.Second
	if _, changed := p.decide(at(tq), window(0, 0, 0, 0)); changed {
		t.Fatal("changed at the first quiet window")
	}
	if _, changed := p.decide(at(tq+5*time.Second), window(0, 0, 0, 0)); changed {
		t.Fatal("changed before the hold time")
	}
	prev := high
	steps := 0
	for s := tq + 6*time.Second; s < tq+120*time.Second && prev > 0; s += time.Second {
		d, changed := p.decide(at(s), window(0, 0, 0, 0))
		if !changed {
			continue
		}
		if d.overhead >= prev {
			t.Fatalf("quiet: overhead %v after %v", d.overhead, prev)
		}
		prev = d.overhead
		steps++
	}
	if prev != 0 || steps < 2 {
		t.Fatalf("quiet for two minutes: overhead %v after %d steps, want off after steps down", prev, steps)
	}
	// Off, a lone receiver at 10 % does not turn it on again.
	if d, changed := p.decide(at(200*time.Second), window(0.1)); changed {
		t.Fatalf("N=1: %+v", d)
	}
}

// TestFECPolicyProbeComesBack: at a steady 10 % loss a step down (the
// estimate decays only after a hold with no residual repair, which 10 %
// loss makes unlikely; forced here) lets blocks fail, and the residual
// repair they cause raises the overhead back.
func TestFECPolicyProbeComesBack(t *testing.T) {
	p := testPolicy()
	t0 := time.Unix(1000, 0)
	d, _ := p.decide(t0, window(0.1, 0.1, 0.1, 0.1))
	high := d.overhead
	p.apply(t0, p.judge(0.05, 4, 0.2))
	m := repairCount(p.overhead, 200, 50)
	r := residualLoss(0.1, 200, m)
	d, changed := p.decide(t0.Add(3*time.Second), window(r, r, r, r))
	if !changed || d.overhead != high {
		t.Fatalf("residual of 10 %% loss at %d repair packets: %+v %v, want back to %v", m, d, changed, high)
	}
}
