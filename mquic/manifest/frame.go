package manifest

import (
	"fmt"

	"github.com/quic-go/quic-go/quicvarint"

	"github.com/h3m-project/h3m/mquic/wire"
)

// FrameType is the type of the MANIFEST frame, an experimental codepoint in
// the style of draft-jholland-quic-multicast's frames (0xff3e8xx), distinct
// from all of them. It is a 4-byte varint on the wire.
//
//	MANIFEST Frame {
//	  Type (i) = 0xff3e8a0,
//	  Length (i),
//	  Manifest (8 * Length),
//	}
//
// The frame may appear in any packet of a session that advertises
// ExtensionID; a receiver of any other session treats it as an unknown frame
// type and drops the packet.
const FrameType wire.FrameType = 0xff3e8a0

// frameTypeLen is the length of FrameType's varint encoding.
var frameTypeLen = quicvarint.Len(uint64(FrameType))

func frameErr(field string, err error) error {
	return &ParseError{What: "MANIFEST frame", Field: field, Err: err}
}

// IsFrame reports whether b starts with the MANIFEST frame type.
func IsFrame(b []byte) bool {
	return len(b) >= frameTypeLen && b[0] == 0x8f && b[1] == 0xf3 && b[2] == 0xe8 && b[3] == 0xa0
}

// FrameLen returns the length of a MANIFEST frame carrying a manifest of n
// bytes.
func FrameLen(n int) int { return frameTypeLen + quicvarint.Len(uint64(n)) + n }

// AppendFrame appends a MANIFEST frame carrying the encoded manifest m.
func AppendFrame(dst, m []byte) []byte {
	dst = quicvarint.Append(dst, uint64(FrameType))
	dst = quicvarint.Append(dst, uint64(len(m)))
	return append(dst, m...)
}

// SplitFrame parses the type and length of the MANIFEST frame at the start
// of b and returns the manifest it carries, unparsed (aliasing b), and the
// frame's length.
func SplitFrame(b []byte) ([]byte, int, error) {
	typ, n, err := quicvarint.Parse(b)
	if err != nil {
		return nil, 0, frameErr("type", wire.ErrTruncated)
	}
	if wire.FrameType(typ) != FrameType || n != frameTypeLen {
		return nil, 0, frameErr("type", fmt.Errorf("%w: 0x%x in %d bytes, want 0x%x in %d", ErrInvalid, typ, n, uint64(FrameType), frameTypeLen))
	}
	length, l, err := quicvarint.Parse(b[n:])
	if err != nil {
		return nil, 0, frameErr("length", wire.ErrTruncated)
	}
	n += l
	if length > uint64(len(b)-n) {
		return nil, 0, frameErr("manifest", wire.ErrTruncated)
	}
	return b[n : n+int(length)], n + int(length), nil
}

// ParseFrame parses the MANIFEST frame at the start of b, type included, and
// the manifest it carries, which must fill it exactly. It returns the
// manifest (aliasing b) and the frame's length. alg is the session
// profile's digest algorithm.
func ParseFrame(b []byte, alg DigestAlg) (Manifest, int, error) {
	body, n, err := SplitFrame(b)
	if err != nil {
		return Manifest{}, 0, err
	}
	m, ml, err := Parse(body, alg)
	if err != nil {
		return Manifest{}, 0, err
	}
	if ml != len(body) {
		return Manifest{}, 0, frameErr("length", fmt.Errorf("%w: %d bytes after the manifest", ErrInvalid, len(body)-ml))
	}
	return m, n, nil
}
