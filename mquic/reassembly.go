package mquic

import (
	"cmp"
	"slices"
	"time"

	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/mquic/wire"
)

// reassembler puts the STREAM and RESET_STREAM frames of accepted packets
// back in order for each stream: it delivers data that follows on, holds
// out-of-order data until the hole before it fills or is declared a gap,
// and finishes streams. It is the receiver's counterpart of quic-go's frame
// sorter, kept apart from packet handling, and lives under the Receiver's
// lock.
type reassembler struct {
	handler          Handler
	maxStreams       int
	maxBuffered      int
	maxClosed        int // ranges of closed; 0: no cap
	maxRanges        int // ranges of a stream's received set; 0: no cap
	reorderThreshold uint64
	reorderDelay     time.Duration
	authReorderDelay time.Duration
	streamIdle       time.Duration
	st               *ReceiverStats // counters it keeps up to date
	// bite, when set, is told the name of a cap each time it bites (for
	// a rate-limited log line).
	bite      func(cap string)
	idleSweep time.Time // when forgetIdle last looked

	streams  map[uint64]*RecvStream
	lru      streamList // the open streams, least recently active first
	closed   ranges.Set // finished streams, keyed by streamKey
	waiting  []*RecvStream
	buffered int
	free     [][]byte

	// fecWait, in a session with FEC, is how long a hole may wait while
	// fecPending says a packet before the data after it may still be
	// rebuilt (0: no FEC). That wait counts only time in which the
	// receiver had drained its socket: fecBehind is the time it has spent
	// reading a backlog so far (the repair packets a hole waits for may be
	// in it).
	fecWait    time.Duration
	fecPending func(pn uint64) bool
	fecBehind  time.Duration
}

// streamList is a doubly linked list of streams through RecvStream.prev
// and next.
type streamList struct{ head, tail *RecvStream }

func (l *streamList) pushBack(s *RecvStream) {
	s.prev, s.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
}

func (l *streamList) remove(s *RecvStream) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = nil, nil
}

// touch makes s the most recently active stream.
func (l *streamList) touch(s *RecvStream) {
	if l.tail != s {
		l.remove(s)
		l.pushBack(s)
	}
}

func (a *reassembler) capBit(name string) {
	if a.bite != nil {
		a.bite(name)
	}
}

// streamAllowed reports whether the profile lets a sender use the stream:
// the reserved stream 0 and server-initiated unidirectional streams.
func streamAllowed(id uint64) bool { return id == 0 || id%4 == 3 }

// streamKey maps the allowed stream IDs onto consecutive numbers, so that
// the set of finished streams stays a few ranges.
func streamKey(id uint64) uint64 {
	if id == 0 {
		return 0
	}
	return id/4 + 1
}

// frameStream returns the stream a frame is for, or nil (counted) for a
// stream the profile does not allow or one finished already. A new stream
// over MaxStreams evicts the least recently active one but stream 0.
func (a *reassembler) frameStream(id uint64) *RecvStream {
	if !streamAllowed(id) {
		a.st.BadStreamFrames++
		return nil
	}
	return a.stream(id)
}

func (a *reassembler) stream(id uint64) *RecvStream {
	if s := a.streams[id]; s != nil {
		a.lru.touch(s)
		return s
	}
	k := streamKey(id)
	if a.closed.Contains(k, k+1) {
		a.st.ClosedStreamData++
		return nil
	}
	if len(a.streams) >= a.maxStreams {
		// Stream 0, the session's control stream, is never evicted.
		victim := a.lru.head
		if victim != nil && victim.id == 0 {
			victim = victim.next
		}
		if victim == nil {
			a.st.RefusedStreams++
			return nil
		}
		a.evict(victim)
	}
	s := &RecvStream{id: id}
	s.h = a.handler.OpenStream(s)
	if s.h == nil {
		s.discard = true
	}
	a.streams[id] = s
	a.lru.pushBack(s)
	return s
}

// EvictedCode is the error code of the Reset a StreamHandler gets when its
// stream is evicted: MaxStreams streams were open when another one began,
// and it was the least recently active (ReceiverStats.EvictedStreams).
// Later frames of the stream are dropped as those of a finished one.
const EvictedCode = 1<<62 - 1

