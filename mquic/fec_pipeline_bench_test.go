package mquic_test

import (
	"testing"

	"github.com/h3m-project/h3m/mquic"
)

// BenchmarkFECRunPipeline is Run's receive path (reads of 256 packets,
// opened on two workers, processed in order) without and with 5 % FEC, of
// the same stream data, nothing lost: the receiver's share of what FEC
// costs where `h3m bench --what fec` measures it. It reports the process's
// CPU time per packet read (repair packets included) and per stream byte.
func BenchmarkFECRunPipeline(b *testing.B) {
	for _, m := range fecModes {
		params := fecBenchParams(b, m.fec)
		pkts := capturedSession(b, params, newPattern(), 24_000_000)
		b.Run(m.name, func(b *testing.B) {
			var stream uint64
			cpu := pipelineCPU(b, params, pkts, func(st mquic.ReceiverStats) { stream += st.StreamBytes })
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
			if stream > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(stream)*1e3, "cpu-ns/KB")
			}
		})
	}
}
