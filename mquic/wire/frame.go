package wire

import (
	"errors"
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"
)

// Sentinel causes wrapped in a FrameError.
var (
	// ErrTruncated means the frame ends before the named field does.
	ErrTruncated = errors.New("truncated")
	// ErrInvalidValue means the named field holds a value RFC 9000 forbids
	// (a FRAME_ENCODING_ERROR or similar in a unicast connection).
	ErrInvalidValue = errors.New("invalid value")
	// ErrNotMinimal means a frame type used a longer varint encoding than
	// needed, which RFC 9000 §12.4 forbids.
	ErrNotMinimal = errors.New("frame type not in its shortest encoding")
	// ErrUnknownFrameType is returned by ParseFrame for a frame type that
	// neither RFC 9000 nor RFC 9221 defines; the Frame's Type holds it.
	// Frames are not self-describing, so nothing after it in the packet can
	// be parsed. It is a sentinel rather than an error carrying the type so
	// that a receiver dropping such packets allocates nothing.
	ErrUnknownFrameType = errors.New("wire: unknown frame type")
)

// FrameError is a malformed frame. errors.Is matches its Err against
// ErrTruncated, ErrInvalidValue and ErrNotMinimal.
type FrameError struct {
	Type  FrameType // the frame's type
	Field string    // the field that is missing or wrong, e.g. "offset"
	Err   error     // why
}

func (e *FrameError) Error() string {
	if e.Field == fieldFrameType && e.Err == ErrTruncated {
		return "wire: frame type: truncated" // the type itself could not be read
	}
	return fmt.Sprintf("wire: %s frame: %s: %v", e.Type, e.Field, e.Err)
}

const fieldFrameType = "frame type"

func (e *FrameError) Unwrap() error { return e.Err }

// Frame is what ParseFrame found. Only the field that matches Type is
// meaningful.
type Frame struct {
	// Type is the frame's type. All eight STREAM types are reported as
	// FrameTypeStream; their flags are reflected in Stream.
	Type        FrameType
	Stream      StreamFrame      // for FrameTypeStream
	ResetStream ResetStreamFrame // for FrameTypeResetStream
	PaddingLen  int              // for FrameTypePadding: the length of the run of 0x00 bytes
}

// ParseFrame parses the frame at the start of b into *f and returns its
// length in bytes. STREAM, RESET_STREAM, PADDING and PING are decoded; every
// other frame type of RFC 9000 and RFC 9221 is validated only as far as
// needed to find its exact length, so that the caller can skip it. PADDING
// consumes the whole run of 0x00 bytes at the start of b.
//
// An unknown frame type returns ErrUnknownFrameType with f.Type set to it; a
// malformed frame a *FrameError naming the field. STREAM data aliases b. The
// STREAM, RESET_STREAM, PADDING and PING paths and unknown types do not
// allocate. After any error f.Type is the type of the frame that failed to
// parse (0 when the type itself is truncated).
func ParseFrame(b []byte, f *Frame) (int, error) {
	if len(b) == 0 {
		*f = Frame{}
		return 0, &FrameError{Field: fieldFrameType, Err: ErrTruncated}
	}
	// Fast path: every defined type fits in a 1-byte varint.
	typ, n := FrameType(b[0]), 1
	if b[0] >= 0x40 {
		v, _, err := quicvarint.Parse(b)
		if err != nil {
			*f = Frame{}
			return 0, &FrameError{Field: fieldFrameType, Err: ErrTruncated}
		}
		typ = FrameType(v)
		if !typ.known() {
			*f = Frame{Type: typ}
			return 0, ErrUnknownFrameType
		}
		*f = Frame{Type: typ}
		return 0, &FrameError{Type: typ, Field: "frame type", Err: ErrNotMinimal}
	}
	switch {
	case typ == FrameTypePadding:
		i := 1
		for i < len(b) && b[i] == 0 {
			i++
		}
		*f = Frame{Type: FrameTypePadding, PaddingLen: i}
		return i, nil
	case typ == FrameTypePing:
		*f = Frame{Type: FrameTypePing}
		return 1, nil
	case typ.IsStream():
		sf, l, err := ParseStreamFrame(b)
		if err != nil {
			*f = Frame{Type: FrameTypeStream}
			return 0, err
		}
		*f = Frame{Type: FrameTypeStream, Stream: sf}
		return l, nil
	case typ == FrameTypeResetStream:
		rs, l, err := ParseResetStreamFrame(b)
		if err != nil {
			*f = Frame{Type: FrameTypeResetStream}
			return 0, err
		}
		*f = Frame{Type: FrameTypeResetStream, ResetStream: rs}
		return l, nil
	case typ.known():
		*f = Frame{Type: typ}
		return skipFrame(typ, b, n)
	}
	*f = Frame{Type: typ}
	return 0, ErrUnknownFrameType
}

// frameReader walks the fields of one frame, turning every short read into
// a FrameError that names the field.
type frameReader struct {
	typ FrameType
	b   []byte
	pos int
}

func (r *frameReader) varint(field string) (uint64, error) {
	v, n, err := quicvarint.Parse(r.b[r.pos:])
	if err != nil {
		return 0, &FrameError{Type: r.typ, Field: field, Err: ErrTruncated}
	}
	r.pos += n
	return v, nil
}

// skip consumes n bytes of the named field.
func (r *frameReader) skip(n uint64, field string) error {
	if n > uint64(len(r.b)-r.pos) {
		return &FrameError{Type: r.typ, Field: field, Err: ErrTruncated}
	}
	r.pos += int(n)
	return nil
}

func (r *frameReader) invalid(field string) error {
	return &FrameError{Type: r.typ, Field: field, Err: ErrInvalidValue}
}
