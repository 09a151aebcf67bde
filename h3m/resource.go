package h3m

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic/ranges"
)

// State is where a received resource stands.
type State int

// The states of a received resource.
const (
	// StateReceiving: promised, not finished yet.
	StateReceiving State = iota
	// StateComplete: every byte arrived and every check passed.
	StateComplete
	// StateIncomplete: the response arrived but body bytes are missing;
	// Missing says which. Repairable with range requests.
	StateIncomplete
	// StateFailed: the resource cannot be completed from what multicast
	// delivered (lost headers, integrity failure, reset, cancelled, too
	// large); Err says why. Fetch it whole over unicast.
	StateFailed
)

func (s State) String() string {
	switch s {
	case StateReceiving:
		return "receiving"
	case StateComplete:
		return "complete"
	case StateIncomplete:
		return "incomplete"
	case StateFailed:
		return "failed"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Reasons a resource fails.
var (
	ErrHeadersLost  = errors.New("h3m: response headers lost")
	ErrTrailersLost = errors.New("h3m: trailers lost")
	ErrPromiseLost  = errors.New("h3m: push stream without a received promise")
	ErrPushLost     = errors.New("h3m: promised push stream never arrived")
	ErrReset        = errors.New("h3m: push reset by the sender")
	ErrCancelled    = errors.New("h3m: push cancelled by the sender")
	ErrTooLarge     = errors.New("h3m: resource larger than the receiver's cap")
	// ErrPushEvicted: a promised push whose stream had not begun was
	// evicted to make room for newer ones (ReceiverConfig.MaxActivePushes:
	// a flood of promises, most likely forged). Fetch it only if the
	// origin's catalogue lists its path.
	ErrPushEvicted   = errors.New("h3m: promised push evicted by newer ones before its stream began")
	ErrMalformedPush = errors.New("h3m: malformed push")
)

// Resource is one pushed HTTP resource as received.
type Resource struct {
	PushID   uint64
	StreamID uint64

	// mu is the last lock of the order mquic.Receiver → Receiver.mu →
	// Resource.mu: the Receiver takes it under its own lock; methods
	// called from outside take it alone.
	mu       sync.Mutex
	request  *h3frame.Request
	response *h3frame.Response
	trailer  http.Header
	state    State
	err      error
	body     Body
	// first and length place the body in its representation: the body
	// holds bytes [first, first+length); length -1 until known.
	first, length int64
	complete      int64 // representation size, -1 unknown
	received      ranges.Set
	close         bool // the response carried "connection: close"
	// digests are the body's digests, computed as its bytes arrive in
	// order (verify.go).
	digests bodyDigests
	// verifying: every byte arrived and the checks wait for the
	// Receiver's worker; the push can no longer fail otherwise.
	verifying bool
	// orphan: reported as EventOrphan; headless: its push ID is unknown
	// (its stream's first packet was lost). seenEnd is where its body
	// ended when its stream finished in sync (-1: unknown).
	orphan, headless bool
	seenEnd          int64

	// Owned by the Receiver (under its lock).
	parser     *pushParser
	since      time.Time // when the promise arrived
	promisedEv eventRef  // its EventPromised while queued
}

// Promised returns when the push's promise arrived (zero if it was lost).
func (r *Resource) Promised() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.since
}

// Request returns the promised request, or nil if its promise was lost.
func (r *Resource) Request() *h3frame.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.request
}

// Response returns the response, or nil before its HEADERS arrived.
func (r *Resource) Response() *h3frame.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.response
}

// Trailer returns the trailer fields, if any arrived.
func (r *Resource) Trailer() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.trailer
}

// Path returns the promised path ("" if the promise was lost).
func (r *Resource) Path() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.request == nil {
		return ""
	}
	return r.request.Path
}

// State returns the resource's state and, for StateFailed, why.
func (r *Resource) State() (State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state, r.err
}

