package bench

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/protect"
)

// BenchmarkIntakePause reports the longest pause in packet intake while a
// 256 MiB push completes and is verified (target: 5 ms), with the digests
// in the header and in unannounced trailers, and how long one digest pass
// over the body takes on the same machine.
func BenchmarkIntakePause(b *testing.B) {
	o := Options{PacketSize: 1200, GSO: true, GRO: true, Suite: protect.SuiteAES128GCM, Interface: "lo",
		Group: mcasttest.Group(), Source: netip.MustParseAddr("127.0.0.1")}
	var worst, pass time.Duration
	for b.Loop() {
		res, err := Pause(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		res.Report(os.Stdout, o)
		for _, run := range res.Runs {
			if !run.Complete {
				b.Fatalf("the pushes did not complete: %s", run.State)
			}
			worst = max(worst, run.MaxPause)
		}
		pass = max(pass, res.WholePass)
	}
	b.ReportMetric(float64(worst)/1e6, "max-pause-ms")
	b.ReportMetric(float64(pass)/1e6, "digest-pass-ms")
}
