package h3m

// This file holds the parser of push streams: the push ID, the response,
// the body and trailers, and how the body framing is recovered after a loss
// (spec/http.md, "Framing for loss").

import (
	"errors"
	"fmt"
	"time"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
	"github.com/quic-go/quic-go/quicvarint"
)

// maxHeaderBytes bounds the bytes a frame header, push-stream header or
// DATA_WITH_OFFSET offset can take: two varints.
const maxHeaderBytes = 16

// headerAcc gathers a small header that may arrive split across calls.
type headerAcc struct {
	buf [maxHeaderBytes]byte
	n   int
}

// feed offers p to parse (which reports ErrNeedMore while incomplete) and
// returns how many bytes of p the header took and whether it is complete.
// A header that cannot be complete within maxHeaderBytes is an error.
func (a *headerAcc) feed(p []byte, parse func(b []byte) (int, error)) (used int, done bool, err error) {
	if a.n == 0 {
		n, err := parse(p)
		switch {
		case err == nil:
			return n, true, nil
		case errors.Is(err, h3frame.ErrNeedMore) && len(p) < maxHeaderBytes:
			a.n = copy(a.buf[:], p)
			return len(p), false, nil
		default:
			return 0, false, err
		}
	}
	had := a.n
	take := copy(a.buf[a.n:], p)
	n, err := parse(a.buf[:a.n+take])
	switch {
	case err == nil:
		a.n = 0
		return n - had, true, nil
	case errors.Is(err, h3frame.ErrNeedMore) && a.n+take < maxHeaderBytes:
		a.n += take
		return take, false, nil
	default:
		a.n = 0
		return 0, false, err
	}
}

func (a *headerAcc) reset() { a.n = 0 }

// parseOffset parses a DATA_WITH_OFFSET offset varint.
func parseOffset(b []byte) (uint64, int, error) {
	v, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, 0, h3frame.ErrNeedMore
	}
	return v, n, nil
}

// pushParser reads one push stream: the push ID, HEADERS, the body in DATA
// or DATA_WITH_OFFSET frames, and optional trailers. The transport receiver
// calls its methods with its own lock held; each takes the Receiver's lock
// for the whole call, and the Resource's while it touches the resource (see
// Receiver.mu for the lock order). Per packet it allocates nothing and
// reads no clock.
type pushParser struct {
	r   *Receiver
	s   *mquic.RecvStream
	res *Resource

	pos      uint64 // stream offset of the next byte
	hdr      headerAcc
	hdrStart uint64 // stream offset where the header being read began
	phase    int
	ftype    h3frame.Type
	// remain is what is left of the current frame's payload.
	remain uint64
	buf    []byte // buffered HEADERS payload

	bodyOff uint64 // representation offset of the next body byte
	bodyEnd uint64 // highest representation offset written

	// What is known of the body framing, to place data after a loss.
	s0      uint64 // stream offset of the first body frame
	haveS0  bool
	d, hlen uint64 // payload size and header size of full DATA frames
	haveD   bool
	uniform bool // every DATA frame so far had size d (except a last one)
	short   bool // a shorter DATA frame was seen: it must be the last
	verify  bool // framing was inferred after a loss: check the next header

	headersDone bool
	// orphan: the header section was lost and the body is kept without it
	// (ReceiverConfig.KeepOrphans); its framing is learnt from what follows.
	orphan      bool
	trailers    bool
	trailerLost bool
	desync      bool // framing lost; try to recover at the next STREAM frame
	dead        bool // nothing more can be placed
	finished    bool
	// heard is set by every call from the transport; the expiry tick
	// clears it and, when it finds it clear, counts quiet time from
	// quietSince. Per-packet calls thus never read the clock.
	heard      bool
	quietSince time.Time
}

const (
	phStreamHeader = iota
	phFrameHeader
	phOffset // DATA_WITH_OFFSET offset field
	phPayload
)

