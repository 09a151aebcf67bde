package h3m

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic"
)

// Push is one resource to push.
type Push struct {
	// Request is the promised request. Method defaults to GET, Scheme to https.
	Request h3frame.Request
	// Status is the response status; 0 means 200, or 206 with Range.
	Status int
	// Header holds the response fields.
	Header http.Header
	// Body is the representation's data (nil: empty). When it is an
	// io.Seeker, digests are computed before sending and go in the response
	// header; otherwise they go in the trailers.
	Body io.Reader
	// ContentLength is the number of bytes Body yields, or -1 if unknown.
	// With Range it is the length of the part, and Range gives the whole.
	ContentLength int64
	// Range makes the push partial content (206): Body carries bytes
	// [Range.First, Range.First+ContentLength) of a representation of
	// Range.Complete bytes (-1: not known yet, e.g. still growing).
	Range *ContentRange
	// Trailer holds trailer fields sent after the body.
	Trailer http.Header
	// Last marks the last push of the session: its response carries
	// "connection: close" (draft §5.4) and the pusher accepts no more. It
	// is sent once every push started before it has been sent, so that it
	// is the last response indeed: receivers take what is still missing
	// when it arrives as lost.
	Last bool
}

// ContentRange places a partial push inside its representation.
type ContentRange struct {
	First    int64
	Complete int64 // -1: unknown
}

// PushResult describes a push that was sent.
type PushResult struct {
	PushID    uint64
	StreamID  uint64
	BodyBytes int64
}

// Signer adds signature fields to a pushed exchange.
type Signer interface {
	// Sign returns the fields to add to the response for m.
	Sign(m *integrity.Message) (http.Header, error)
}

