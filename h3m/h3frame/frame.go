// Package h3frame encodes and decodes the HTTP/3 frames (RFC 9114 §7) and
// QPACK field sections (RFC 9204) that an h3m session carries: PUSH_PROMISE
// on the reserved stream 0, push streams of HEADERS and DATA (or, in
// -data-offset sessions, DATA_WITH_OFFSET), and CANCEL_PUSH.
//
// Field sections never use the QPACK dynamic table (draft §5.3): Required
// Insert Count and Base are 0, and every section decodes on its own, so a
// receiver that joins late can read any of them.
//
// Parsers take whole byte slices and never read past them. The frame-header
// and push-stream-header parsers report ErrNeedMore when the slice ends too
// early, so stream reassemblers can wait for more bytes; payload parsers take
// a complete payload and report malformed ones with errors wrapping
// ErrMalformed.
package h3frame

import (
	"errors"
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// ErrNeedMore reports that the bytes end inside a frame header, a frame or a
// stream header: not malformed, just incomplete.
var ErrNeedMore = errors.New("h3frame: need more bytes")

// ErrMalformed is wrapped by every error about a malformed frame payload or
// stream header (RFC 9114 H3_FRAME_ERROR / H3_STREAM_CREATION_ERROR).
var ErrMalformed = errors.New("h3frame: malformed")

// MaxVarint is the largest value a QUIC variable-length integer holds,
// 2^62-1; push IDs, lengths and offsets cannot be larger.
const MaxVarint = quicvarint.Max

// Type is an HTTP/3 frame type.
type Type uint64

// The frame types of RFC 9114 §7.2 and DATA_WITH_OFFSET.
const (
	TypeData        Type = 0x00
	TypeHeaders     Type = 0x01
	TypeCancelPush  Type = 0x03
	TypeSettings    Type = 0x04
	TypePushPromise Type = 0x05
	TypeGoAway      Type = 0x07
	TypeMaxPushID   Type = 0x0d
	// TypeDataWithOffset is DATA_WITH_OFFSET of
	// draft-hurst-quic-http-data-offset-frame (the -01 codepoint), allowed in
	// sessions whose protocol-id carries the data-offset experiment.
	TypeDataWithOffset Type = 0xd00
)

// String returns the frame type's name, "reserved(0x..)" for grease types and
// "unknown(0x..)" otherwise.
func (t Type) String() string {
	switch t {
	case TypeData:
		return "DATA"
	case TypeHeaders:
		return "HEADERS"
	case TypeCancelPush:
		return "CANCEL_PUSH"
	case TypeSettings:
		return "SETTINGS"
	case TypePushPromise:
		return "PUSH_PROMISE"
	case TypeGoAway:
		return "GOAWAY"
	case TypeMaxPushID:
		return "MAX_PUSH_ID"
	case TypeDataWithOffset:
		return "DATA_WITH_OFFSET"
	}
	if t.IsReserved() {
		return fmt.Sprintf("reserved(%#x)", uint64(t))
	}
	return fmt.Sprintf("unknown(%#x)", uint64(t))
}

// IsKnown reports whether t is one of the types this package names. Reserved
// (grease) types and every other type are unknown; RFC 9114 §9 says unknown
// frames are ignored.
func (t Type) IsKnown() bool {
	switch t {
	case TypeData, TypeHeaders, TypeCancelPush, TypeSettings, TypePushPromise, TypeGoAway, TypeMaxPushID, TypeDataWithOffset:
		return true
	}
	return false
}

// IsReserved reports whether t is a reserved (grease) type 0x1f*N+0x21
// (RFC 9114 §7.2.8).
func (t Type) IsReserved() bool { return t >= 0x21 && (t-0x21)%0x1f == 0 }

// IsHTTP2Only reports whether t is an HTTP/2 frame type with no HTTP/3
// equivalent (PRIORITY 0x02, PING 0x06, WINDOW_UPDATE 0x08, CONTINUATION
// 0x09), whose receipt RFC 9114 §7.2.8 makes a connection error.
func (t Type) IsHTTP2Only() bool {
	switch t {
	case 0x02, 0x06, 0x08, 0x09:
		return true
	}
	return false
}

// AppendFrameHeader appends a frame header (Type, Length). length must not
// exceed MaxVarint.
func AppendFrameHeader(b []byte, t Type, length uint64) []byte {
	b = quicvarint.Append(b, uint64(t))
	return quicvarint.Append(b, length)
}

// FrameHeaderLen is the encoded size of a frame header.
func FrameHeaderLen(t Type, length uint64) int {
	return quicvarint.Len(uint64(t)) + quicvarint.Len(length)
}

// ParseFrameHeader parses a frame's type and length; n is the header's size.
// It returns ErrNeedMore (not a malformed error) when b ends inside the
// header, so stream parsers can wait for more bytes. Any complete header is
// well-formed; whether its length is acceptable is the caller's policy.
func ParseFrameHeader(b []byte) (t Type, length uint64, n int, err error) {
	v, n1, err := quicvarint.Parse(b)
	if err != nil {
		return 0, 0, 0, ErrNeedMore
	}
	l, n2, err := quicvarint.Parse(b[n1:])
	if err != nil {
		return 0, 0, 0, ErrNeedMore
	}
	return Type(v), l, n1 + n2, nil
}

// ParseFrame parses a whole frame at the start of b: its type, its payload
// (a sub-slice of b) and the frame's total size n. It returns ErrNeedMore
// when b ends inside the frame.
func ParseFrame(b []byte) (t Type, payload []byte, n int, err error) {
	t, length, hn, err := ParseFrameHeader(b)
	if err != nil {
		return 0, nil, 0, err
	}
	if uint64(len(b)-hn) < length {
		return 0, nil, 0, ErrNeedMore
	}
	end := hn + int(length)
	return t, b[hn:end:end], end, nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}
