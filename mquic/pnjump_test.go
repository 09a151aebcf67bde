package mquic_test

import (
	"testing"
	"time"

	keyforger "github.com/h3m-project/h3m/internal/forger"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// clockedReceiver returns a receiver of cfg on a test clock, fed by
// HandlePacket, and a forger of its session.
func clockedReceiver(t *testing.T, cfg mquic.ReceiverConfig) (*mquic.Receiver, *testClock, *keyforger.Forger) {
	t.Helper()
	r, err := mquic.NewReceiver(&mcasttest.CaptureConn{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := newTestClock()
	r.SetClock(clk.Now)
	f, err := keyforger.New(cfg.Params)
	if err != nil {
		t.Fatal(err)
	}
	return r, clk, f
}

// noErrors fails the test with the first error the collector saw.
func noErrors(t *testing.T, col *collector) {
	t.Helper()
	if len(col.errs) > 0 {
		t.Fatal(col.errs[0])
	}
}

func streamOf(c *collector, id uint64) *streamLog {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.streams[id]
}

// TestPacketNumberJump: one forged packet with a packet number 2^20 ahead
// of the real ones, in the middle of a session, is accepted but moves
// nothing: every real packet after it is still accepted and the stream
// arrives whole (before the window took the jump, and every later real
// packet was stale).
func TestPacketNumberJump(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	pkts := capturedSession(t, params, pat, 400_000)
	col := newCollector(pat)
	r, clk, f := clockedReceiver(t, mquic.ReceiverConfig{Params: params, Handler: col})
	half := len(pkts) / 2
	for i, p := range pkts {
		if i == half {
			r.HandlePacket(f.SealPN(uint64(half)+1<<20, []byte{0x01}), src) // PING
		}
		r.HandlePacket(p, src)
		clk.Advance(100 * time.Microsecond)
	}
	st := r.Stats()
	if st.Stale != 0 || st.Packets != uint64(len(pkts))+1 || st.PNLeaps != 1 || st.PNMoves != 0 {
		t.Fatalf("stale %d, packets %d of %d+1, leaps %d, moves %d", st.Stale, st.Packets, len(pkts), st.PNLeaps, st.PNMoves)
	}
	l := streamOf(col, 3)
	if l == nil || !l.finished || l.final != 400_000 || !l.gaps.Empty() {
		t.Fatalf("stream 3: %+v", l)
	}
	noErrors(t, col)
}

// TestPacketNumberJumpRecovers: a forger that jumps while the sender is
// silent moves the window with it; when the real packets come back below
// it, the receiver follows them back after PNConfirm of them (whose data
// are reported as a gap) and the rest of the stream arrives.
func TestPacketNumberJumpRecovers(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	pkts := capturedSession(t, params, pat, 400_000)
	col := newCollector(pat)
	r, clk, f := clockedReceiver(t, mquic.ReceiverConfig{Params: params, Handler: col})
	half := len(pkts) / 2
	for _, p := range pkts[:half] {
		r.HandlePacket(p, src)
	}
	clk.Advance(time.Second) // the sender pauses; the forger jumps
	f.SetNextPN(uint64(half) + 1<<20)
	for range mquic.DefaultPNConfirm + 2 {
		r.HandlePacket(f.Seal([]byte{0x01}), src)
	}
	if st := r.Stats(); st.PNMoves != 1 || st.LargestPN < 1<<20 {
		t.Fatalf("the window did not follow a region that alone received packets: %+v", st)
	}
	clk.Advance(time.Second) // the forger stops; the sender resumes
	for _, p := range pkts[half:] {
		r.HandlePacket(p, src)
		clk.Advance(100 * time.Microsecond)
	}
	st := r.Stats()
	if st.PNMoves != 2 || st.Stale != mquic.DefaultPNConfirm-1 || st.LargestPN != uint64(len(pkts)-1) {
		t.Fatalf("moves %d, stale %d, largest %d: %+v", st.PNMoves, st.Stale, st.LargestPN, st)
	}
	l := streamOf(col, 3)
	if l == nil || !l.finished || l.final != 400_000 {
		t.Fatalf("stream 3 did not finish: %+v", l)
	}
	if gap := l.gaps.Len(); gap == 0 || gap > 3*1500 {
		t.Errorf("%d bytes reported lost, want those of %d packets", gap, mquic.DefaultPNConfirm-1)
	}
	noErrors(t, col)
}

// TestPacketNumberLeapsOfARealSender: a receiver that missed more than
// MaxPNJump packets (an outage) takes the packets after the outage at once
// and moves its window there once they keep coming.
func TestPacketNumberLeapsOfARealSender(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	pkts := capturedSession(t, params, pat, 4_000_000)
	col := newCollector(pat)
	r, clk, _ := clockedReceiver(t, mquic.ReceiverConfig{Params: params, Handler: col, MaxPNJump: 100, ReorderDelay: time.Hour})
	for _, p := range pkts[:1000] {
		r.HandlePacket(p, src)
	}
	clk.Advance(time.Second) // the outage
	for _, p := range pkts[1500:] {
		r.HandlePacket(p, src)
		clk.Advance(100 * time.Microsecond)
	}
	st := r.Stats()
	if st.PNMoves != 1 || st.Stale != 0 || st.Packets != uint64(len(pkts)-500) || st.LargestPN != uint64(len(pkts)-1) {
		t.Fatalf("%+v", st)
	}
	l := streamOf(col, 3)
	if l == nil || !l.finished || l.gaps.Count() != 1 {
		t.Fatalf("stream 3: %+v", l)
	}
	noErrors(t, col)
}

// TestSameSessionIDNewKeys: a sender restarted with the same session ID
// and new keys sends packets the receiver cannot open: they count as
// decryption failures since the last packet accepted, which is what the
// layer above watches to read the session description again. A sender
// restarted with the same keys starts its packet numbers anew, below the
// window: the receiver follows it (TestPacketNumberJumpRecovers).
func TestSameSessionIDNewKeys(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	pkts := capturedSession(t, params, pat, 100_000)
	rekeyed := params.Clone()
	rekeyed.Secret = append([]byte(nil), params.Secret...)
	rekeyed.Secret[0] ^= 0xff
	newPkts := capturedSession(t, rekeyed, pat, 100_000)
	col := newCollector(pat)
	r, clk, f := clockedReceiver(t, mquic.ReceiverConfig{Params: params, Handler: col})
	for _, p := range pkts {
		r.HandlePacket(p, src)
		clk.Advance(time.Millisecond)
	}
	accepted := r.Stats().LastAccepted
	if !accepted.Equal(clk.Now().Add(-time.Millisecond)) {
		t.Fatalf("last accepted %v, want %v", accepted, clk.Now().Add(-time.Millisecond))
	}
	for _, p := range newPkts {
		r.HandlePacket(p, src)
		clk.Advance(time.Millisecond)
	}
	st := r.Stats()
	if st.DecryptFailedSinceAccepted != uint64(len(newPkts)) || st.DecryptFailed != uint64(len(newPkts)) || !st.LastAccepted.Equal(accepted) {
		t.Fatalf("after the restart: %d failures since the last accepted packet at %v: %+v", st.DecryptFailedSinceAccepted, st.LastAccepted, st)
	}
	// A packet of the old keys resets the count.
	f.SetNextPN(uint64(len(pkts)))
	r.HandlePacket(f.Seal([]byte{0x01}), src)
	if st := r.Stats(); st.DecryptFailedSinceAccepted != 0 {
		t.Fatalf("%d failures since a packet was accepted", st.DecryptFailedSinceAccepted)
	}
}
