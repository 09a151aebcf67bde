//go:build linux

package mcast

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"
)

var baselineMatrix = flag.Duration("mcast.baseline", 0, "run TestBaselineMatrix for this long per case (e.g. 3s) and log the rates")

func checkAccounting(t *testing.T, r BaselineResult) {
	t.Helper()
	if r.Sent == 0 || r.Received == 0 {
		t.Fatalf("nothing sent or received: %v", r)
	}
	if r.Lost+r.Received != r.Sent || r.Received > r.Sent {
		t.Fatalf("accounting: lost %d + received %d != sent %d", r.Lost, r.Received, r.Sent)
	}
	if r.Duplicates != 0 {
		t.Errorf("%d duplicates on lo", r.Duplicates)
	}
}

func TestBaseline(t *testing.T) {
	t.Run("unpaced-gso-gro", func(t *testing.T) {
		snd, rcv := pair(t, true, true)
		r, err := Baseline(context.Background(), snd, rcv, 1200, 300*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		checkAccounting(t, r)
	})
	t.Run("paced-nogso-nogro", func(t *testing.T) {
		snd, rcv := pair(t, false, false)
		const pps = 50000
		r, err := Baseline(context.Background(), snd, rcv, 1000, 300*time.Millisecond, pps)
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
		checkAccounting(t, r)
		// The pace is an upper bound: never more than one batch ahead.
		if limit := uint64(pps*r.Elapsed.Seconds()) + 64; r.Sent > limit {
			t.Errorf("paced at %d pps for %v but sent %d (> %d)", pps, r.Elapsed, r.Sent, limit)
		}
		// The receive deadline was reset: the conn still reads.
		if _, err := snd.WriteBatch([][]byte{make([]byte, 10)}, snd.Group()); err != nil {
			t.Fatal(err)
		}
		msgs := readMsgs(1, 1500)
		if n, err := rcv.ReadBatch(msgs); n != 1 || err != nil {
			t.Fatalf("ReadBatch after Baseline: %d, %v", n, err)
		}
	})
	t.Run("bad-args", func(t *testing.T) {
		snd, rcv := pair(t, true, true)
		_, other := pair(t, true, true)
		for _, c := range []struct {
			rcv  *Conn
			size int
			dur  time.Duration
			pps  int
		}{{rcv, 8, time.Millisecond, 0}, {rcv, 70000, time.Millisecond, 0}, {rcv, 100, 0, 0}, {rcv, 100, time.Millisecond, -1}, {other, 100, time.Millisecond, 0}} {
			if _, err := Baseline(context.Background(), snd, c.rcv, c.size, c.dur, c.pps); err == nil {
				t.Errorf("Baseline(size %d, dur %v, pps %d) succeeded", c.size, c.dur, c.pps)
			}
		}
	})
}

// TestBaselineMatrix measures the raw-UDP baseline on lo for each socket
// technique. It runs only with -mcast.baseline=<duration>:
//
//	go test -run TestBaselineMatrix -v ./mquic/mcast -args -mcast.baseline=3s
func TestBaselineMatrix(t *testing.T) {
	if *baselineMatrix <= 0 {
		t.Skip("measurement; run with -args -mcast.baseline=3s")
	}
	for _, c := range []struct {
		gso, gro bool
		pps      int
	}{
		{false, false, 0}, {true, false, 0}, {true, true, 0},
		{false, false, 250000}, {true, true, 1000000},
	} {
		t.Run(fmt.Sprintf("gso=%v,gro=%v,pps=%d", c.gso, c.gro, c.pps), func(t *testing.T) {
			snd, rcv := pair(t, c.gso, c.gro)
			r, err := Baseline(context.Background(), snd, rcv, 1200, *baselineMatrix, c.pps)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("rcvbuf %d sndbuf %d: %v", rcv.RecvBufferSize(), snd.SendBufferSize(), r)
			checkAccounting(t, r)
		})
	}
}
