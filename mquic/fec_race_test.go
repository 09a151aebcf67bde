package mquic_test

import (
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// TestFECBlocksCloseUnderConcurrentWriters: blocks that close by time (the
// writer's timer) while several streams write small chunks at once. Sealing
// the previous block's repair packets releases the sender's lock, and a
// stream writer may start a packet meanwhile; the block must then take that
// packet first (it once panicked: "a packet was started while a block waited
// to close"). Bounded: 16 writers × 400 chunks.
func TestFECBlocksCloseUnderConcurrentWriters(t *testing.T) {
	group := mcasttest.Group()
	p := fecParamsBlockTime(t, group, 0.2, 32, time.Millisecond)
	snd, err := runSender(t, &captureConn{}, mquic.SenderConfig{Params: p, FlushDelay: 200 * time.Microsecond})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		st, err := snd.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			chunk := make([]byte, 700)
			for i := range 400 {
				if _, err := st.Write(chunk); err != nil {
					t.Error(err)
					return
				}
				if i%16 == 0 {
					time.Sleep(time.Millisecond) // let blocks close by time between writes
				}
			}
			if err := st.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := snd.Close(); err != nil {
		t.Fatal(err)
	}
	if st := snd.Stats(); st.FEC.Blocks == 0 || st.FEC.RepairPackets == 0 {
		t.Fatalf("no FEC block closed: %+v", st.FEC)
	}
}
