package bench

import (
	"context"
	"net/netip"
	"os"
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/protect"
)

// TestLargeIntact runs the large-transfer phase at a size CI affords.
func TestLargeIntact(t *testing.T) {
	g := mcasttest.Group()
	o := Options{PacketSize: 1200, GSO: true, GRO: true, Suite: protect.SuiteAES128GCM, Interface: "lo",
		Group: g, Source: netip.MustParseAddr("127.0.0.1")}
	res, err := Large(context.Background(), o, 64<<20, 1_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	res.Report(os.Stdout, o)
	if !res.Intact {
		t.Fatalf("not intact: %+v", res)
	}
}

// TestCheckingStorageCatchesWrongBytes shows the check can fail.
func TestCheckingStorageCatchesWrongBytes(t *testing.T) {
	p := newPattern()
	c := &checkingStorage{p: p}
	b, _ := c.NewBody(nil, 100)
	good := make([]byte, 100)
	p.fill(good, 5000)
	b.WriteAt(good, 5000)
	good[42] ^= 1
	b.WriteAt(good, 5000)
	if c.wrong.Load() != 1 {
		t.Fatalf("%d wrong bytes counted, want 1", c.wrong.Load())
	}
}
