package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestScale runs the scale bench at a size CI affords (about a minute): 4
// receivers, 10 % independent loss, without and with FEC, and the
// unicast-only baseline, 3 MB in 6 files. It proves the harness runs, that
// every receiver ends with every file intact in every run, and that the
// bridge counted the origin's unicast and multicast; it asserts nothing
// about speed.
func TestScale(t *testing.T) {
	if err := ScaleAvailable(); err != nil {
		t.Skipf("scale: skipping: %v", err)
	}
	bin := buildH3M(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	o := ScaleOptions{Receivers: []int{4}, Loss: []int{10}, Baseline: true,
		Peers: PeersOptions{H3M: bin, Size: 3 << 20, Files: 6, Rate: 100_000_000, Wait: DefaultPeersWait,
			Timeout: time.Minute, Dir: t.TempDir(), Out: &out}}
	o.Loss = []int{10}
	rep, err := Scale(ctx, o)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	// baseline, independent off/on, correlated off/on
	if len(rep.Runs) != 5 {
		t.Fatalf("%d runs, want 5", len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Err != nil {
			t.Errorf("%+v: %v", r, r.Err)
			continue
		}
		if r.UnicastBytes == 0 || r.MulticastBytes < 3<<20 || r.SenderCPU <= 0 || r.Done <= 0 {
			t.Errorf("implausible figures: %+v", r)
		}
		if r.Baseline && r.H3M.Fallback != 4*6 {
			t.Errorf("baseline: %+v, want every file by unicast", r.H3M)
		}
		if r.Baseline && r.UnicastBytes < 4*3<<20 {
			t.Errorf("baseline: %d unicast bytes for 4 receivers of 3 MB", r.UnicastBytes)
		}
		if r.Correlated && r.Dropped == 0 {
			t.Errorf("correlated loss dropped nothing: %+v", r)
		}
	}
	if !strings.Contains(out.String(), "| 4 | 10 % correlated | 20 % |") {
		t.Errorf("the table lacks a row:\n%s", out.String())
	}
}