// Body returns where the body was written.
func (r *Resource) Body() Body {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.body
}

// Span returns the part of the representation the push carries: bytes
// [first, first+length) of a representation of complete bytes (-1 when not
// known).
func (r *Resource) Span() (first, length, complete int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, r.length, r.complete
}

// Received returns the representation byte ranges that arrived.
func (r *Resource) Received() []ranges.Range {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ranges.Range(nil), r.received.Ranges()...)
}

// Missing returns the representation byte ranges of the push's span that
// did not arrive. Unknown before the length is known.
func (r *Resource) Missing() []ranges.Range {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.missingLocked()
}

func (r *Resource) missingLocked() []ranges.Range {
	if r.length < 0 {
		return nil
	}
	return r.received.Missing(nil, uint64(r.first), uint64(r.first+r.length))
}

// Orphan reports whether the resource was reported as EventOrphan (its
// promise or header section was lost), and whether its push ID is known
// (false: only StreamID identifies it).
func (r *Resource) Orphan() (orphan, pushIDKnown bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphan, !r.headless
}

// ErrOrphanMismatch is returned by Adopt when the bytes of an orphan do not
// fit the response it is given: they were placed by a framing guess that
// did not hold (or the stream was not that response's).
var ErrOrphanMismatch = errors.New("h3m: orphan push stream does not fit its identified response")

// Adopt gives an orphan (EventOrphan) what its lost promise or header
// section carried, once the caller has identified it: pushID (for one
// whose push ID was lost), req when its promise was lost, and resp when its
// header section was (each ignored when what arrived is kept). Its span then
// comes from the response, and Missing says what to repair. It fails, and
// changes nothing, when the body bytes that arrived do not fit the span.
func (r *Resource) Adopt(pushID uint64, req *h3frame.Request, resp *h3frame.Response) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.orphan {
		return fmt.Errorf("%w: push %d is no orphan", ErrOrphanMismatch, r.PushID)
	}
	first, length, complete := r.first, r.length, r.complete
	if r.response == nil {
		if resp == nil {
			return fmt.Errorf("%w: its header section is needed", ErrOrphanMismatch)
		}
		var err error
		if first, length, complete, err = responseSpan(resp); err != nil {
			return err
		}
	}
	if length < 0 {
		return fmt.Errorf("%w: body length unknown", ErrOrphanMismatch)
	}
	end := uint64(first + length)
	if rs := r.received.Ranges(); len(rs) > 0 && (rs[0].Start < uint64(first) || rs[len(rs)-1].End > end) {
		return fmt.Errorf("%w: bytes [%d,%d) arrived for a body of [%d,%d)", ErrOrphanMismatch, rs[0].Start, rs[len(rs)-1].End, first, end)
	}
	if r.seenEnd >= 0 && uint64(r.seenEnd) != end {
		return fmt.Errorf("%w: its stream ended at body byte %d, the response has %d", ErrOrphanMismatch, r.seenEnd, end)
	}
	if r.response == nil {
		r.response = resp
	}
	if r.request == nil {
		r.request = req
	}
	if r.headless {
		r.PushID = pushID
	}
	r.first, r.length, r.complete = first, length, complete
	return nil
}

// ConnectionClose reports whether the response ended the session.
func (r *Resource) ConnectionClose() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.close
}

// Body is where a received body goes: written at offsets relative to the
// start of the push's span, read back for verification and use. The
// Receiver calls WriteAt on the packet path, with its locks held, about once
// per packet: it must not wait for a disk (DirStorage gathers writes in
// memory and never syncs there). ReadAt and Discard are called off the
// packet path.
type Body interface {
	io.WriterAt
	io.ReaderAt
	// Discard releases the body of a resource that was abandoned.
	Discard() error
}

// Forgetter is a Body that can free what it holds of a byte range the
// Receiver gave up (ReceiverConfig.MaxBodyRanges): the range will be
// written again by a repair, or never read.
type Forgetter interface {
	Forget(off, n int64)
}