// evict abandons an open stream to make room for a new one.
func (a *reassembler) evict(s *RecvStream) {
	a.st.EvictedStreams++
	a.capBit("max-streams")
	if !s.discard {
		s.h.Reset(EvictedCode, s.delivered)
	}
	a.closeStream(s)
}

// streamFrame takes the STREAM frame f of packet pn, accepted at now.
func (a *reassembler) streamFrame(f *wire.StreamFrame, pn uint64, now time.Time) {
	s := a.frameStream(f.StreamID)
	if s == nil {
		return
	}
	end := f.Offset + uint64(len(f.Data))
	if f.Fin {
		if s.haveFinal && s.finalSize != end || s.received.Overlaps(end, 1<<62) {
			a.st.BadStreamFrames++
			return
		}
		s.finalSize, s.haveFinal = end, true
	} else if s.haveFinal && end > s.finalSize {
		a.st.BadStreamFrames++
		return
	}
	s.lastData = now
	added := s.received.Add(f.Offset, end)
	if a.maxRanges > 0 && s.received.Count() > a.maxRanges {
		a.capRanges(s)
	}
	a.st.StreamBytes += added
	switch {
	case s.discard:
		a.st.DiscardedBytes += uint64(len(f.Data))
	case added == 0:
		// Nothing new: the second copy of a repeated chunk (replays are
		// dropped by packet number).
	case end <= s.delivered:
		// Late bytes of a range already reported as a gap.
		s.lost.Remove(f.Offset, end)
		s.h.Data(f.Offset, f.Data)
	case f.Offset <= s.delivered:
		s.h.Data(s.delivered, f.Data[s.delivered-f.Offset:])
		s.delivered = end
		a.drain(s)
	default:
		a.hold(s, f.Offset, f.Data, pn, now)
	}
	a.maybeFinish(s)
}

// resetStream takes a RESET_STREAM frame.
func (a *reassembler) resetStream(f *wire.ResetStreamFrame) {
	s := a.frameStream(f.StreamID)
	if s == nil {
		return
	}
	if s.haveFinal && s.finalSize != f.FinalSize || s.received.Overlaps(f.FinalSize, 1<<62) {
		a.st.BadStreamFrames++
		return
	}
	s.finalSize, s.haveFinal = f.FinalSize, true
	if !s.discard {
		s.h.Reset(f.ErrorCode, f.FinalSize)
	}
	a.closeStream(s)
}

// hold buffers out-of-order data until the hole before it fills or is
// declared lost.
func (a *reassembler) hold(s *RecvStream, off uint64, data []byte, pn uint64, now time.Time) {
	var buf []byte
	if n := len(a.free); n > 0 && cap(a.free[n-1]) >= len(data) {
		buf = a.free[n-1][:len(data)]
		a.free = a.free[:n-1]
	} else {
		buf = make([]byte, len(data), max(len(data), 2048))
	}
	copy(buf, data)
	seg := segment{off: off, data: buf, pn: pn, at: now, fecAt: now.Add(-a.fecBehind)}
	i, _ := slices.BinarySearchFunc(s.pending, off, func(a segment, off uint64) int {
		if a.off < off {
			return -1
		} else if a.off > off {
			return 1
		}
		return 0
	})
	s.pending = slices.Insert(s.pending, i, seg)
	a.buffered += cap(buf)
	if !s.listed {
		s.listed = true
		a.waiting = append(a.waiting, s)
	}
	for a.buffered > a.maxBuffered && len(a.waiting) > 0 {
		// Over the cap: give up waiting on the oldest hole.
		w := a.waiting[0]
		a.st.EarlyGaps++
		a.capBit("max-buffered-bytes")
		a.declareGap(w)
		a.drain(w)
		if len(w.pending) == 0 {
			a.unlist(w)
		}
		a.maybeFinish(w)
	}
}

