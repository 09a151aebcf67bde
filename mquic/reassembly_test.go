package mquic

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/mquic/wire"
)

// eventLog records what a reassembler tells its streams.
type eventLog struct{ events []string }

func (l *eventLog) OpenStream(s *RecvStream) StreamHandler { return &streamEvents{l, s.ID()} }

type streamEvents struct {
	l  *eventLog
	id uint64
}

func (s *streamEvents) add(format string, args ...any) {
	s.l.events = append(s.l.events, fmt.Sprintf("%d ", s.id)+fmt.Sprintf(format, args...))
}
func (s *streamEvents) Data(off uint64, p []byte) { s.add("data %d %q", off, p) }
func (s *streamEvents) Gap(from, to uint64)       { s.add("gap %d-%d", from, to) }
func (s *streamEvents) Finish(size uint64)        { s.add("finish %d", size) }
func (s *streamEvents) Reset(code, size uint64)   { s.add("reset %d %d", code, size) }
func (l *eventLog) take() string                  { e := strings.Join(l.events, "; "); l.events = nil; return e }
func frame(id, off uint64, data string, fin bool) *wire.StreamFrame {
	return &wire.StreamFrame{StreamID: id, Offset: off, Data: []byte(data), Fin: fin}
}

func newTestReassembler(maxBuffered int) (*reassembler, *eventLog, *ReceiverStats) {
	l := &eventLog{}
	st := &ReceiverStats{}
	return &reassembler{handler: l, maxStreams: 4, maxBuffered: maxBuffered, reorderThreshold: 3,
		reorderDelay: 20 * time.Millisecond, st: st, streams: map[uint64]*RecvStream{}}, l, st
}

// The reassembler delivers in order, holds what comes after a hole, declares
// the hole a gap when three later packets arrived or the delay passed,
// delivers late bytes of a gap with their offset, and finishes a stream once
// every byte is delivered or lost.
func TestReassembler(t *testing.T) {
	a, l, st := newTestReassembler(1 << 20)
	t0 := time.Unix(1000, 0)
	step := func(what, want string) {
		t.Helper()
		if got := l.take(); got != want {
			t.Fatalf("%s: %s, want %s", what, got, want)
		}
	}
	a.streamFrame(frame(3, 0, "abc", false), 1, t0)
	step("in order", `3 data 0 "abc"`)
	a.streamFrame(frame(3, 6, "ghi", false), 3, t0) // packet 2 is missing
	a.streamFrame(frame(3, 9, "jk", true), 4, t0)
	step("after a hole", "")
	a.expire(5, 0, false, t0.Add(time.Millisecond))
	step("two packets after the held one, 1 ms", "")
	if d := a.deadline(0, false); !d.Equal(t0.Add(20 * time.Millisecond)) {
		t.Fatalf("deadline %v", d)
	}
	a.expire(6, 0, false, t0.Add(time.Millisecond))
	step("three packets after the held one", `3 gap 3-6; 3 data 6 "ghi"; 3 data 9 "jk"; 3 finish 11`)
	if st.Gaps != 1 || st.GapBytes != 3 || len(a.streams) != 0 || a.buffered != 0 {
		t.Fatalf("gaps %d (%d bytes), %d streams open, %d bytes buffered", st.Gaps, st.GapBytes, len(a.streams), a.buffered)
	}
	// A finished stream takes nothing more.
	a.streamFrame(frame(3, 3, "def", false), 2, t0)
	step("late, stream finished", "")
	if st.ClosedStreamData != 1 {
		t.Fatalf("closed-stream frames %d", st.ClosedStreamData)
	}

	// Stream 7: a hole declared by time, then its bytes arrive late.
	a.streamFrame(frame(7, 4, "efgh", false), 11, t0)
	a.expire(11, 0, false, t0.Add(20*time.Millisecond))
	step("by time", `7 gap 0-4; 7 data 4 "efgh"`)
	a.streamFrame(frame(7, 0, "abcd", false), 10, t0)
	step("late bytes of a gap", `7 data 0 "abcd"`)
	if s := a.streams[7]; !s.Lost().Empty() {
		t.Fatalf("lost %v after the late bytes", s.Lost().String())
	}
	a.resetStream(&wire.ResetStreamFrame{StreamID: 7, ErrorCode: 9, FinalSize: 8})
	step("reset", "7 reset 9 8")

	// Streams the profile does not allow are counted, not opened.
	a.streamFrame(frame(4, 0, "x", false), 12, t0)
	if st.BadStreamFrames != 1 || len(a.streams) != 0 {
		t.Fatalf("client-initiated stream accepted")
	}
}

