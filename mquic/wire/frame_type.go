package wire

import "fmt"

// FrameType is a QUIC frame type (RFC 9000 §12.4, §19; RFC 9221 §4).
type FrameType uint64

// The frame types of RFC 9000 and RFC 9221.
const (
	FrameTypePadding            FrameType = 0x00
	FrameTypePing               FrameType = 0x01
	FrameTypeAck                FrameType = 0x02
	FrameTypeAckECN             FrameType = 0x03
	FrameTypeResetStream        FrameType = 0x04
	FrameTypeStopSending        FrameType = 0x05
	FrameTypeCrypto             FrameType = 0x06
	FrameTypeNewToken           FrameType = 0x07
	FrameTypeStream             FrameType = 0x08 // 0x08..0x0f: the low 3 bits are the OFF, LEN and FIN flags
	FrameTypeMaxData            FrameType = 0x10
	FrameTypeMaxStreamData      FrameType = 0x11
	FrameTypeMaxStreamsBidi     FrameType = 0x12
	FrameTypeMaxStreamsUni      FrameType = 0x13
	FrameTypeDataBlocked        FrameType = 0x14
	FrameTypeStreamDataBlocked  FrameType = 0x15
	FrameTypeStreamsBlockedBidi FrameType = 0x16
	FrameTypeStreamsBlockedUni  FrameType = 0x17
	FrameTypeNewConnectionID    FrameType = 0x18
	FrameTypeRetireConnectionID FrameType = 0x19
	FrameTypePathChallenge      FrameType = 0x1a
	FrameTypePathResponse       FrameType = 0x1b
	FrameTypeConnectionClose    FrameType = 0x1c // transport error
	FrameTypeConnectionCloseApp FrameType = 0x1d // application error
	FrameTypeHandshakeDone      FrameType = 0x1e
	FrameTypeDatagram           FrameType = 0x30 // RFC 9221, data runs to the end of the packet
	FrameTypeDatagramLen        FrameType = 0x31 // RFC 9221, with a Length field
)

// The flag bits of a STREAM frame's type (RFC 9000 §19.8).
const (
	streamFlagOff = 0x04
	streamFlagLen = 0x02
	streamFlagFin = 0x01
)

// IsStream reports whether t is one of the eight STREAM frame types.
func (t FrameType) IsStream() bool { return t&^0x07 == FrameTypeStream }

// known reports whether ParseFrame understands t.
func (t FrameType) known() bool {
	return t <= FrameTypeHandshakeDone || t == FrameTypeDatagram || t == FrameTypeDatagramLen
}

// String returns the RFC name of the frame type ("STREAM" for all eight
// STREAM types), or "frame 0x..." for an unknown type.
func (t FrameType) String() string {
	if name, _ := t.names(); name != "" {
		return name
	}
	return fmt.Sprintf("frame 0x%x", uint64(t))
}

// QlogName returns the frame_type name the qlog QUIC event schema gives the
// frame type ("stream" for all eight STREAM types, "ack" for both ACK
// types, ...), or "" for a type RFC 9000 and RFC 9221 do not define.
func (t FrameType) QlogName() string {
	_, name := t.names()
	return name
}

// names is the one table of frame-type names: the RFC's and qlog's.
func (t FrameType) names() (rfc, qlog string) {
	if t.IsStream() {
		return "STREAM", "stream"
	}
	switch t {
	case FrameTypePadding:
		return "PADDING", "padding"
	case FrameTypePing:
		return "PING", "ping"
	case FrameTypeAck:
		return "ACK", "ack"
	case FrameTypeAckECN:
		return "ACK_ECN", "ack"
	case FrameTypeResetStream:
		return "RESET_STREAM", "reset_stream"
	case FrameTypeStopSending:
		return "STOP_SENDING", "stop_sending"
	case FrameTypeCrypto:
		return "CRYPTO", "crypto"
	case FrameTypeNewToken:
		return "NEW_TOKEN", "new_token"
	case FrameTypeMaxData:
		return "MAX_DATA", "max_data"
	case FrameTypeMaxStreamData:
		return "MAX_STREAM_DATA", "max_stream_data"
	case FrameTypeMaxStreamsBidi:
		return "MAX_STREAMS_BIDI", "max_streams"
	case FrameTypeMaxStreamsUni:
		return "MAX_STREAMS_UNI", "max_streams"
	case FrameTypeDataBlocked:
		return "DATA_BLOCKED", "data_blocked"
	case FrameTypeStreamDataBlocked:
		return "STREAM_DATA_BLOCKED", "stream_data_blocked"
	case FrameTypeStreamsBlockedBidi:
		return "STREAMS_BLOCKED_BIDI", "streams_blocked"
	case FrameTypeStreamsBlockedUni:
		return "STREAMS_BLOCKED_UNI", "streams_blocked"
	case FrameTypeNewConnectionID:
		return "NEW_CONNECTION_ID", "new_connection_id"
	case FrameTypeRetireConnectionID:
		return "RETIRE_CONNECTION_ID", "retire_connection_id"
	case FrameTypePathChallenge:
		return "PATH_CHALLENGE", "path_challenge"
	case FrameTypePathResponse:
		return "PATH_RESPONSE", "path_response"
	case FrameTypeConnectionClose:
		return "CONNECTION_CLOSE", "connection_close"
	case FrameTypeConnectionCloseApp:
		return "CONNECTION_CLOSE_APP", "connection_close"
	case FrameTypeHandshakeDone:
		return "HANDSHAKE_DONE", "handshake_done"
	case FrameTypeDatagram:
		return "DATAGRAM", "datagram"
	case FrameTypeDatagramLen:
		return "DATAGRAM_LEN", "datagram"
	}
	return "", ""
}
