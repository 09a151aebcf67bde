package mquic

import (
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
	reorderThreshold uint64
	reorderDelay     time.Duration
	authReorderDelay time.Duration
	streamIdle       time.Duration
	st               *ReceiverStats // counters it keeps up to date
	idleSweep        time.Time      // when forgetIdle last looked

	streams  map[uint64]*RecvStream
	closed   ranges.Set // finished streams, keyed by streamKey
	waiting  []*RecvStream
	buffered int
	free     [][]byte
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
// stream the profile does not allow, one finished already, or one over
// MaxStreams.
func (a *reassembler) frameStream(id uint64) *RecvStream {
	if !streamAllowed(id) {
		a.st.BadStreamFrames++
		return nil
	}
	return a.stream(id)
}

func (a *reassembler) stream(id uint64) *RecvStream {
	if s := a.streams[id]; s != nil {
		return s
	}
	k := streamKey(id)
	if a.closed.Contains(k, k+1) {
		a.st.ClosedStreamData++
		return nil
	}
	if len(a.streams) >= a.maxStreams {
		a.st.RefusedStreams++
		return nil
	}
	s := &RecvStream{id: id}
	s.h = a.handler.OpenStream(s)
	if s.h == nil {
		s.discard = true
	}
	a.streams[id] = s
	return s
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
	a.st.StreamBytes += added
	switch {
	case s.discard:
		a.st.DiscardedBytes += uint64(len(f.Data))
	case added == 0:
		// Nothing new (possible only from a misbehaving sender; replays are
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
	seg := segment{off: off, data: buf, pn: pn, at: now}
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
		t := seg.at.Add(a.reorderDelay)
		if held && heldPN < seg.pn {
			t = seg.at.Add(max(a.reorderDelay, a.authReorderDelay))
		}
		if d.IsZero() || t.Before(d) {
			d = t
		}
	}
	return d
}

// maybeFinish closes a stream whose every byte up to its final size is
// accounted for.
func (a *reassembler) maybeFinish(s *RecvStream) {
	if !s.haveFinal || s.delivered < s.finalSize || len(s.pending) > 0 {
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
	k := streamKey(s.id)
	a.closed.Add(k, k+1)
}
