package mquic

import (
	"time"

	"github.com/h3m-project/h3m/mquic/ranges"
)

// Handler receives the streams of a session. Its methods, and those of the
// StreamHandlers it returns, are called one at a time with the Receiver's
// lock held: on the goroutine that runs Receiver.Run, or on the caller's
// goroutine for Receiver.HandlePacket, HandleManifest and Flush. They must
// not call the Receiver's methods. Packets are opened on other goroutines,
// but reach the handlers in the order they were read.
type Handler interface {
	// OpenStream is called when the first frame of a stream arrives. It
	// returns the StreamHandler for the stream, or nil to ignore the stream:
	// its data is then counted and dropped.
	OpenStream(s *RecvStream) StreamHandler
}

// StreamHandler receives one stream's data in offset order. Slices passed to
// it are valid only during the call.
type StreamHandler interface {
	// Data delivers bytes at offset. Offsets follow on from the previous call
	// unless a Gap was reported between them. Rarely, bytes of a range
	// already reported as a gap arrive late; they are delivered then with
	// their offset (below the previous end) and the range leaves Lost().
	Data(offset uint64, p []byte)
	// Gap reports that [from, to) was lost: packets after it have arrived
	// and it did not follow within the reordering allowance.
	Gap(from, to uint64)
	// Finish reports that the stream ended (FIN) and every byte up to
	// finalSize was delivered or reported as a gap.
	Finish(finalSize uint64)
	// Reset reports that the sender abandoned the stream (RESET_STREAM).
	Reset(code, finalSize uint64)
}

// RecvStream is the receive state of one stream.
type RecvStream struct {
	id        uint64
	h         StreamHandler
	delivered uint64 // bytes below are delivered or reported lost
	received  ranges.Set
	lost      ranges.Set
	pending   []segment // out-of-order data, sorted by offset, all above delivered
	finalSize uint64
	haveFinal bool
	discard   bool
	listed    bool // in Receiver.waiting
	lastData  time.Time
	// prev and next link the open streams from least to most recently
	// active (reassembler.lru).
	prev, next *RecvStream
}

// segment is out-of-order stream data waiting for what comes before it.
type segment struct {
	off  uint64
	data []byte // a pooled buffer
	pn   uint64 // packet that carried it
	at   time.Time
	// fecAt is at less the time the receiver had spent behind its socket
	// until then, in a session with FEC (see reassembler.fecBehind).
	fecAt time.Time
}

func (s *segment) end() uint64 { return s.off + uint64(len(s.data)) }

// ID returns the stream ID.
func (s *RecvStream) ID() uint64 { return s.id }

// Received returns the byte ranges received so far. Read it during a
// handler call; it changes as packets arrive.
func (s *RecvStream) Received() *ranges.Set { return &s.received }

// Lost returns the byte ranges reported as gaps and not received since.
func (s *RecvStream) Lost() *ranges.Set { return &s.lost }

// FinalSize returns the stream's final size, if known from FIN or RESET.
func (s *RecvStream) FinalSize() (uint64, bool) { return s.finalSize, s.haveFinal }

// Delivered returns the offset up to which data was delivered or reported
// lost.
func (s *RecvStream) Delivered() uint64 { return s.delivered }

// Discard stops delivery on the stream: later data is counted and dropped.
// Finish or Reset is still reported.
func (s *RecvStream) Discard() { s.discard = true }