// PusherConfig configures a Pusher.
type PusherConfig struct {
	// Authority is the :authority of pushes that do not give one: the
	// origin whose resources the session carries.
	Authority string
	// Profile is the session's HTTP-level profile.
	Profile Profile
	// MaxConcurrentResources caps the pushes in progress at once (the
	// session parameter); 0 means unlimited.
	MaxConcurrentResources uint32
	// Digests are the digest algorithms ("SHA-256", "SHA-512") computed
	// over every body; each goes in a Digest (RFC 3230) and a
	// Content-Digest (RFC 9530) field.
	Digests []string
	// Signer, if set, signs every push.
	Signer Signer
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// Pusher pushes HTTP resources over a multicast QUIC session. Its methods
// are safe for concurrent use. It has no goroutine of its own: Push
// packetizes on its caller's goroutine into the mquic.Sender, which its
// owner runs and closes; Close ends the session at the HTTP layer.
type Pusher struct {
	snd *mquic.Sender
	cfg PusherConfig
	log *slog.Logger
	sem chan struct{}

	mu         sync.Mutex
	nextPushID uint64
	ended      bool
	inflight   sync.WaitGroup // every push in progress
	others     sync.WaitGroup // the pushes in progress not marked Last
}

// ErrSessionEnded is returned by Push after the session's last push.
var ErrSessionEnded = errors.New("h3m: session ended")

// NewPusher returns a pusher writing to snd.
func NewPusher(snd *mquic.Sender, cfg PusherConfig) (*Pusher, error) {
	for _, a := range cfg.Digests {
		if _, err := integrity.NewHasher(a); err != nil {
			return nil, fmt.Errorf("h3m: pusher: %w", err)
		}
	}
	if err := checkAllowed("digest-algorithm", cfg.Digests, cfg.Profile.DigestAlgorithms); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Pusher{snd: snd, cfg: cfg, log: cfg.Logger}
	if cfg.MaxConcurrentResources > 0 {
		p.sem = make(chan struct{}, cfg.MaxConcurrentResources)
	}
	return p, nil
}

func checkAllowed(param string, use, allowed []string) error {
	if allowed == nil {
		return nil
	}
	for _, u := range use {
		ok := false
		for _, a := range allowed {
			if strings.EqualFold(a, u) {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("h3m: %s %q is not in the session's advertised set %v", param, u, allowed)
		}
	}
	return nil
}

// Push sends one resource: its PUSH_PROMISE on stream 0, then a push stream
// with HEADERS, the body and any trailers. It blocks while the session has
// max-concurrent-resources pushes in progress, and returns once everything
// is packetized. If the body fails midway, the push stream is reset.
func (p *Pusher) Push(ctx context.Context, push *Push) (*PushResult, error) {
	if p.sem != nil {
		select {
		case p.sem <- struct{}{}:
			defer func() { <-p.sem }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return nil, ErrSessionEnded
	}
	pushID := p.nextPushID
	p.nextPushID++
	if push.Last {
		p.ended = true
	}
	p.inflight.Add(1)
	if !push.Last {
		p.others.Add(1)
	}
	p.mu.Unlock()
	defer p.inflight.Done()
	if push.Last {
		p.others.Wait()
	} else {
		defer p.others.Done()
	}

	res, err := p.push(ctx, pushID, push)
	if err != nil {
		p.log.Warn("push failed", "push_id", pushID, "path", push.Request.Path, "err", err)
		return nil, err
	}
	p.log.Debug("pushed", "push_id", pushID, "stream", res.StreamID, "path", push.Request.Path, "bytes", res.BodyBytes)
	return res, nil
}

func (p *Pusher) push(ctx context.Context, pushID uint64, push *Push) (*PushResult, error) {
	req := push.Request
	if req.Method == "" {
		req.Method = http.MethodGet
	}
	if req.Scheme == "" {
		req.Scheme = "https"
	}
	if req.Authority == "" {
		req.Authority = p.cfg.Authority
	}
	if req.Path == "" || req.Path[0] != '/' {
		return nil, fmt.Errorf("h3m: push %d: path %q must start with /", pushID, req.Path)
	}
	resp := h3frame.Response{Status: push.Status, Header: push.Header.Clone()}
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	if push.Range != nil {
		if resp.Status == 0 {
			resp.Status = http.StatusPartialContent
		}
		if push.ContentLength < 0 {
			return nil, fmt.Errorf("h3m: push %d: partial content needs the part's length", pushID)
		}
		req.Header = req.Header.Clone()
		if req.Header == nil {
			req.Header = http.Header{}
		}
		cr := h3frame.ContentRange{First: push.Range.First, Last: push.Range.First + push.ContentLength - 1, Complete: push.Range.Complete}
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", cr.First, cr.Last))
		resp.Header.Set("Content-Range", cr.String())
	}
	if resp.Status == 0 {
		resp.Status = http.StatusOK
	}
	if push.ContentLength >= 0 {
		resp.Header.Set("Content-Length", strconv.FormatInt(push.ContentLength, 10))
	}
	if resp.Header.Get("Date") == "" {
		resp.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	if push.Last {
		resp.Header.Set("Connection", "close")
	}

	body := push.Body
	if body == nil {
		body = strings.NewReader("")
	}
	trailer := push.Trailer.Clone()
	var hasher *integrity.Hasher
	if len(p.cfg.Digests) > 0 {
		hasher, _ = integrity.NewHasher(p.cfg.Digests...)
		if seeker, ok := body.(io.Seeker); ok {
			start, err := seeker.Seek(0, io.SeekCurrent)
			if err == nil {
				_, err = io.Copy(hasher, body)
			}
			if err == nil {
				_, err = seeker.Seek(start, io.SeekStart)
			}
			if err != nil {
				return nil, fmt.Errorf("h3m: push %d: digest: %w", pushID, err)
			}
			resp.Header.Set("Digest", hasher.Digest())
			resp.Header.Set("Content-Digest", hasher.ContentDigest())
			hasher = nil
		} else {
			body = io.TeeReader(body, hasher)
		}
	}
	if p.cfg.Signer != nil && hasher == nil {
		if err := p.sign(&req, &resp, resp.Header); err != nil {
			return nil, fmt.Errorf("h3m: push %d: %w", pushID, err)
		}
	}

	promise, err := h3frame.AppendFieldSection(nil, h3frame.RequestFields(&req))
	if err != nil {
		return nil, fmt.Errorf("h3m: push %d: request fields: %w", pushID, err)
	}
	headers, err := h3frame.AppendFieldSection(nil, h3frame.ResponseFields(&resp))
	if err != nil {
		return nil, fmt.Errorf("h3m: push %d: response fields: %w", pushID, err)
	}
	st, err := p.snd.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("h3m: push %d: %w", pushID, err)
	}
	// The promise goes first, so a receiver knows the push ID before the
	// push stream's first byte (nghq requires it).
	// The promise and the push stream's head (its push ID and HEADERS) go
	// twice: without either, a receiver cannot tell what the stream's
	// bytes are, and the whole resource must come over unicast instead of
	// only the bytes lost (spec/http.md, "Repeated heads").
	if err := p.writeFrameRepeated(p.snd.Stream0(), h3frame.AppendPushPromise(nil, pushID, promise)); err != nil {
		return nil, fmt.Errorf("h3m: push %d: promise: %w", pushID, err)
	}
	b := h3frame.AppendPushStreamHeader(nil, pushID)
	b = h3frame.AppendHeadersFrame(b, headers)
	if err := p.writeFrameRepeated(st, b); err != nil {
		return nil, p.abandon(st, pushID, fmt.Errorf("headers: %w", err))
	}
	first := int64(0)
	if push.Range != nil {
		first = push.Range.First
	}
	n, err := p.writeBody(ctx, st, body, first)
	if err == nil && push.ContentLength >= 0 && n != push.ContentLength {
		err = fmt.Errorf("body has %d bytes, content-length says %d", n, push.ContentLength)
	}
	if err != nil {
		return nil, p.abandon(st, pushID, err)
	}
	if hasher != nil {
		if trailer == nil {
			trailer = http.Header{}
		}
		trailer.Set("Digest", hasher.Digest())
		trailer.Set("Content-Digest", hasher.ContentDigest())
		if p.cfg.Signer != nil {
			merged := h3frame.MergeTrailer(resp.Header, trailer)
			if err := p.sign(&req, &h3frame.Response{Status: resp.Status, Header: merged}, trailer); err != nil {
				return nil, p.abandon(st, pushID, err)
			}
		}
	}
	if len(trailer) > 0 {
		block, err := h3frame.AppendFieldSection(nil, h3frame.HeaderFields(trailer))
		if err != nil {
			return nil, p.abandon(st, pushID, fmt.Errorf("trailers: %w", err))
		}
		if err := p.writeFrame(st, h3frame.AppendHeadersFrame(nil, block)); err != nil {
			return nil, p.abandon(st, pushID, err)
		}
	}
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("h3m: push %d: %w", pushID, err)
	}
	if push.Last {
		if err := p.snd.Flush(); err != nil {
			return nil, fmt.Errorf("h3m: push %d: %w", pushID, err)
		}
	}
	return &PushResult{PushID: pushID, StreamID: st.ID(), BodyBytes: n}, nil
}

func (p *Pusher) sign(req *h3frame.Request, resp *h3frame.Response, into http.Header) error {
	m := &integrity.Message{
		Method: req.Method, Scheme: req.Scheme, Authority: req.Authority, Path: req.Path,
		Status: resp.Status, RequestHeader: req.Header, ResponseHeader: resp.Header,
	}
	fields, err := p.cfg.Signer.Sign(m)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	for k, v := range fields {
		into[k] = v
	}
	return nil
}

func (p *Pusher) abandon(st *mquic.SendStream, pushID uint64, err error) error {
	// H3_REQUEST_CANCELLED: the push will not complete.
	if rerr := st.Reset(0x010c); rerr != nil {
		p.log.Debug("reset failed", "push_id", pushID, "err", rerr)
	}
	return fmt.Errorf("h3m: push %d abandoned: %w", pushID, err)
}

// writeFrame writes one HTTP/3 frame so that its header never straddles two
// packets: whole in one packet when it fits, otherwise a first chunk that
// holds the header and the rest split freely.
func (p *Pusher) writeFrame(st *mquic.SendStream, frame []byte) error {
	if len(frame) <= p.snd.MaxChunk() {
		return st.WriteChunk(frame)
	}
	if err := st.WriteChunk(frame[:p.snd.MaxChunk()]); err != nil {
		return err
	}
	_, err := st.Write(frame[p.snd.MaxChunk():])
	return err
}

// writeFrameRepeated is writeFrame, with every chunk sent a second time in
// the next packet (mquic.SendStream.WriteChunkRepeated), unless the
// session's receivers take stream bytes only once.
func (p *Pusher) writeFrameRepeated(st *mquic.SendStream, frame []byte) error {
	if p.cfg.Profile.InOrderStreams {
		return p.writeFrame(st, frame)
	}
	for len(frame) > 0 {
		n := min(len(frame), p.snd.MaxChunk())
		if err := st.WriteChunkRepeated(frame[:n]); err != nil {
			return err
		}
		frame = frame[n:]
	}
	return nil
}

// writeBody sends the body as DATA (or DATA_WITH_OFFSET) frames of one
// uniform size, each whole in one packet. The uniform size lets a receiver
// place the bytes that follow a lost packet (spec/http.md).
func (p *Pusher) writeBody(ctx context.Context, st *mquic.SendStream, body io.Reader, first int64) (int64, error) {
	max := p.snd.MaxChunk()
	var hdrMax int
	if p.cfg.Profile.DataOffset {
		hdrMax = h3frame.DataWithOffsetHeaderLen(h3frame.MaxVarint, max)
	} else {
		hdrMax = h3frame.DataHeaderLen(max)
	}
	size := max - hdrMax
	buf := make([]byte, max)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := io.ReadFull(body, buf[hdrMax:hdrMax+size])
		if n > 0 {
			var hdr []byte
			if p.cfg.Profile.DataOffset {
				hdr = h3frame.AppendDataWithOffsetHeader(buf[:0:hdrMax], uint64(first+total), n)
			} else {
				hdr = h3frame.AppendDataHeader(buf[:0:hdrMax], n)
			}
			// Move the header next to the data.
			start := hdrMax - len(hdr)
			copy(buf[start:], hdr)
			if err := st.WriteChunk(buf[start : hdrMax+n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return total, nil
		}
		if rerr != nil {
			return total, fmt.Errorf("read body: %w", rerr)
		}
	}
}

// Close ends the session at the HTTP layer: it waits for the pushes in
// progress and, unless a push marked Last already did, sends a final empty
// push whose response carries "connection: close", then flushes. The
// transport session is the caller's to close.
func (p *Pusher) Close(ctx context.Context) error {
	p.mu.Lock()
	ended := p.ended
	p.mu.Unlock()
	if !ended {
		_, err := p.Push(ctx, &Push{
			Request:       h3frame.Request{Path: EndPath},
			Status:        http.StatusNoContent,
			ContentLength: 0,
			Last:          true,
		})
		if err != nil && !errors.Is(err, ErrSessionEnded) {
			return err
		}
	}
	p.inflight.Wait()
	return p.snd.Flush()
}

// EndPath is the path of the empty push that ends a session when no
// resource push carried "connection: close".
const EndPath = "/.well-known/h3m/end"
