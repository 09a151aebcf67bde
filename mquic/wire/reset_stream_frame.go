package wire

import "github.com/quic-go/quic-go/quicvarint"

// ResetStreamFrame is a RESET_STREAM frame (RFC 9000 §19.4): the sender
// abandons the stream at FinalSize bytes.
type ResetStreamFrame struct {
	StreamID  uint64
	ErrorCode uint64 // application protocol error code
	FinalSize uint64
}

// ParseResetStreamFrame parses the RESET_STREAM frame that starts, with its
// type byte, at b[0].
func ParseResetStreamFrame(b []byte) (ResetStreamFrame, int, error) {
	if len(b) == 0 {
		return ResetStreamFrame{}, 0, &FrameError{Type: FrameTypeResetStream, Field: "frame type", Err: ErrTruncated}
	}
	if b[0] != byte(FrameTypeResetStream) {
		return ResetStreamFrame{}, 0, &FrameError{Type: FrameType(b[0]), Field: "frame type", Err: ErrInvalidValue}
	}
	var f ResetStreamFrame
	pos := 1
	var n int
	var err error
	if f.StreamID, n, err = quicvarint.Parse(b[pos:]); err != nil {
		return ResetStreamFrame{}, 0, &FrameError{Type: FrameTypeResetStream, Field: "stream ID", Err: ErrTruncated}
	}
	pos += n
	if f.ErrorCode, n, err = quicvarint.Parse(b[pos:]); err != nil {
		return ResetStreamFrame{}, 0, &FrameError{Type: FrameTypeResetStream, Field: "error code", Err: ErrTruncated}
	}
	pos += n
	if f.FinalSize, n, err = quicvarint.Parse(b[pos:]); err != nil {
		return ResetStreamFrame{}, 0, &FrameError{Type: FrameTypeResetStream, Field: "final size", Err: ErrTruncated}
	}
	pos += n
	return f, pos, nil
}

// AppendResetStreamFrame appends f as a RESET_STREAM frame, type byte
// included. Its fields must not exceed 2^62-1.
func AppendResetStreamFrame(b []byte, f ResetStreamFrame) []byte {
	b = append(b, byte(FrameTypeResetStream))
	b = quicvarint.Append(b, f.StreamID)
	b = quicvarint.Append(b, f.ErrorCode)
	return quicvarint.Append(b, f.FinalSize)
}

// ResetStreamFrameLen returns the encoded length of f.
func ResetStreamFrameLen(f ResetStreamFrame) int {
	return 1 + quicvarint.Len(f.StreamID) + quicvarint.Len(f.ErrorCode) + quicvarint.Len(f.FinalSize)
}
