package h3m

import (
	"github.com/h3m-project/h3m/h3m/h3frame"
)

// This file holds the parser of stream 0, the control stream of a session.

// controlParser reads stream 0: PUSH_PROMISE and CANCEL_PUSH frames. Other
// frames are ignored and counted, as the draft requires. The transport
// receiver calls its methods with its own lock held; each takes the
// Receiver's lock for the whole call (see Receiver.mu for the lock order).
type controlParser struct {
	r      *Receiver
	hdr    headerAcc
	inBody bool
	ftype  h3frame.Type
	remain uint64
	keep   bool   // buffering the payload (vs skipping it)
	buf    []byte // buffered payload
	desync bool
}

// Data implements mquic.StreamHandler.
func (c *controlParser) Data(off uint64, p []byte) {
	r := c.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.desync {
		// After a loss, every STREAM frame start is a candidate frame start:
		// senders start each promise at a new STREAM frame.
		c.desync = false
		c.inBody, c.buf = false, c.buf[:0]
		c.hdr.reset()
	}
	for len(p) > 0 {
		if !c.inBody {
			var t h3frame.Type
			var length uint64
			used, done, err := c.hdr.feed(p, func(b []byte) (int, error) {
				var n int
				var err error
				t, length, n, err = h3frame.ParseFrameHeader(b)
				return n, err
			})
			if err != nil {
				r.stats.MalformedFrames++
				c.desync = true
				return
			}
			p = p[used:]
			if !done {
				return
			}
			c.ftype, c.remain, c.inBody = t, length, true
			c.keep = t == h3frame.TypePushPromise || t == h3frame.TypeCancelPush
			if c.keep && length > uint64(r.maxF) {
				r.stats.MalformedFrames++
				c.desync = true
				return
			}
			if !c.keep {
				r.stats.IgnoredFrames++
			}
			c.buf = c.buf[:0]
		}
		k := min(c.remain, uint64(len(p)))
		if c.keep {
			c.buf = append(c.buf, p[:k]...)
		}
		p = p[k:]
		c.remain -= k
		if c.remain == 0 {
			c.inBody = false
			if c.keep {
				c.frameLocked(c.ftype, c.buf)
			}
		}
	}
}

func (c *controlParser) frameLocked(t h3frame.Type, payload []byte) {
	r := c.r
	switch t {
	case h3frame.TypePushPromise:
		pushID, block, err := h3frame.ParsePushPromisePayload(payload)
		if err != nil {
			r.stats.MalformedFrames++
			return
		}
		fields, err := h3frame.ParseFieldSection(block, r.maxF)
		if err != nil {
			r.stats.MalformedFrames++
			r.log.Debug("bad promise field section", "push_id", pushID, "err", err)
			return
		}
		req, err := h3frame.ParseRequest(fields)
		if err != nil {
			r.stats.MalformedFrames++
			r.log.Debug("bad promised request", "push_id", pushID, "err", err)
			return
		}
		r.promiseLocked(pushID, req)
	case h3frame.TypeCancelPush:
		pushID, err := h3frame.ParseCancelPushPayload(payload)
		if err != nil {
			r.stats.MalformedFrames++
			return
		}
		if res := r.pushes[pushID]; res != nil {
			r.failLocked(res, ErrCancelled)
		} else {
			r.stats.IgnoredFrames++ // a push never heard of: nothing to cancel
		}
	}
}

// Gap implements mquic.StreamHandler.
func (c *controlParser) Gap(from, to uint64) {
	c.r.mu.Lock()
	c.desync = true
	c.r.mu.Unlock()
}

// Finish implements mquic.StreamHandler. Stream 0 is never finished by a
// conforming sender.
func (c *controlParser) Finish(uint64) {}

// Reset implements mquic.StreamHandler.
func (c *controlParser) Reset(uint64, uint64) {}
