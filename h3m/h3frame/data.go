package h3frame

import "github.com/quic-go/quic-go/quicvarint"

// AppendDataHeader appends the header of a DATA frame whose dataLen payload
// bytes the caller appends next.
func AppendDataHeader(b []byte, dataLen int) []byte {
	return AppendFrameHeader(b, TypeData, uint64(dataLen))
}

// DataHeaderLen is the size of a DATA frame header for dataLen bytes.
func DataHeaderLen(dataLen int) int { return FrameHeaderLen(TypeData, uint64(dataLen)) }

// DATA_WITH_OFFSET (draft-hurst-quic-http-data-offset-frame):
//
//	DATA_WITH_OFFSET Frame {
//	  Type (i) = 0xd00,
//	  Length (i),
//	  Offset (i),
//	  Data (..),
//	}
//
// Length covers Offset and Data; Offset is the position of Data in the
// representation (for a range response, the absolute position).

// AppendDataWithOffsetHeader appends everything of a DATA_WITH_OFFSET frame
// before its data: type, length and the offset field. The caller appends the
// dataLen data bytes next.
func AppendDataWithOffsetHeader(b []byte, offset uint64, dataLen int) []byte {
	b = AppendFrameHeader(b, TypeDataWithOffset, uint64(quicvarint.Len(offset)+dataLen))
	return quicvarint.Append(b, offset)
}

// DataWithOffsetHeaderLen is the size of what AppendDataWithOffsetHeader
// appends.
func DataWithOffsetHeaderLen(offset uint64, dataLen int) int {
	ol := quicvarint.Len(offset)
	return FrameHeaderLen(TypeDataWithOffset, uint64(ol+dataLen)) + ol
}

// ParseDataWithOffsetPayload splits a DATA_WITH_OFFSET payload into the
// offset and the data (a sub-slice of p).
func ParseDataWithOffsetPayload(p []byte) (offset uint64, data []byte, err error) {
	off, n, err := quicvarint.Parse(p)
	if err != nil {
		return 0, nil, malformed("DATA_WITH_OFFSET payload of %d bytes ends inside the offset", len(p))
	}
	data = p[n:]
	if uint64(len(data)) > MaxVarint-off {
		return 0, nil, malformed("DATA_WITH_OFFSET data ends beyond 2^62 (offset %d, %d bytes)", off, len(data))
	}
	return off, data, nil
}
