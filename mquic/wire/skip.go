package wire

// maxStreams is the largest stream count MAX_STREAMS and STREAMS_BLOCKED
// may carry (RFC 9000 §19.11, §19.14): 2^60.
const maxStreams = 1 << 60

// skipFrame validates a frame this package does not decode and returns its
// length. b starts at the frame type, which occupies typeLen bytes. Layouts
// are those of RFC 9000 §19 and RFC 9221 §4.
func skipFrame(typ FrameType, b []byte, typeLen int) (int, error) {
	r := frameReader{typ: typ, b: b, pos: typeLen}
	var err error
	switch typ {
	case FrameTypeAck, FrameTypeAckECN:
		err = r.ack()
	case FrameTypeStopSending:
		err = r.varints("stream ID", "error code")
	case FrameTypeCrypto:
		var off, length uint64
		if off, err = r.varint("offset"); err != nil {
			break
		}
		if length, err = r.varint("length"); err != nil {
			break
		}
		if length > MaxPacketNumber-off { // same 2^62-1 ceiling as stream offsets
			return 0, r.invalid("offset+length")
		}
		err = r.skip(length, "crypto data")
	case FrameTypeNewToken:
		var length uint64
		if length, err = r.varint("token length"); err != nil {
			break
		}
		if length == 0 {
			return 0, r.invalid("token length") // RFC 9000 §19.7: an empty token is an error
		}
		err = r.skip(length, "token")
	case FrameTypeMaxData, FrameTypeDataBlocked, FrameTypeRetireConnectionID:
		_, err = r.varint(fieldName(typ))
	case FrameTypeMaxStreamData, FrameTypeStreamDataBlocked:
		err = r.varints("stream ID", fieldName(typ))
	case FrameTypeMaxStreamsBidi, FrameTypeMaxStreamsUni, FrameTypeStreamsBlockedBidi, FrameTypeStreamsBlockedUni:
		var v uint64
		if v, err = r.varint("maximum streams"); err == nil && v > maxStreams {
			return 0, r.invalid("maximum streams")
		}
	case FrameTypeNewConnectionID:
		err = r.newConnectionID()
	case FrameTypePathChallenge, FrameTypePathResponse:
		err = r.skip(8, "data")
	case FrameTypeConnectionClose, FrameTypeConnectionCloseApp:
		if _, err = r.varint("error code"); err != nil {
			break
		}
		if typ == FrameTypeConnectionClose {
			if _, err = r.varint("frame type"); err != nil {
				break
			}
		}
		var length uint64
		if length, err = r.varint("reason phrase length"); err != nil {
			break
		}
		err = r.skip(length, "reason phrase")
	case FrameTypeHandshakeDone:
	case FrameTypeDatagram:
		r.pos = len(b)
	case FrameTypeDatagramLen:
		var length uint64
		if length, err = r.varint("length"); err != nil {
			break
		}
		err = r.skip(length, "datagram data")
	default:
		return 0, ErrUnknownFrameType
	}
	if err != nil {
		return 0, err
	}
	return r.pos, nil
}

func fieldName(typ FrameType) string {
	switch typ {
	case FrameTypeMaxData, FrameTypeDataBlocked:
		return "maximum data"
	case FrameTypeMaxStreamData, FrameTypeStreamDataBlocked:
		return "maximum stream data"
	case FrameTypeRetireConnectionID:
		return "sequence number"
	}
	return "value"
}

func (r *frameReader) varints(fields ...string) error {
	for _, f := range fields {
		if _, err := r.varint(f); err != nil {
			return err
		}
	}
	return nil
}

// ack walks an ACK frame (RFC 9000 §19.3), checking that no range reaches
// below packet number 0.
func (r *frameReader) ack() error {
	largest, err := r.varint("largest acknowledged")
	if err != nil {
		return err
	}
	if _, err := r.varint("ACK delay"); err != nil {
		return err
	}
	count, err := r.varint("ACK range count")
	if err != nil {
		return err
	}
	first, err := r.varint("first ACK range")
	if err != nil {
		return err
	}
	if first > largest {
		return r.invalid("first ACK range")
	}
	smallest := largest - first
	// Each range takes at least two bytes; the loop ends at the frame's
	// end whatever count claims.
	for i := uint64(0); i < count; i++ {
		gap, err := r.varint("gap")
		if err != nil {
			return err
		}
		length, err := r.varint("ACK range length")
		if err != nil {
			return err
		}
		// The next range's largest is smallest - gap - 2.
		if smallest < 2 || gap > smallest-2 {
			return r.invalid("gap")
		}
		next := smallest - gap - 2
		if length > next {
			return r.invalid("ACK range length")
		}
		smallest = next - length
	}
	if r.typ == FrameTypeAckECN {
		return r.varints("ECT0 count", "ECT1 count", "ECN-CE count")
	}
	return nil
}

// newConnectionID walks a NEW_CONNECTION_ID frame (RFC 9000 §19.15).
func (r *frameReader) newConnectionID() error {
	seq, err := r.varint("sequence number")
	if err != nil {
		return err
	}
	retire, err := r.varint("retire prior to")
	if err != nil {
		return err
	}
	if retire > seq {
		return r.invalid("retire prior to")
	}
	if err := r.skip(1, "length"); err != nil {
		return err
	}
	l := r.b[r.pos-1]
	if l < 1 || l > MaxConnIDLen {
		return r.invalid("length")
	}
	if err := r.skip(uint64(l), "connection ID"); err != nil {
		return err
	}
	return r.skip(16, "stateless reset token")
}
