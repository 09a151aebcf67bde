package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
)

// A receiver of a slow session is idle between packets most of the time,
// and an idle Go processor costs CPU: each packet, timer and unicast event
// that readies a goroutine makes the runtime wake a thread to look for work
// on the other processor, which finds none and parks again. At 100 Mbit/s
// on a 2-core machine that was 15–25 % of the receiver's CPU, and it bought
// nothing: one core opens and handles 100 Mbit/s many times over. So `h3m receive` and
// `h3m gateway` size GOMAXPROCS from the advertised peak flow rate of the
// sessions they have joined (--procs 0, the default), and give a session
// that advertises no rate, and unicast-only operation, every CPU.

// procsRatePerProc is the advertised rate, in bit/s, one Go processor is
// given. One core opens and handles packets at several Gbit/s (README,
// per-packet costs); the margin leaves room for FEC decoding, unicast
// repair and bursts above the advertised rate.
const procsRatePerProc = 250_000_000

// procsFor returns the Go processors for a receiver with these sessions on
// a machine of ncpu CPUs: one per procsRatePerProc of the joined sessions'
// advertised rates, at least 1 and at most ncpu; ncpu when none is joined
// (discovery, unicast fallback) or a joined one advertises no rate.
func procsFor(sessions []client.SessionInfo, ncpu int) int {
	var rate uint64
	joined := false
	for _, s := range sessions {
		if !s.Joined {
			continue
		}
		if s.PeakFlowRate == 0 {
			return ncpu
		}
		joined = true
		rate += s.PeakFlowRate
	}
	if !joined {
		return ncpu
	}
	n := int((rate + procsRatePerProc - 1) / procsRatePerProc)
	return min(max(n, 1), ncpu)
}

// procsTuner keeps GOMAXPROCS at procsFor of the client's sessions.
type procsTuner struct {
	sessions func() []client.SessionInfo
	set      func(int) int // runtime.GOMAXPROCS
	ncpu     int
	log      *slog.Logger
	cur      int
}

// step sets GOMAXPROCS for the sessions joined now, if that changes it.
func (t *procsTuner) step() {
	n := procsFor(t.sessions(), t.ncpu)
	if n == t.cur {
		return
	}
	t.log.Info("Go processors sized for the sessions' advertised rate", "gomaxprocs", n, "was", t.cur, "cpus", t.ncpu)
	t.set(n)
	t.cur = n
}

// tuneProcs applies --procs: fixed > 0 sets GOMAXPROCS to it; 0 follows
// the client's sessions (looked at four times a second) until ctx ends.
// Either way the returned function restores the value found, unless
// someone else changed it since (the command may run inside a test's
// process, beside other commands). A GOMAXPROCS environment variable wins
// over auto.
func tuneProcs(ctx context.Context, log *slog.Logger, rc *client.Client, fixed int) (restore func()) {
	orig := runtime.GOMAXPROCS(0)
	if fixed > 0 {
		runtime.GOMAXPROCS(fixed)
		return func() { restoreProcs(fixed, orig) }
	}
	if os.Getenv("GOMAXPROCS") != "" {
		log.Debug("GOMAXPROCS set in the environment; --procs auto leaves it", "gomaxprocs", orig)
		return func() {}
	}
	t := &procsTuner{sessions: rc.Sessions, set: runtime.GOMAXPROCS, ncpu: runtime.NumCPU(), log: log, cur: orig}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				t.step()
			}
		}
	}()
	return func() {
		cancel()
		<-done
		restoreProcs(t.cur, orig)
	}
}

// restoreProcs sets GOMAXPROCS back to orig if it is still set, the value
// this command gave it.
func restoreProcs(set, orig int) {
	if runtime.GOMAXPROCS(0) == set {
		runtime.GOMAXPROCS(orig)
	}
}
