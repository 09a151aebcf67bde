package mquic

import (
	"testing"
	"time"
)

// The wait between reads grows while reads take under half a batch, shrinks
// while they fill it, and is bounded by what the receive buffer absorbs at
// the session's rate.
func TestGatherAdapts(t *testing.T) {
	g := newGather(3*time.Millisecond, 8<<20, 100_000_000)
	if w := g.after(1, 32); w != 3*time.Millisecond {
		t.Fatalf("after a small read: %v", w)
	}
	if w := g.after(20, 32); w != 3*time.Millisecond {
		t.Errorf("after a read of more than half a batch: %v, want the same wait", w)
	}
	var waits []time.Duration
	for range 6 {
		if w := g.after(32, 32); w != 0 {
			t.Fatalf("a full read is followed by a wait of %v", w)
		}
		waits = append(waits, g.wait)
	}
	want := []time.Duration{1500 * time.Microsecond, 0, 0, 0, 0, 0}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits after full reads: %v, want %v", waits, want)
		}
	}
	for _, w := range []time.Duration{minGather, 2 * minGather, 3 * time.Millisecond, 3 * time.Millisecond} {
		if got := g.after(3, 32); got != w {
			t.Fatalf("after small reads: %v, want %v", got, w)
		}
	}

	// 208 KiB (a default rmem_max) holds 104 KiB of datagrams, 0.85 ms at
	// 1 Gbit/s; a quarter of that is under the shortest wait: no waits.
	if g := newGather(3*time.Millisecond, 208<<10, 1_000_000_000); g.max != 0 || g.after(1, 32) != 0 {
		t.Errorf("a small buffer at 1 Gbit/s: max %v", g.max)
	}
	// 8 MiB at 10 Gbit/s: 0.84 ms, no waits; 1 MiB at 1 Gbit/s: 1.05 ms.
	if g := newGather(3*time.Millisecond, 8<<20, 10_000_000_000); g.max != 0 {
		t.Errorf("8 MiB at 10 Gbit/s: max %v", g.max)
	}
	if g := newGather(3*time.Millisecond, 1<<20, 1_000_000_000); g.max < 1040*time.Microsecond || g.max > 1060*time.Microsecond {
		t.Errorf("1 MiB at 1 Gbit/s: max %v", g.max)
	}
	// An unknown rate is taken as 1 Gbit/s; an unknown buffer leaves the bound.
	if a, b := newGather(3*time.Millisecond, 1<<20, 0), newGather(3*time.Millisecond, 1<<20, 1_000_000_000); a.max != b.max {
		t.Errorf("unknown rate: %v, 1 Gbit/s: %v", a.max, b.max)
	}
	if g := newGather(3*time.Millisecond, 0, 0); g.max != 3*time.Millisecond {
		t.Errorf("unknown buffer: %v", g.max)
	}
	if g := newGather(-1, 8<<20, 1); g.after(1, 32) != 0 {
		t.Error("a negative ReadGather waits")
	}
}
