package main

import (
	"context"
	"flag"
	"strings"

	"github.com/h3m-project/h3m/internal/bench"
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
