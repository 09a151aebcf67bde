package bench

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/protect"
)

// BenchmarkAsymUnpaced runs the unpaced phase of the asymmetric comparison
// (h3m bench --what asym) for each mode on its own, so that a CPU profile
// shows one mode: run with -benchtime=1x and -cpuprofile.
func BenchmarkAsymUnpaced(b *testing.B) {
	for _, asym := range []bool{false, true} {
		b.Run(mode(asym), func(b *testing.B) {
			o := Options{PacketSize: 1200, GSO: true, GRO: true, Suite: protect.SuiteAES128GCM, Interface: "lo",
				Group: mcasttest.Group(), Source: netip.MustParseAddr("127.0.0.1"), Duration: 2 * time.Second}
			var run AsymRun
			for b.Loop() {
				var err error
				if run, err = o.asymTransfer(context.Background(), o.Group.Port(), asym, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("sent %d, delivered %d, packets %d, lost %d, auth %+v", run.Sent, run.Stream.Bytes, run.Receiver.Packets, run.Receiver.LostPackets, run.Receiver.Auth)
			b.ReportMetric(run.Stream.Gbps(), "Gbit/s")
			b.ReportMetric(float64(run.CPU.Nanoseconds())/float64(max(run.Receiver.Packets, 1)), "cpu-ns/pkt")
		})
	}
}
