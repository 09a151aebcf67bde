package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/h3m-project/h3m/internal/bench"
	"github.com/h3m-project/h3m/interop"
)

// simHelp is the part of bench's help about --what sim.
const simHelp = `

The sim phase (--what sim) simulates repair past what one machine can
host, in process and without sockets: the session's packets and FEC blocks
as the sender forms them, and for each of --sim-receivers receivers (10 000
and 1 000 000 by default) the packets it loses (independently, or the same
for all when the loss is upstream of every receiver), whether FEC rebuilds
its blocks (the decoder's rule), and what it asks the origin for. It prints,
per case, what the origin sends for repair per content byte (proactive FEC,
unicast repair of everyone, and a model of multicast repair answering
NACK-suppressed requests) and the repair requests per receiver.`

// simFlags registers the sim phase's flags and returns what runs it.
func simFlags(fs *flag.FlagSet) func(ctx context.Context, e *env) error {
	receivers := fs.String("sim-receivers", "10000,1000000", "sim: receiver counts, comma-separated")
	loss := fs.String("sim-loss", "2,2c,10,10c", "sim: loss cases in percent, comma-separated; a trailing c means correlated (upstream of every receiver)")
	fecs := fs.String("sim-fec", "0,5%,20%", "sim: FEC overheads, comma-separated (0: none)")
	size := fs.Int64("sim-size", 40_500_000, "sim: content bytes")
	files := fs.Int("sim-files", 53, "sim: resources the content is split into")
	sample := fs.Int("sim-sample", bench.DefaultSimSample, "sim: receivers followed packet by packet for the unicast policy")
	return func(ctx context.Context, e *env) error {
		o := bench.SimOptions{Size: *size, Files: *files, Sample: *sample, Seed: 1}
		var err error
		if o.Receivers, err = intList(*receivers); err != nil {
			return usagef("--sim-receivers: %v", err)
		}
		for _, f := range strings.Split(*loss, ",") {
			f = strings.TrimSpace(f)
			l := bench.SimLoss{}
			var num string
			num, l.Correlated = strings.CutSuffix(f, "c")
			v, err := parseShare(num + "%")
			if err != nil || v < 0 || v > 1 {
				return usagef("--sim-loss %q: want percentages like 2 or 10c", *loss)
			}
			l.Percent = v * 100
			o.Loss = append(o.Loss, l)
		}
		for _, f := range strings.Split(*fecs, ",") {
			v, err := parseShare(f)
			if err != nil || v < 0 || v > 1 {
				return usagef("--sim-fec %q: want shares like 0, 5%% or 0.05", *fecs)
			}
			o.FEC = append(o.FEC, v)
		}
		if *files < 1 || *size < int64(*files)*1000 {
			return usagef("--sim-size and --sim-files: at least 1000 bytes per resource")
		}
		rows := bench.Simulate(o)
		bench.ReportSim(e.stdout, o, rows)
		return nil
	}
}

// scaleHelp is the part of bench's help about --what scale.
const scaleHelp = `

The scale phase (--what scale, needs root and nftables) measures what repair
costs the origin as receivers grow, on the peers phase's bridge of network
namespaces with this h3m binary's serve --once and receive: per receiver
count (--scale-receivers), loss rate (--scale-loss; independent: each
receiver loses its own packets; correlated: the bridge drops multicast before
flooding it, so every receiver loses the same packets), with and without
FEC (--scale-fec; by default twice the loss rate, at least 5 %), it prints the origin's unicast bytes per content byte
(counted on the bridge), its CPU seconds, the time until every receiver holds
every file (checked byte for byte), and, in the same run, a unicast-only
baseline: the same receivers fetching everything over HTTP/3.

With --scale-cache (by default both tiers when Debian's nginx with its slice
module is installed), each correlated loss rate also runs with a cache tier:
an nginx cache host on the bridge that the origin lists as a repair URL and
receivers repair through, fetching from the origin (serve --tcp-listen) on a
miss: "slice" caches 64 KiB slices, receivers asking for whole blocks;
"exact" caches each range asked, receivers asking for exactly what they
lost. The table then also shows the origin's unicast bytes per byte lost
upstream (split into what it sent the cache and the receivers, counted on
the bridge by destination), and the cache's fetches from the origin (the
most of any one slice or range: 1 when each was fetched once). The origin
logs each request it serves at debug level in those runs (keep the logs
with --scale-dir); --scale-cache-only leaves out the runs without a cache.

With --scale-mcast-repair N, each correlated case also runs without FEC with
h3m serve --mcast-repair N: the ranges N receivers ask for are pushed once
more on the session.`

// scaleAwaitWait bounds the scale runs' wait for their receivers: 32
// receivers starting on two cores take a few seconds to read the session
// description.
const scaleAwaitWait = 5 * time.Second