// Data implements mquic.StreamHandler.
func (pp *pushParser) Data(off uint64, p []byte) {
	r := pp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	pp.heard = true
	if off < pp.pos {
		return // late bytes of a reported gap: left for repair
	}
	if pp.dead {
		pp.pos = off + uint64(len(p))
		return
	}
	if pp.desync {
		used, ok := pp.resync(off, p)
		if !ok {
			pp.pos = off + uint64(len(p))
			return
		}
		p = p[used:]
		pp.pos = off + uint64(used)
	}
	if err := pp.feed(p); err != nil {
		pp.failLocked(err)
	}
}

func (pp *pushParser) failLocked(err error) {
	pp.dead = true
	pp.s.Discard()
	if pp.res != nil {
		pp.r.failLocked(pp.res, err)
	}
}

// feed parses p, which continues the stream at pp.pos in sync.
func (pp *pushParser) feed(p []byte) error {
	r := pp.r
	for len(p) > 0 && !pp.dead {
		switch pp.phase {
		case phStreamHeader:
			var pushID uint64
			used, done, err := pp.hdr.feed(p, func(b []byte) (n int, err error) {
				pushID, n, err = h3frame.ParsePushStreamHeader(b)
				return n, err
			})
			if err != nil {
				pp.dead = true
				pp.s.Discard()
				r.stats.MalformedFrames++
				return nil
			}
			pp.advance(&p, used)
			if !done {
				return nil
			}
			res := r.resourceLocked(pushID)
			if res == nil {
				pp.dead = true
				pp.s.Discard()
				return nil
			}
			if st, _ := res.State(); st != StateReceiving {
				// Settled already (cancelled, evicted): nothing more of it
				// is kept.
				pp.dead = true
				pp.s.Discard()
				r.stats.IgnoredFrames++
				return nil
			}
			if res.parser != nil {
				// A second stream for one push ID: ignore it.
				pp.dead = true
				pp.s.Discard()
				r.stats.MalformedFrames++
				return nil
			}
			res.parser = pp
			res.StreamID = pp.s.ID()
			r.byStream[pp.s.ID()] = res
			pp.res = res
			pp.phase = phFrameHeader
		case phFrameHeader:
			var t h3frame.Type
			var length uint64
			if pp.hdr.n == 0 {
				pp.hdrStart = pp.pos
			}
			used, done, err := pp.hdr.feed(p, func(b []byte) (n int, err error) {
				t, length, n, err = h3frame.ParseFrameHeader(b)
				return n, err
			})
			if err != nil {
				return fmt.Errorf("%w: %v", ErrMalformedPush, err)
			}
			pp.advance(&p, used)
			if !done {
				return nil
			}
			if err := pp.frameStart(t, length, pp.pos-pp.hdrStart); err != nil {
				return err
			}
		case phOffset:
			var off uint64
			used, done, err := pp.hdr.feed(p, func(b []byte) (n int, err error) {
				off, n, err = parseOffset(b)
				return n, err
			})
			if err != nil || (done && uint64(used) > pp.remain) {
				return fmt.Errorf("%w: DATA_WITH_OFFSET offset", ErrMalformedPush)
			}
			pp.advance(&p, used)
			if !done {
				return nil
			}
			pp.remain -= uint64(used)
			pp.bodyOff = off
			pp.phase = phPayload
			if pp.remain == 0 {
				pp.phase = phFrameHeader
			}
		case phPayload:
			k := min(pp.remain, uint64(len(p)))
			chunk := p[:k]
			switch pp.ftype {
			case h3frame.TypeData, h3frame.TypeDataWithOffset:
				if err := pp.body(chunk); err != nil {
					return err
				}
			case h3frame.TypeHeaders:
				pp.buf = append(pp.buf, chunk...)
			}
			pp.advance(&p, int(k))
			pp.remain -= k
			if pp.remain == 0 {
				pp.phase = phFrameHeader
				if pp.ftype == h3frame.TypeHeaders {
					if err := pp.headers(pp.buf); err != nil {
						return err
					}
					pp.buf = pp.buf[:0]
				}
			}
		}
	}
	return nil
}