// drain delivers buffered segments that now follow on.
func (a *reassembler) drain(s *RecvStream) {
	i := 0
	for ; i < len(s.pending) && s.pending[i].off <= s.delivered; i++ {
		seg := &s.pending[i]
		if end := seg.end(); end > s.delivered {
			if !s.discard {
				s.h.Data(s.delivered, seg.data[s.delivered-seg.off:])
			}
			s.delivered = end
		}
		a.release(seg.data)
	}
	if i > 0 {
		s.pending = slices.Delete(s.pending, 0, i)
	}
}

func (a *reassembler) release(b []byte) {
	a.buffered -= cap(b)
	if len(a.free) < 256 {
		a.free = append(a.free, b[:0])
	}
}

// declareGap reports the hole before the stream's first buffered segment.
func (a *reassembler) declareGap(s *RecvStream) {
	if len(s.pending) == 0 {
		return
	}
	from, to := s.delivered, s.pending[0].off
	if to <= from {
		return
	}
	s.lost.Add(from, to)
	a.st.Gaps++
	a.st.GapBytes += to - from
	if !s.discard {
		s.h.Gap(from, to)
	}
	s.delivered = to
}

func (a *reassembler) unlist(s *RecvStream) {
	s.listed = false
	if i := slices.Index(a.waiting, s); i >= 0 {
		a.waiting = slices.Delete(a.waiting, i, i+1)
	}
}

// flush reports every hole still waiting as a gap.
func (a *reassembler) flush() {
	for len(a.waiting) > 0 {
		s := a.waiting[0]
		for len(s.pending) > 0 {
			a.declareGap(s)
			a.drain(s)
		}
		a.unlist(s)
		a.maybeFinish(s)
	}
}

// holeDue reports whether the hole before seg has waited long enough at
// now, given the largest packet number received and, when held is true,
// the oldest packet still held for its manifest (heldPN), which may fill it.
func (a *reassembler) holeDue(seg *segment, largest uint64, heldPN uint64, held bool, now time.Time) bool {
	due := largest >= seg.pn+a.reorderThreshold || now.Sub(seg.at) >= a.reorderDelay
	if due && held && heldPN < seg.pn && now.Sub(seg.at) < a.authReorderDelay {
		return false // an older packet waits for its manifest: it may fill the hole
	}
	if due && a.fecWait > 0 && now.Add(-a.fecBehind).Sub(seg.fecAt) < a.fecWait && a.fecPending(seg.pn) {
		return false // FEC may still rebuild a packet before seg
	}
	return due
}

// expire declares the holes that waited long enough (see holeDue).
func (a *reassembler) expire(largest uint64, heldPN uint64, held bool, now time.Time) {
	for i := 0; i < len(a.waiting); {
		s := a.waiting[i]
		for len(s.pending) > 0 && a.holeDue(&s.pending[0], largest, heldPN, held, now) {
			a.declareGap(s)
			a.drain(s)
		}
		if len(s.pending) == 0 {
			s.listed = false
			a.waiting = slices.Delete(a.waiting, i, i+1)
			a.maybeFinish(s)
			continue
		}
		i++
	}
}

