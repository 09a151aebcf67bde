package wire

import "github.com/quic-go/quic-go/quicvarint"

// StreamFrame is a STREAM frame (RFC 9000 §19.8).
type StreamFrame struct {
	StreamID uint64
	Offset   uint64 // byte offset of Data in the stream
	Data     []byte // aliases the parsed buffer
	Fin      bool   // Data ends the stream
}

// ParseStreamFrame parses the STREAM frame that starts, with its type byte,
// at b[0]. Without the LEN flag the data runs to the end of b. The returned
// Data aliases b (its capacity is cut to its length). It fails on truncation
// and when offset+length exceeds 2^62-1.
func ParseStreamFrame(b []byte) (StreamFrame, int, error) {
	if len(b) == 0 {
		return StreamFrame{}, 0, &FrameError{Type: FrameTypeStream, Field: "frame type", Err: ErrTruncated}
	}
	typ := b[0]
	if !FrameType(typ).IsStream() {
		return StreamFrame{}, 0, &FrameError{Type: FrameType(typ), Field: "frame type", Err: ErrInvalidValue}
	}
	var f StreamFrame
	pos := 1
	v, n, err := quicvarint.Parse(b[pos:])
	if err != nil {
		return StreamFrame{}, 0, &FrameError{Type: FrameTypeStream, Field: "stream ID", Err: ErrTruncated}
	}
	f.StreamID = v
	pos += n
	if typ&streamFlagOff != 0 {
		v, n, err = quicvarint.Parse(b[pos:])
		if err != nil {
			return StreamFrame{}, 0, &FrameError{Type: FrameTypeStream, Field: "offset", Err: ErrTruncated}
		}
		f.Offset = v
		pos += n
	}
	length := uint64(len(b) - pos)
	if typ&streamFlagLen != 0 {
		v, n, err = quicvarint.Parse(b[pos:])
		if err != nil {
			return StreamFrame{}, 0, &FrameError{Type: FrameTypeStream, Field: "length", Err: ErrTruncated}
		}
		pos += n
		if v > uint64(len(b)-pos) {
			return StreamFrame{}, 0, &FrameError{Type: FrameTypeStream, Field: "stream data", Err: ErrTruncated}
		}
		length = v
	}
	// RFC 9000 §19.8: the largest offset delivered on a stream cannot
	// exceed 2^62-1.
	if length > quicvarint.Max-f.Offset {
		return StreamFrame{}, 0, &FrameError{Type: FrameTypeStream, Field: "offset+length", Err: ErrInvalidValue}
	}
	end := pos + int(length)
	f.Data = b[pos:end:end]
	f.Fin = typ&streamFlagFin != 0
	return f, end, nil
}

// AppendStreamFrame appends f as a STREAM frame. withLength sets the LEN
// flag and writes the Length field; without it the data must end the
// packet. The OFF flag is set only when f.Offset > 0, the FIN flag from
// f.Fin. StreamID and Offset+len(Data) must not exceed 2^62-1 (quicvarint
// panics otherwise).
func AppendStreamFrame(b []byte, f StreamFrame, withLength bool) []byte {
	typ := byte(FrameTypeStream)
	if f.Offset > 0 {
		typ |= streamFlagOff
	}
	if withLength {
		typ |= streamFlagLen
	}
	if f.Fin {
		typ |= streamFlagFin
	}
	b = append(b, typ)
	b = quicvarint.Append(b, f.StreamID)
	if f.Offset > 0 {
		b = quicvarint.Append(b, f.Offset)
	}
	if withLength {
		b = quicvarint.Append(b, uint64(len(f.Data)))
	}
	return append(b, f.Data...)
}

// StreamFrameOverhead returns how many bytes AppendStreamFrame writes before
// the data of a frame with these fields: type, stream ID, offset (if > 0)
// and length (if withLength).
func StreamFrameOverhead(streamID, offset uint64, dataLen int, withLength bool) int {
	n := 1 + quicvarint.Len(streamID)
	if offset > 0 {
		n += quicvarint.Len(offset)
	}
	if withLength {
		n += quicvarint.Len(uint64(dataLen))
	}
	return n
}