func (pp *pushParser) advance(p *[]byte, n int) {
	*p = (*p)[n:]
	pp.pos += uint64(n)
}

// frameStart handles a parsed frame header; hl is its length in bytes.
func (pp *pushParser) frameStart(t h3frame.Type, length, hl uint64) error {
	r := pp.r
	pp.ftype, pp.remain = t, length
	pp.phase = phPayload
	switch t {
	case h3frame.TypeHeaders:
		if length > uint64(r.maxF) {
			return fmt.Errorf("%w: %d-byte field section exceeds %d", ErrTooLarge, length, r.maxF)
		}
		if pp.headersDone {
			pp.trailers = true
		}
		pp.buf = pp.buf[:0]
	case h3frame.TypeData:
		if !pp.headersDone || pp.trailers {
			return fmt.Errorf("%w: DATA outside the body", ErrMalformedPush)
		}
		if pp.r.cfg.Profile.DataOffset {
			return fmt.Errorf("%w: DATA in a data-offset session", ErrMalformedPush)
		}
		if pp.verify {
			pp.verify = false
			if length > pp.d {
				pp.giveUp()
				pp.phase = phFrameHeader
				return nil
			}
		}
		pp.learnFraming(length, hl)
	case h3frame.TypeDataWithOffset:
		if !pp.headersDone || pp.trailers {
			return fmt.Errorf("%w: DATA_WITH_OFFSET outside the body", ErrMalformedPush)
		}
		if !pp.r.cfg.Profile.DataOffset {
			return fmt.Errorf("%w: DATA_WITH_OFFSET in a session without the data-offset experiment", ErrMalformedPush)
		}
		pp.phase = phOffset
	case h3frame.TypePushPromise, h3frame.TypeCancelPush, h3frame.TypeSettings, h3frame.TypeGoAway, h3frame.TypeMaxPushID:
		// Prohibited or out of place on a push stream: ignored and counted
		// (the draft: receivers MUST ignore prohibited frames).
		r.stats.IgnoredFrames++
		pp.phase = phPayload
		pp.ftype = h3frame.Type(1<<62 - 1) // skip
	default:
		r.stats.IgnoredFrames++
	}
	if pp.remain == 0 && pp.phase == phPayload {
		pp.phase = phFrameHeader
		if t == h3frame.TypeHeaders {
			return pp.headers(nil)
		}
	}
	return nil
}

// learnFraming records the DATA frame sizes seen while in sync, so that a
// loss can be bridged when the sender uses one size (spec/http.md).
func (pp *pushParser) learnFraming(length, hl uint64) {
	switch {
	case !pp.haveD:
		pp.d, pp.hlen, pp.haveD, pp.uniform = length, hl, true, true
	case pp.short || length > pp.d:
		pp.uniform = false
	case length < pp.d:
		pp.short = true
	}
}

// body places DATA payload bytes at pp.bodyOff.
func (pp *pushParser) body(chunk []byte) error {
	res := pp.res
	res.mu.Lock()
	defer res.mu.Unlock()
	end := pp.bodyOff + uint64(len(chunk))
	if res.length >= 0 && (pp.bodyOff < uint64(res.first) || end > uint64(res.first+res.length)) {
		return fmt.Errorf("%w: body bytes [%d,%d) outside [%d,%d)", ErrMalformedPush, pp.bodyOff, end, res.first, res.first+res.length)
	}
	if res.body == nil {
		return fmt.Errorf("%w: body before headers", ErrMalformedPush)
	}
	rel := int64(pp.bodyOff) - res.first
	if _, err := res.body.WriteAt(chunk, rel); err != nil {
		return fmt.Errorf("h3m: store body: %w", err)
	}
	pp.r.digestLocked(res, chunk, rel)
	res.received.Add(pp.bodyOff, end)
	if res.received.Count() > pp.r.cfg.MaxBodyRanges {
		pp.r.capBodyRangesLocked(res)
	}
	pp.bodyOff = end
	pp.bodyEnd = max(pp.bodyEnd, end)
	return nil
}

