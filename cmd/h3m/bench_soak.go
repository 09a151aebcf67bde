package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/h3m-project/h3m/internal/soak"
)

// soakHelp is the part of bench's help about --what soak.
const soakHelp = `

The soak phase (--what soak, only when asked for: it runs in real time,
an hour by default) runs a live DASH-like stream through the whole of h3m
in one process on loopback: an origin pushing a segment every second
(16-400 KB) and the manifest after every two, a gateway receiving them with
the gateway command's bounds (a 128 MB store, full within ten minutes), and
a player asking the gateway for every segment; multicast packets are dropped at the sender's socket at each
--soak-loss rate. It prints the heap and goroutines every minute, then how
each segment came (multicast, repair, fallback), the unicast requests and
whether any was for what multicast had delivered, repaired against lost
bytes, what the player got, and the heap and goroutines after the warm-up
(the figures the soak test asserts on, over minutes). --soak-fec gives the
session forward error correction; --soak-burst-every with --soak-burst-length
and --soak-burst-loss adds bursts of heavy loss, in which the receiver's
circuit breaker (on, with its default timings) leaves the session and
joins again after its back-off.`

// soakFlags registers the soak phase's flags and returns what runs it.
func soakFlags(fs *flag.FlagSet) func(ctx context.Context, e *env) error {
	duration := fs.Duration("soak-duration", time.Hour, "soak: length of the live stream (one segment a second)")
	loss := fs.String("soak-loss", "0,0.02", "soak: multicast loss rates (fractions, comma-separated), one run each")
	fec := fs.Float64("soak-fec", 0, "soak: forward error correction overhead of the session (a fraction, 0.05 = 5 %; 0: none)")
	burstEvery := fs.Duration("soak-burst-every", 0, "soak: a burst of --soak-burst-loss this often (0: none)")
	burstLength := fs.Duration("soak-burst-length", 20*time.Second, "soak: length of each burst of loss (long enough for the circuit breaker, 5 s sustained, to trip)")
	burstLoss := fs.Float64("soak-burst-loss", 0.6, "soak: loss rate in a burst (a fraction)")
	return func(ctx context.Context, e *env) error {
		if *duration < time.Minute {
			return usagef("--soak-duration %v: at least a minute", *duration)
		}
		if *fec < 0 || *fec >= 1 {
			return usagef("--soak-fec %v: want a fraction in [0, 1)", *fec)
		}
		if *burstEvery != 0 && (*burstEvery < 2*time.Second || *burstLength < time.Second || *burstLength >= *burstEvery || *burstLoss <= 0 || *burstLoss >= 1) {
			return usagef("--soak-burst-every %v, --soak-burst-length %v, --soak-burst-loss %v: want bursts of a second or more, shorter than their period, of a loss in (0, 1)",
				*burstEvery, *burstLength, *burstLoss)
		}
		var rates []float64
		for _, f := range strings.Split(*loss, ",") {
			r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || r < 0 || r >= 1 {
				return usagef("--soak-loss %q: want fractions in [0, 1) separated by commas", *loss)
			}
			rates = append(rates, r)
		}
		for _, r := range rates {
			o := soak.RealTime(*duration)
			o.Loss, o.FEC = r, *fec
			if *burstEvery > 0 {
				o.BurstEvery, o.BurstSegments, o.BurstLoss = int(*burstEvery/o.Interval), int(*burstLength/o.Interval), *burstLoss
			}
			o.Logger = e.log
			o.Progress = func(s soak.Sample) {
				fmt.Fprintf(e.stdout, "soak: %5d segments, %8v: heap %6.1f MB, %d goroutines\n",
					s.Segments, s.Elapsed.Round(time.Second), float64(s.HeapBytes)/1e6, s.Goroutines)
			}
			rep, err := soak.Run(ctx, o)
			if rep != nil {
				fmt.Fprint(e.stdout, rep)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
}
