package mquic_test

import (
	"testing"
	"time"

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
			b.ReportAllocs()
			var cpu time.Duration
			var stream uint64
			done := 0
			for done < b.N {
				n := min(len(pkts), b.N-done)
				c0 := cpuTime()
				st := receivePipelined(b, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Workers: 2}, batched(pkts[:n], 256))
				cpu += cpuTime() - c0
				stream += st.StreamBytes
				done += n
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
			if stream > 0 {
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(stream)*1e3, "cpu-ns/KB")
			}
		})
	}
}