// headers handles a complete HEADERS frame: the response, or trailers.
func (pp *pushParser) headers(block []byte) error {
	r := pp.r
	fields, err := h3frame.ParseFieldSection(block, r.maxF)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedPush, err)
	}
	if pp.trailers {
		h, err := h3frame.ParseTrailers(fields)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrMalformedPush, err)
		}
		pp.res.mu.Lock()
		pp.res.trailer = h
		pp.res.mu.Unlock()
		return nil
	}
	resp, err := h3frame.ParseResponse(fields)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformedPush, err)
	}
	if err := r.headersLocked(pp.res, resp); err != nil {
		return err
	}
	pp.headersDone = true
	pp.s0, pp.haveS0 = pp.pos, true
	pp.bodyOff = uint64(pp.res.first)
	if pp.res.close {
		r.ending = pp.res
	}
	r.emitLocked(EventHeaders, pp.res)
	return nil
}

// Gap implements mquic.StreamHandler.
func (pp *pushParser) Gap(from, to uint64) {
	r := pp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	pp.heard = true
	if from < pp.pos {
		from = pp.pos
	}
	if to <= from {
		return
	}
	defer func() { pp.pos = to }()
	if pp.dead {
		return
	}
	n := to - from
	body := pp.ftype == h3frame.TypeData || pp.ftype == h3frame.TypeDataWithOffset
	if pp.phase == phPayload && body && n <= pp.remain {
		// The loss is inside a body frame: its bytes are simply missing.
		pp.bodyOff += n
		pp.remain -= n
		if pp.remain == 0 {
			pp.phase = phFrameHeader
		}
		return
	}
	pp.hdr.reset()
	switch {
	case pp.res == nil && r.cfg.KeepOrphans && r.headlessLocked(pp):
		// The push ID itself was lost: the stream is kept as an orphan,
		// for the caller to identify by its stream ID.
		pp.becomeOrphan(false)
	case pp.res == nil:
		// The push ID itself was lost: the promise will expire unanswered
		// and be fetched over unicast.
		pp.dead = true
		pp.s.Discard()
	case !pp.headersDone && r.cfg.KeepOrphans && pp.ensureBody():
		// Where the lost header section ends is known when its frame
		// header arrived.
		pp.becomeOrphan(pp.phase == phPayload && pp.ftype == h3frame.TypeHeaders)
	case !pp.headersDone:
		pp.failLocked(ErrHeadersLost)
	case pp.trailers:
		pp.trailerLost = true
		pp.dead = true
	default:
		pp.desync = true
		pp.phase = phFrameHeader
	}
}

// becomeOrphan switches pp, whose header section was lost, to reading its
// body without it. knownEnd: the HEADERS frame's header arrived, so the
// body framing starts where that frame ends.
func (pp *pushParser) becomeOrphan(knownEnd bool) {
	pp.orphan, pp.headersDone, pp.desync = true, true, true
	pp.bodyOff, pp.buf = 0, pp.buf[:0]
	if knownEnd {
		pp.s0, pp.haveS0 = pp.pos+pp.remain, true
	}
	pp.phase = phFrameHeader
}

// ensureBody gives pp's resource, whose header section was lost, a body of
// unknown size to keep what follows in, and reports whether it has one.
func (pp *pushParser) ensureBody() bool {
	res := pp.res
	res.mu.Lock()
	defer res.mu.Unlock()
	if res.body != nil {
		return true
	}
	body, err := pp.r.cfg.Storage.NewBody(res, -1)
	if err != nil {
		return false
	}
	res.body = body
	return true
}