// deadline is when the oldest hole is due by time (zero: none waits).
func (a *reassembler) deadline(heldPN uint64, held bool) time.Time {
	var d time.Time
	for _, s := range a.waiting {
		if len(s.pending) == 0 {
			continue
		}
		seg := &s.pending[0]
		wait := a.reorderDelay
		if held && heldPN < seg.pn {
			wait = max(wait, a.authReorderDelay)
		}
		t := seg.at.Add(wait)
		if a.fecWait > 0 && a.fecPending(seg.pn) {
			t = later(t, seg.fecAt.Add(a.fecBehind+a.fecWait))
		}
		if d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

// maybeFinish closes a stream whose every byte up to its final size is
// accounted for, and a discarded one whose final size is known: nothing
// waits for its bytes.
func (a *reassembler) maybeFinish(s *RecvStream) {
	if !s.haveFinal || !s.discard && (s.delivered < s.finalSize || len(s.pending) > 0) {
		return
	}
	if _, open := a.streams[s.id]; !open {
		return
	}
	if !s.discard {
		s.h.Finish(s.finalSize)
	}
	a.closeStream(s)
}

// forgetIdle closes the streams (but stream 0) that brought nothing for
// streamIdle; it looks at most every streamIdle/4 (the streams are not
// walked per packet).
func (a *reassembler) forgetIdle(now time.Time) {
	if a.streamIdle <= 0 || now.Sub(a.idleSweep) < a.streamIdle/4 {
		return
	}
	a.idleSweep = now
	for _, s := range a.streams {
		if s.id != 0 && now.Sub(s.lastData) >= a.streamIdle {
			a.st.IdleStreams++
			a.closeStream(s)
		}
	}
}

func (a *reassembler) closeStream(s *RecvStream) {
	for i := range s.pending {
		a.release(s.pending[i].data)
	}
	s.pending = nil
	if s.listed {
		a.unlist(s)
	}
	delete(a.streams, s.id)
	a.lru.remove(s)
	k := streamKey(s.id)
	a.closed.Add(k, k+1)
	if a.maxClosed > 0 && a.closed.Count() > a.maxClosed {
		a.pruneClosed()
	}
}

// capRanges brings a stream's received ranges back under maxRanges (a
// sender, or a forger, that scatters small frames): it fills the smallest
// holes below the delivered offset, giving up on late bytes for them (they
// were reported as gaps, to be repaired) and keeping the large holes that
// late data may still fill; when no hole is left below it, it declares the
// first hole above it a gap first.
func (a *reassembler) capRanges(s *RecvStream) {
	a.st.RangesCapped++
	a.capBit("max-stream-ranges")
	target := a.maxRanges * 3 / 4
	for s.received.Count() > target {
		rs := s.received.Ranges()
		below := 0 // holes below the delivered offset: after rs[0..below)
		for below+1 < len(rs) && rs[below].End < s.delivered {
			below++
		}
		if below == 0 {
			if len(s.pending) == 0 {
				return
			}
			a.st.EarlyGaps++
			a.declareGap(s)
			a.drain(s)
			if len(s.pending) == 0 {
				a.unlist(s)
			}
			continue
		}
		holes := make([]ranges.Range, below)
		for i := range holes {
			holes[i] = ranges.Range{Start: rs[i].End, End: rs[i+1].Start}
		}
		slices.SortFunc(holes, func(x, y ranges.Range) int { return cmp.Compare(x.Len(), y.Len()) })
		for _, h := range holes[:min(len(holes), s.received.Count()-target)] {
			s.received.Add(h.Start, h.End)
			s.lost.Remove(h.Start, h.End)
		}
	}
}

// pruneClosed forgets finished streams until the closed set is back to
// three quarters of maxClosed: the single streams farthest from any other
// first (those of a forger's scattered stream IDs; a real sender's finished
// streams form a few long runs). A forgotten stream that gets a frame again
// opens anew; a real sender sends nothing more on a finished stream.
func (a *reassembler) pruneClosed() {
	rs := a.closed.Ranges()
	n := len(rs)
	drop := n - a.maxClosed*3/4
	a.st.ClosedForgotten += uint64(drop)
	a.capBit("max-closed-ranges")
	type cand struct {
		i        int
		len, gap uint64
	}
	cands := make([]cand, n)
	for i, r := range rs {
		gap := uint64(1 << 63)
		if i > 0 {
			gap = r.Start - rs[i-1].End
		}
		if i+1 < n {
			gap = min(gap, rs[i+1].Start-r.End)
		}
		cands[i] = cand{i, r.Len(), gap}
	}
	slices.SortFunc(cands, func(x, y cand) int {
		switch {
		case x.len != y.len:
			return cmp.Compare(x.len, y.len)
		case x.gap != y.gap:
			return cmp.Compare(y.gap, x.gap)
		}
		return cmp.Compare(y.i, x.i)
	})
	gone := make([]bool, n)
	for _, c := range cands[:drop] {
		gone[c.i] = true
	}
	var kept ranges.Set
	for i, r := range rs {
		if !gone[i] {
			kept.Add(r.Start, r.End)
		}
	}
	a.closed = kept
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
