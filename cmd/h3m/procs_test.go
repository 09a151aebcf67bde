package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/h3m-project/h3m/unicast/client"
)

func TestProcsFor(t *testing.T) {
	joined := func(rate uint64) client.SessionInfo { return client.SessionInfo{Joined: true, PeakFlowRate: rate} }
	for _, c := range []struct {
		name     string
		sessions []client.SessionInfo
		ncpu     int
		want     int
	}{
		{"nothing known: every CPU", nil, 8, 8},
		{"known but not joined (fallback, breaker)", []client.SessionInfo{{PeakFlowRate: 100e6}}, 8, 8},
		{"100 Mbit/s", []client.SessionInfo{joined(100e6)}, 8, 1},
		{"a few Mbit/s of DASH", []client.SessionInfo{joined(5e6)}, 2, 1},
		{"250 Mbit/s fills one", []client.SessionInfo{joined(250e6)}, 8, 1},
		{"just over one", []client.SessionInfo{joined(250e6 + 1)}, 8, 2},
		{"rates add up", []client.SessionInfo{joined(200e6), joined(200e6), {PeakFlowRate: 1e9}}, 8, 2},
		{"capped at the CPUs", []client.SessionInfo{joined(10e9)}, 2, 2},
		{"no advertised rate: every CPU", []client.SessionInfo{joined(100e6), joined(0)}, 4, 4},
	} {
		if got := procsFor(c.sessions, c.ncpu); got != c.want {
			t.Errorf("%s: procsFor = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestProcsTunerFollowsSessions(t *testing.T) {
	var sessions []client.SessionInfo
	var sets []int
	tu := &procsTuner{
		sessions: func() []client.SessionInfo { return sessions },
		set:      func(n int) int { sets = append(sets, n); return 0 },
		ncpu:     4, log: slog.New(slog.NewTextHandler(io.Discard, nil)), cur: 4,
	}
	tu.step() // discovering: stays at every CPU
	sessions = []client.SessionInfo{{Joined: true, PeakFlowRate: 100e6}}
	tu.step()
	tu.step()                  // unchanged: not set again
	sessions[0].Joined = false // the breaker left it: unicast needs the CPUs
	tu.step()
	if want := []int{1, 4}; len(sets) != len(want) || sets[0] != want[0] || sets[1] != want[1] {
		t.Fatalf("GOMAXPROCS set to %v, want %v", sets, want)
	}
}