// Past MaxBufferedBytes the oldest hole is declared lost early; held
// buffers come back to the pool.
func TestReassemblerBufferCap(t *testing.T) {
	a, l, st := newTestReassembler(4096)
	t0 := time.Unix(1000, 0)
	a.streamFrame(frame(3, 100, strings.Repeat("a", 100), false), 2, t0)
	a.streamFrame(frame(11, 100, strings.Repeat("b", 100), false), 3, t0)
	if l.take() != "" || a.buffered != 2*2048 {
		t.Fatalf("held %d bytes", a.buffered)
	}
	a.streamFrame(frame(3, 300, "c", false), 4, t0) // over the cap
	got := l.take()
	if !strings.HasPrefix(got, "3 gap 0-100; 3 data 100") || st.EarlyGaps == 0 || a.buffered > 4096 {
		t.Fatalf("over the cap: %s (early gaps %d, %d bytes held)", got, st.EarlyGaps, a.buffered)
	}
	a.flush()
	if got := l.take(); !strings.Contains(got, "gap") || len(a.waiting) != 0 || a.buffered != 0 {
		t.Fatalf("flush: %s, %d waiting, %d held", got, len(a.waiting), a.buffered)
	}
}

// A discarded stream closes once its final size is known, holes or not:
// nothing waits for its bytes (before, it stayed open and took one of the
// MaxStreams slots for the session's life).
func TestReassemblerDiscardedStreamCloses(t *testing.T) {
	a, l, _ := newTestReassembler(1 << 20)
	t0 := time.Unix(1000, 0)
	a.streamFrame(frame(3, 0, "abc", false), 1, t0)
	a.streams[3].Discard()
	a.streamFrame(frame(3, 10, "xyz", true), 3, t0)
	if len(a.streams) != 0 || a.buffered != 0 {
		t.Fatalf("discarded stream still open (%d streams, %d bytes held)", len(a.streams), a.buffered)
	}
	if got := l.take(); got != `3 data 0 "abc"` {
		t.Fatalf("events %s", got)
	}
}

// A stream whose FIN was lost is forgotten once idle for the stream idle
// timeout, at the latest a quarter of it later (stream 0 never is), so that such streams do not add up to
// MaxStreams in a long session: a new stream is still accepted, and late
// frames of the forgotten one are counted, not delivered.
func TestReassemblerForgetsIdleStreams(t *testing.T) {
	a, l, st := newTestReassembler(1 << 20)
	a.streamIdle = time.Second
	t0 := time.Unix(1000, 0)
	a.streamFrame(frame(0, 0, "promise", false), 1, t0)
	for i := range uint64(3) { // with stream 0, MaxStreams (4) open streams, whose FIN is lost
		a.streamFrame(frame(3+4*i, 0, "abc", false), 2+i, t0)
	}
	l.take()
	a.forgetIdle(t0.Add(999 * time.Millisecond))
	if len(a.streams) != 4 || st.RefusedStreams != 0 {
		t.Fatalf("%d streams before the idle timeout, %d refused", len(a.streams), st.RefusedStreams)
	}
	a.streamFrame(frame(0, 7, "more", false), 6, t0.Add(time.Second))
	a.forgetIdle(t0.Add(1250 * time.Millisecond)) // it looks every quarter of the timeout
	if len(a.streams) != 1 || a.streams[0] == nil || st.IdleStreams != 3 {
		t.Fatalf("after the idle timeout: streams %v, %d forgotten", a.streams, st.IdleStreams)
	}
	a.streamFrame(frame(19, 0, "new", true), 7, t0.Add(time.Second))
	a.streamFrame(frame(3, 3, "late", true), 8, t0.Add(time.Second))
	if got := l.take(); got != `0 data 7 "more"; 19 data 0 "new"; 19 finish 3` {
		t.Fatalf("events %s", got)
	}
	if st.RefusedStreams != 0 || st.ClosedStreamData != 1 {
		t.Fatalf("stats %+v", st)
	}
}
