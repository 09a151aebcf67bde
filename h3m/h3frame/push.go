package h3frame

import (
	"io"

	"github.com/quic-go/quic-go/quicvarint"
)

// StreamTypePush is the unidirectional stream type of push streams
// (RFC 9114 §6.2.2), the only stream type an h3m session opens.
const StreamTypePush = 0x01

// AppendPushStreamHeader appends the start of a push stream: the stream type
// 0x01 and the push ID (at most MaxVarint).
func AppendPushStreamHeader(b []byte, pushID uint64) []byte {
	b = append(b, StreamTypePush)
	return quicvarint.Append(b, pushID)
}

// PushStreamHeaderLen is the encoded size of a push stream's header.
func PushStreamHeaderLen(pushID uint64) int { return 1 + quicvarint.Len(pushID) }

// ParsePushStreamHeader parses the stream type and push ID at the start of a
// server-initiated unidirectional stream. It returns ErrNeedMore when b ends
// inside them, and an error wrapping ErrMalformed when the stream type is not
// 0x01 (h3m sessions have no control or QPACK streams).
func ParsePushStreamHeader(b []byte) (pushID uint64, n int, err error) {
	st, n1, err := quicvarint.Parse(b)
	if err != nil {
		return 0, 0, ErrNeedMore
	}
	if st != StreamTypePush {
		return 0, 0, malformed("stream type %#x is not a push stream (0x01)", st)
	}
	id, n2, err := quicvarint.Parse(b[n1:])
	if err != nil {
		return 0, 0, ErrNeedMore
	}
	return id, n1 + n2, nil
}

// AppendPushPromise appends a whole PUSH_PROMISE frame: push ID and the
// encoded field section of the promised request.
func AppendPushPromise(b []byte, pushID uint64, fieldBlock []byte) []byte {
	b = AppendFrameHeader(b, TypePushPromise, uint64(quicvarint.Len(pushID)+len(fieldBlock)))
	b = quicvarint.Append(b, pushID)
	return append(b, fieldBlock...)
}

// PushPromiseLen is the encoded size of a PUSH_PROMISE frame.
func PushPromiseLen(pushID uint64, fieldBlockLen int) int {
	l := quicvarint.Len(pushID) + fieldBlockLen
	return FrameHeaderLen(TypePushPromise, uint64(l)) + l
}

// ParsePushPromisePayload splits a PUSH_PROMISE payload into the push ID
// and the field section (a sub-slice of p).
func ParsePushPromisePayload(p []byte) (pushID uint64, fieldBlock []byte, err error) {
	id, n, err := quicvarint.Parse(p)
	if err != nil {
		return 0, nil, malformed("PUSH_PROMISE payload of %d bytes ends inside the push ID", len(p))
	}
	return id, p[n:], nil
}

// AppendCancelPush appends a whole CANCEL_PUSH frame.
func AppendCancelPush(b []byte, pushID uint64) []byte {
	b = AppendFrameHeader(b, TypeCancelPush, uint64(quicvarint.Len(pushID)))
	return quicvarint.Append(b, pushID)
}

// ParseCancelPushPayload parses a CANCEL_PUSH payload: exactly one push ID.
func ParseCancelPushPayload(p []byte) (pushID uint64, err error) {
	id, n, err := quicvarint.Parse(p)
	switch {
	case err == io.EOF:
		return 0, malformed("empty CANCEL_PUSH payload")
	case err != nil:
		return 0, malformed("CANCEL_PUSH payload of %d bytes ends inside the push ID", len(p))
	case n != len(p):
		return 0, malformed("CANCEL_PUSH payload has %d bytes after the push ID", len(p)-n)
	}
	return id, nil
}

// AppendHeadersFrame appends a whole HEADERS frame carrying fieldBlock.
func AppendHeadersFrame(b []byte, fieldBlock []byte) []byte {
	b = AppendFrameHeader(b, TypeHeaders, uint64(len(fieldBlock)))
	return append(b, fieldBlock...)
}
