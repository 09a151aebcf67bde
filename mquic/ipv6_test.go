package mquic_test

import (
	"context"
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// TestIPv6SSM runs a session over IPv6 source-specific multicast between
// two network namespaces.
func TestIPv6SSM(t *testing.T) {
	sconn, rconn, group := mcasttest.V6Pair(t)
	params := testParams(t, group)
	params.Source = mcasttest.V6Source
	params.PeakFlowRate = 500_000_000
	pat := newPattern()
	col := newCollector(pat)
	rcv, err := mquic.NewReceiver(rconn, mquic.ReceiverConfig{Params: params, Handler: col})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go rcv.Run(ctx)
	snd, err := runSender(t, sconn, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	const streams, size = 4, 2 << 20
	ids := sendStreams(t, snd, pat, streams, size)
	waitStreams(t, col, streams, 20e9)
	for _, err := range col.errs {
		t.Error(err)
	}
	for _, id := range ids {
		if l := col.streams[id]; !l.finished || !l.got.Contains(0, size) {
			t.Fatalf("stream %d incomplete", id)
		}
	}
	t.Logf("IPv6 SSM %s from %s: %+v", group, mcasttest.V6Source, rcv.Stats().Packets)
}