// scaleFlags registers the scale phase's flags and returns what runs it.
func scaleFlags(fs *flag.FlagSet) func(ctx context.Context, e *env) error {
	receivers := fs.String("scale-receivers", "4,16,32", "scale: receiver counts, comma-separated")
	loss := fs.String("scale-loss", "0,2,10", "scale: multicast loss rates in percent, comma-separated (each above 0 runs independent and correlated)")
	fecFlag := fs.String("scale-fec", "auto", "scale: FEC overhead of the runs with FEC (each case also runs without); auto: twice the loss rate, at least 5%")
	size := fs.Int64("scale-size", 40_500_000, "scale: total bytes of the generated files")
	files := fs.Int("scale-files", 53, "scale: number of generated files")
	rate := fs.Uint64("scale-rate", 50_000_000, "scale: sending rate, bit/s")
	baseline := fs.Bool("scale-baseline", true, "scale: also run the unicast-only baseline per receiver count")
	mrepair := fs.Int("scale-mcast-repair", 0, "scale: also run each correlated case without FEC with h3m serve --mcast-repair N (0: not)")
	repairDelay := fs.Duration("scale-repair-delay", 0, "scale: h3m receive --repair-delay in the --scale-mcast-repair runs (0: its default)")
	wait := fs.Duration("scale-wait", scaleAwaitWait, "scale: h3m serve --wait: with --scale-await the longest it waits for the receivers, otherwise how long")
	await := fs.Bool("scale-await", true, "scale: h3m serve --wait-receivers N: push once the case's N receivers have read the session description (receivers that join after the first push fetch what they missed, which is not repair)")
	timeout := fs.Duration("scale-timeout", 0, "scale: bound on each run (0: ten times the nominal transfer time, at least a minute)")
	dir := fs.String("scale-dir", "", "scale: keep the content and each process's log here (default: a temporary folder, removed)")
	cacheFlag := fs.String("scale-cache", "auto", "scale: cache tiers to run at correlated loss, comma-separated: slice, exact; auto: both when nginx can run, none otherwise; none")
	cacheOnly := fs.Bool("scale-cache-only", false, "scale: run only the cache tier's cases (and the baseline, if asked), not the direct ones")
	h3mBin := fs.String("scale-h3m", "", "scale: the h3m binary to run (default: this one)")
	return func(ctx context.Context, e *env) error {
		if *mrepair < 0 {
			return usagef("--scale-mcast-repair %d: want a count ≥ 0", *mrepair)
		}
		o := bench.ScaleOptions{Baseline: *baseline, CacheOnly: *cacheOnly, MulticastRepair: *mrepair, RepairDelay: *repairDelay, Peers: bench.PeersOptions{Size: *size, Files: *files, Rate: *rate,
			Wait: *wait, AwaitReceivers: *await, Timeout: *timeout, Dir: *dir, Out: e.stdout, Logger: e.log}}
		var err error
		if o.Receivers, err = intList(*receivers); err != nil {
			return usagef("--scale-receivers: %v", err)
		}
		for _, n := range o.Receivers {
			if n < 1 || n > 64 {
				return usagef("--scale-receivers: %d: want 1 to 64", n)
			}
		}
		if o.Loss, err = intList(*loss); err != nil {
			return usagef("--scale-loss: %v", err)
		}
		for _, l := range o.Loss {
			if l > 100 {
				return usagef("--scale-loss: %d is over 100 %%", l)
			}
		}
		if *fecFlag != "auto" {
			if o.FEC, err = parseShare(*fecFlag); err != nil || o.FEC <= 0 {
				return usagef("--scale-fec %q: want auto or a share like 5%%", *fecFlag)
			}
		}
		if *rate == 0 {
			return usagef("--scale-rate: a real network needs a rate")
		}
		switch *cacheFlag {
		case "auto":
			if err := interop.NginxAvailable(); err != nil {
				fmt.Fprintf(e.stdout, "scale: no cache tier runs: %v\n", err)
			} else {
				o.CacheTiers = []string{bench.TierSlice, bench.TierExact}
			}
		case "none", "":
		default:
			o.CacheTiers = splitList(*cacheFlag)
		}
		if o.Peers.H3M = *h3mBin; o.Peers.H3M == "" {
			if o.Peers.H3M, err = os.Executable(); err != nil {
				return err
			}
		}
		if *dir != "" {
			if o.Peers.Dir, err = filepath.Abs(*dir); err != nil {
				return err
			}
		}
		rep, err := bench.Scale(ctx, o)
		if err != nil {
			return err
		}
		if rep.Failed() {
			return fmt.Errorf("scale: some runs failed (see the table)")
		}
		return nil
	}
}