// Storage creates the bodies of received resources.
type Storage interface {
	// NewBody returns the body for res; size is its content length, or -1
	// when unknown. The Receiver calls it on the packet path, with its
	// locks held, when a push's response arrives.
	NewBody(res *Resource, size int64) (Body, error)
}

// MemoryStorage keeps bodies in memory, each at most MaxSize bytes. A body
// takes memory as its bytes arrive, in pages of memoryPage bytes: the
// Content-Length a response claims allocates nothing, and bytes scattered
// over a large body take only the pages they fall in.
type MemoryStorage struct {
	MaxSize int64
}

// NewBody implements Storage.
func (m MemoryStorage) NewBody(_ *Resource, size int64) (Body, error) {
	if m.MaxSize > 0 && size > m.MaxSize {
		return nil, fmt.Errorf("%w: %d bytes, cap %d", ErrTooLarge, size, m.MaxSize)
	}
	return &MemoryBody{max: m.MaxSize}, nil
}

// memoryPage is the unit in which a MemoryBody allocates.
const memoryPage = 4 << 10

// MemoryBody is a body held in memory. The zero value is an empty body
// without a size cap.
type MemoryBody struct {
	mu    sync.Mutex
	pages map[int64][]byte // by offset / memoryPage; each memoryPage long
	size  int64            // one past the last byte written
	max   int64
}

// WriteAt implements io.WriterAt, allocating the pages p falls in.
func (b *MemoryBody) WriteAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	end := off + int64(len(p))
	if off < 0 || b.max > 0 && end > b.max {
		return 0, fmt.Errorf("%w: write up to byte %d, cap %d", ErrTooLarge, end, b.max)
	}
	if b.pages == nil {
		b.pages = make(map[int64][]byte)
	}
	n := 0
	for n < len(p) {
		o := off + int64(n)
		pg := b.pages[o/memoryPage]
		if pg == nil {
			pg = make([]byte, memoryPage)
			b.pages[o/memoryPage] = pg
		}
		n += copy(pg[o%memoryPage:], p[n:])
	}
	b.size = max(b.size, end)
	return n, nil
}

// ReadAt implements io.ReaderAt. Bytes never written read as zeros.
func (b *MemoryBody) ReadAt(p []byte, off int64) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if off < 0 || off >= b.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), b.size-off)
	n := 0
	for int64(n) < want {
		o := off + int64(n)
		k := min(int(want)-n, memoryPage-int(o%memoryPage))
		if pg := b.pages[o/memoryPage]; pg != nil {
			copy(p[n:n+k], pg[o%memoryPage:])
		} else {
			clear(p[n : n+k])
		}
		n += k
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Forget implements Forgetter: it frees the pages that lie wholly in
// [off, off+n).
func (b *MemoryBody) Forget(off, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	first, end := (off+memoryPage-1)/memoryPage, (off+n)/memoryPage // pages [first, end)
	if end-first > int64(len(b.pages)) {
		for pg := range b.pages {
			if pg >= first && pg < end {
				delete(b.pages, pg)
			}
		}
		return
	}
	for pg := first; pg < end; pg++ {
		delete(b.pages, pg)
	}
}

// Size returns one past the last byte written.
func (b *MemoryBody) Size() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.size
}

// Bytes returns a copy of the body's bytes, in one slice.
func (b *MemoryBody) Bytes() []byte {
	out := make([]byte, b.Size())
	n, _ := b.ReadAt(out, 0)
	return out[:n]
}

// Discard implements Body.
func (b *MemoryBody) Discard() error {
	b.mu.Lock()
	b.pages, b.size = nil, 0
	b.mu.Unlock()
	return nil
}

func sortByPushID(rs []*Resource) {
	slices.SortFunc(rs, func(a, b *Resource) int { return cmp.Compare(a.PushID, b.PushID) })
}
