package bench

import (
	"fmt"
	"testing"
	"time"
)

// pairs runs a warm-up pair of at most a second, then alternates which
// phase goes first, each phase on the next port, after a garbage
// collection; each pair keeps its runs by phase, whatever ran first.
func TestPairsAlternate(t *testing.T) {
	var calls []string
	p := pairs{port: 100, phase: func(o Options, port uint16, which int, rate uint64) (TransferRun, error) {
		calls = append(calls, fmt.Sprintf("%d:%d@%d/%v", port, which, rate, o.Duration))
		return TransferRun{Rate: uint64(which), Sent: uint64(port)}, nil
	}}
	o := Options{Duration: 3 * time.Second}
	if err := p.warmUp(o); err != nil {
		t.Fatal(err)
	}
	paced, err := p.pair(o, 7, false)
	if err != nil || paced[0].Rate != 0 || paced[1].Rate != 1 {
		t.Fatalf("paced pair %+v, %v", paced, err)
	}
	rounds, err := p.alternate(o, 3)
	if err != nil || len(rounds) != 3 {
		t.Fatalf("%d rounds, %v", len(rounds), err)
	}
	for i, runs := range rounds {
		if runs[0].Rate != 0 || runs[1].Rate != 1 {
			t.Fatalf("round %d: runs out of place: %+v", i, runs)
		}
	}
	want := "[100:0@0/1s 101:1@0/1s 102:0@7/3s 103:1@7/3s 104:0@0/3s 105:1@0/3s 106:1@0/3s 107:0@0/3s 108:0@0/3s 109:1@0/3s]"
	if got := fmt.Sprint(calls); got != want {
		t.Fatalf("phases run %s, want %s", got, want)
	}
}

func TestMedianRatio(t *testing.T) {
	rounds := [][2]TransferRun{{{Sent: 4}}, {{Sent: 1}}, {{Sent: 3}}, {{Sent: 2}}}
	f := func(r [2]TransferRun) float64 { return float64(r[0].Sent) }
	if m := medianRatio(rounds, f); m != 2.5 {
		t.Fatalf("median of four %v, want 2.5", m)
	}
	if m := medianRatio(rounds[:3], f); m != 3 {
		t.Fatalf("median of three %v, want 3", m)
	}
}
