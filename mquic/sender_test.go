package mquic_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// Writes queue until Run runs; past the bounded queue, a sender that is
// never run fails loudly (ErrNotRunning) instead of hanging, and so does
// Close with packets queued. Close of a sender that queued nothing returns
// at once.
func TestSenderNotRunning(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	idle, err := mquic.NewSender(&discardConn{}, mquic.SenderConfig{Params: params, KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Close(); err != nil {
		t.Fatalf("Close of an unused sender: %v", err)
	}
	snd, err := mquic.NewSender(&discardConn{}, mquic.SenderConfig{Params: params, KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	for i := 0; ; i++ {
		err := st.WriteChunk(chunk)
		if errors.Is(err, mquic.ErrNotRunning) {
			t.Logf("write %d: %v", i, err)
			break
		}
		if err != nil || i > 100_000 {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if q := snd.Stats().Queued; q == 0 {
		t.Fatal("nothing queued")
	}
	if err := snd.Close(); !errors.Is(err, mquic.ErrNotRunning) {
		t.Fatalf("Close: %v, want ErrNotRunning", err)
	}
}

// While the writer waits for the pacer, Stats answers (it used to wait for
// the pacing sleep under the sender's lock), and ending Run's context stops
// the sender: later writes fail.
func TestSenderStatsWhilePacing(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	params.PeakFlowRate = 8_000 // a 1200-byte packet every 1.2 s
	snd, err := mquic.NewSender(&discardConn{}, mquic.SenderConfig{Params: params, KeepAlive: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- snd.Run(ctx) }()
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	for range 20 {
		if err := st.WriteChunk(chunk); err != nil {
			t.Fatal(err)
		}
	}
	flushed := make(chan error, 1)
	go func() { flushed <- snd.Flush() }() // waits for the pacer: minutes at this rate
	for snd.Stats().Writes == 0 {
		// The first batch goes at once (the burst); wait for it to be counted.
		runtime.Gosched()
	}
	if err := snd.Run(ctx); err == nil {
		t.Fatal("Run twice")
	}
	s := snd.Stats() // the writer now sleeps for the pacer
	if s.Queued == 0 || s.Packets == 0 {
		t.Fatalf("stats while pacing: %+v", s)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := <-flushed; err == nil {
		t.Fatal("Flush succeeded although Run stopped with packets queued")
	}
	if err := st.WriteChunk(chunk); err == nil {
		t.Fatal("write after Run ended")
	}
}
