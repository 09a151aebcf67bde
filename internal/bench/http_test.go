package bench

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/protect"
)

// BenchmarkHTTPLarge runs the stream phase and the 32 MiB pushes of the
// HTTP comparison (h3m bench --what http) one at a time, so that a CPU
// profile shows one of them, and reports each one's rate and CPU per byte
// (sender and receiver). Run with -benchtime=1x.
func BenchmarkHTTPLarge(b *testing.B) {
	o := Options{PacketSize: 1200, GSO: true, GRO: true, Suite: protect.SuiteAES128GCM, Interface: "lo",
		Group: mcasttest.Group(), Source: netip.MustParseAddr("127.0.0.1"), Duration: 2 * time.Second}
	run := func(b *testing.B, phase func() (Rate, error)) {
		var r Rate
		var cpu time.Duration
		for b.Loop() {
			c0 := processCPU()
			var err error
			if r, err = phase(); err != nil {
				b.Fatal(err)
			}
			cpu = processCPU() - c0
		}
		b.ReportMetric(r.Gbps(), "Gbit/s")
		b.ReportMetric(cpu.Seconds()/(float64(r.Bytes)/1e9), "cpu-s/GB")
	}
	b.Run("stream", func(b *testing.B) {
		run(b, func() (Rate, error) {
			_, _, s, err := o.streamPhase(context.Background(), o.Group.Port())
			return s, err
		})
	})
	b.Run("push", func(b *testing.B) {
		run(b, func() (Rate, error) { return o.largePushes(context.Background(), o.Group.Port()+1, 32<<20) })
	})
}
