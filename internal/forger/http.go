package forger

import (
	"fmt"
	"iter"
	"net/http"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/quic-go/quic-go/quicvarint"
)

// StreamFrame appends a STREAM frame (with its length) to dst: on stream 0
// a one-byte frame at any offset, on a push stream any data, or a frame of
// a sparse stream ID.
func StreamFrame(dst []byte, id, off uint64, data []byte, fin bool) []byte {
	return wire.AppendStreamFrame(dst, wire.StreamFrame{StreamID: id, Offset: off, Data: data, Fin: fin}, true)
}

// Push is a forged push: a PUSH_PROMISE on stream 0 and a push stream with
// the response. NewPush fills it with the forger's next IDs; change any
// field before Packets builds it.
type Push struct {
	PushID   uint64
	StreamID uint64
	Request  h3frame.Request
	Status   int
	// Header is the response header, sent as it is: a Content-Length that
	// disagrees with Body (a huge one, say) is the test's choice.
	Header  http.Header
	Body    []byte
	Trailer http.Header
	// DataOffset writes the body in DATA_WITH_OFFSET frames (sessions of
	// the -data-offset experiment) instead of DATA.
	DataOffset bool
	// NoPromise leaves the promise out; NoStream the push stream; NoFin the
	// FIN of the push stream (the push then never completes).
	NoPromise, NoStream, NoFin bool
}

// NewPush returns a GET push of path with status 200 and no body, taking
// the forger's next push ID and push stream ID.
func (f *Forger) NewPush(path string) Push {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := Push{
		PushID: f.nextPush, StreamID: f.nextStream,
		Request: h3frame.Request{Method: http.MethodGet, Scheme: "https", Authority: "h3m.invalid", Path: path},
		Status:  http.StatusOK, Header: http.Header{},
	}
	f.nextPush++
	f.nextStream += 4
	return p
}

// PromiseFrame returns a PUSH_PROMISE frame (HTTP/3 framing, without the
// STREAM frame around it).
func PromiseFrame(pushID uint64, req *h3frame.Request) ([]byte, error) {
	block, err := h3frame.AppendFieldSection(nil, h3frame.RequestFields(req))
	if err != nil {
		return nil, fmt.Errorf("forger: promise fields: %w", err)
	}
	return h3frame.AppendPushPromise(nil, pushID, block), nil
}

// Packets returns the packets of p, in order: the promise on stream 0 at
// the forger's stream-0 offset (which it moves on), then the push stream.
func (f *Forger) Packets(p *Push) ([][]byte, error) {
	var pkts [][]byte
	if !p.NoPromise {
		fr, err := PromiseFrame(p.PushID, &p.Request)
		if err != nil {
			return nil, err
		}
		pkts = append(pkts, f.Stream0(fr)...)
	}
	if p.NoStream {
		return pkts, nil
	}
	resp := h3frame.Response{Status: p.Status, Header: p.Header}
	block, err := h3frame.AppendFieldSection(nil, h3frame.ResponseFields(&resp))
	if err != nil {
		return nil, fmt.Errorf("forger: response fields: %w", err)
	}
	b := h3frame.AppendPushStreamHeader(nil, p.PushID)
	b = h3frame.AppendHeadersFrame(b, block)
	// One body frame per packet, as a real sender writes them.
	chunk := f.MaxPayload() - 64
	for off := 0; off < len(p.Body); off += chunk {
		data := p.Body[off:min(off+chunk, len(p.Body))]
		if p.DataOffset {
			b = h3frame.AppendDataWithOffsetHeader(b, uint64(off), len(data))
		} else {
			b = h3frame.AppendDataHeader(b, len(data))
		}
		b = append(b, data...)
	}
	if len(p.Trailer) > 0 {
		tb, err := h3frame.AppendFieldSection(nil, h3frame.HeaderFields(p.Trailer))
		if err != nil {
			return nil, fmt.Errorf("forger: trailer fields: %w", err)
		}
		b = h3frame.AppendHeadersFrame(b, tb)
	}
	return append(pkts, f.streamPackets(p.StreamID, 0, b, !p.NoFin)...), nil
}

// Stream0 returns packets carrying b on stream 0 at the forger's stream-0
// offset, which it moves on.
func (f *Forger) Stream0(b []byte) [][]byte {
	f.mu.Lock()
	off := f.stream0
	f.stream0 += uint64(len(b))
	f.mu.Unlock()
	return f.streamPackets(0, off, b, false)
}

// streamPackets cuts b, the bytes of stream id from off, into sealed
// packets, with FIN on the last when fin.
func (f *Forger) streamPackets(id, off uint64, b []byte, fin bool) [][]byte {
	var pkts [][]byte
	room := f.MaxPayload()
	for first := true; first || len(b) > 0; first = false {
		n := min(len(b), room-wire.StreamFrameOverhead(id, off, min(len(b), room), true))
		last := n == len(b)
		pkts = append(pkts, f.Seal(StreamFrame(nil, id, off, b[:n], fin && last)))
		b, off = b[n:], off+uint64(n)
	}
	return pkts
}

// PromiseFlood returns n packets' worth of promises: as many PUSH_PROMISE
// frames as fit in each packet, on stream 0 at the forger's stream-0
// offset, with the forger's next push IDs and the paths path(i) returns,
// i counting from 0. Nothing follows them: no push stream.
func (f *Forger) PromiseFlood(n int, path func(i int) string) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		room := f.MaxPayload() - 16
		var batch []byte
		flush := func() bool {
			if len(batch) == 0 {
				return true
			}
			f.mu.Lock()
			off := f.stream0
			f.stream0 += uint64(len(batch))
			f.mu.Unlock()
			pkt := f.Seal(StreamFrame(nil, 0, off, batch, false))
			batch = batch[:0]
			return yield(pkt)
		}
		for i := range n {
			f.mu.Lock()
			id := f.nextPush
			f.nextPush++
			f.mu.Unlock()
			fr, err := PromiseFrame(id, &h3frame.Request{Method: http.MethodGet, Scheme: "https", Authority: "h3m.invalid", Path: path(i)})
			if err != nil {
				panic(err) // only an unencodable path, a test's bug
			}
			if len(batch)+len(fr) > room && !flush() {
				return
			}
			batch = append(batch, fr...)
		}
		flush()
	}
}

// promisedPushID reads the push ID of a PUSH_PROMISE frame that starts b.
func promisedPushID(b []byte) (uint64, bool) {
	t, payload, _, err := h3frame.ParseFrame(b)
	if err != nil || t != h3frame.TypePushPromise {
		return 0, false
	}
	id, _, err := quicvarint.Parse(payload)
	return id, err == nil
}

// pushStreamID reads the push ID of a push stream header that starts b.
func pushStreamID(b []byte) (uint64, bool) {
	id, _, err := h3frame.ParsePushStreamHeader(b)
	return id, err == nil
}