// resync tries to recover the body framing at off, the start of a STREAM
// frame after a loss. It returns how many bytes of p to skip before normal
// parsing resumes, or false to drop p.
func (pp *pushParser) resync(off uint64, p []byte) (int, bool) {
	r := pp.r
	res := pp.res
	res.mu.Lock()
	first, length := res.first, res.length
	res.mu.Unlock()
	if r.cfg.Profile.DataOffset {
		// Every DATA_WITH_OFFSET frame says where it goes: a frame that
		// starts this STREAM frame can be read as it is.
		t, _, _, err := h3frame.ParseFrameHeader(p)
		if err != nil || (t != h3frame.TypeDataWithOffset && t != h3frame.TypeHeaders) {
			return 0, false
		}
		if t == h3frame.TypeHeaders {
			pp.trailers = true
		}
		pp.desync = false
		r.stats.Resyncs++
		return 0, true
	}
	if !pp.haveS0 && pp.orphan {
		// An orphan whose header section's end is unknown: every DATA
		// frame begins a STREAM frame and all but the last have one size
		// (spec/http.md), so the first one seen gives the frame size and,
		// the header section fitting in one frame's size, where the body
		// framing began. A wrong guess is caught when the orphan is
		// adopted (Resource.Adopt) or verified.
		t, l, hl, err := h3frame.ParseFrameHeader(p)
		if err != nil || t != h3frame.TypeData || l == 0 {
			return 0, false // a piece of a frame, or trailers: try the next
		}
		fs := uint64(hl) + l
		pp.s0 = off % fs
		if pp.s0 == 0 {
			pp.s0 = fs
		}
		pp.haveS0 = true
		pp.d, pp.hlen, pp.haveD, pp.uniform = l, uint64(hl), true, true
	}
	if !pp.haveS0 {
		return 0, false
	}
	if !pp.haveD {
		// The first DATA frame was lost: learn the size from this one if
		// its position fits a uniform framing.
		t, l, hl, err := h3frame.ParseFrameHeader(p)
		if err != nil || t != h3frame.TypeData || l == 0 {
			pp.giveUp()
			return 0, false
		}
		if (off-pp.s0)%(uint64(hl)+l) != 0 {
			pp.giveUp()
			return 0, false
		}
		pp.d, pp.hlen, pp.haveD, pp.uniform = l, uint64(hl), true, true
	}
	if !pp.uniform {
		pp.giveUp()
		return 0, false
	}
	fs := pp.hlen + pp.d
	rel := off - pp.s0
	k, w := rel/fs, rel%fs
	skip := uint64(0)
	if w != 0 && w < pp.hlen {
		// Inside a frame header: resume at the next frame.
		skip = fs - w
		if skip >= uint64(len(p)) {
			return 0, false
		}
		k, w = k+1, 0
	}
	pp.desync = false
	r.stats.Resyncs++
	if w == 0 {
		pp.phase = phFrameHeader
		pp.bodyOff = uint64(first) + k*pp.d
		pp.verify = true
		return int(skip), true
	}
	// Inside a frame's payload.
	pp.bodyOff = uint64(first) + k*pp.d + (w - pp.hlen)
	pp.remain = pp.d - (w - pp.hlen)
	if length >= 0 {
		pp.remain = min(pp.remain, uint64(first+length)-pp.bodyOff)
	}
	pp.ftype = h3frame.TypeData
	pp.phase = phPayload
	pp.verify = true
	return 0, true
}

func (pp *pushParser) giveUp() {
	pp.dead = true
	pp.r.stats.Desyncs++
}

// Finish implements mquic.StreamHandler.
func (pp *pushParser) Finish(uint64) {
	r := pp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if pp.phase == phPayload && pp.ftype == h3frame.TypeHeaders && pp.remain > 0 && pp.res != nil && !pp.headersDone {
		pp.failLocked(ErrHeadersLost)
		return
	}
	r.finishPushLocked(pp, true)
}

// Reset implements mquic.StreamHandler.
func (pp *pushParser) Reset(code, finalSize uint64) {
	r := pp.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if pp.res != nil {
		r.failLocked(pp.res, fmt.Errorf("%w (code %#x)", ErrReset, code))
	}
}
