package wire

import (
	"strings"
	"testing"
)

func TestFrameTypeString(t *testing.T) {
	want := map[FrameType]string{
		0x00: "PADDING", 0x01: "PING", 0x02: "ACK", 0x03: "ACK_ECN", 0x04: "RESET_STREAM",
		0x05: "STOP_SENDING", 0x06: "CRYPTO", 0x07: "NEW_TOKEN",
		0x08: "STREAM", 0x09: "STREAM", 0x0a: "STREAM", 0x0b: "STREAM",
		0x0c: "STREAM", 0x0d: "STREAM", 0x0e: "STREAM", 0x0f: "STREAM",
		0x10: "MAX_DATA", 0x11: "MAX_STREAM_DATA", 0x12: "MAX_STREAMS_BIDI", 0x13: "MAX_STREAMS_UNI",
		0x14: "DATA_BLOCKED", 0x15: "STREAM_DATA_BLOCKED", 0x16: "STREAMS_BLOCKED_BIDI",
		0x17: "STREAMS_BLOCKED_UNI", 0x18: "NEW_CONNECTION_ID", 0x19: "RETIRE_CONNECTION_ID",
		0x1a: "PATH_CHALLENGE", 0x1b: "PATH_RESPONSE", 0x1c: "CONNECTION_CLOSE",
		0x1d: "CONNECTION_CLOSE_APP", 0x1e: "HANDSHAKE_DONE", 0x30: "DATAGRAM", 0x31: "DATAGRAM_LEN",
		0x1f: "frame 0x1f", 0x2f: "frame 0x2f", 0x32: "frame 0x32", 0xaf: "frame 0xaf", 0x3fffffff: "frame 0x3fffffff",
	}
	for typ, s := range want {
		if typ.String() != s {
			t.Errorf("FrameType(%#x).String() = %q, want %q", uint64(typ), typ.String(), s)
		}
		if typ.known() == strings.HasPrefix(s, "frame ") {
			t.Errorf("FrameType(%#x).known() = %v", uint64(typ), typ.known())
		}
		if (typ.QlogName() != "") != typ.known() {
			t.Errorf("FrameType(%#x).QlogName() = %q", uint64(typ), typ.QlogName())
		}
	}
	// qlog names the variants of a frame once (RFC 9000 §19 and the qlog
	// QUIC event schema's frame_type values).
	for typ, s := range map[FrameType]string{0x00: "padding", 0x02: "ack", 0x03: "ack", 0x0d: "stream",
		0x12: "max_streams", 0x17: "streams_blocked", 0x1c: "connection_close", 0x1d: "connection_close",
		0x31: "datagram", 0x1e: "handshake_done"} {
		if typ.QlogName() != s {
			t.Errorf("FrameType(%#x).QlogName() = %q, want %q", uint64(typ), typ.QlogName(), s)
		}
	}
	// Every constant has a name and is known.
	for _, typ := range []FrameType{FrameTypePadding, FrameTypePing, FrameTypeAck, FrameTypeAckECN,
		FrameTypeResetStream, FrameTypeStopSending, FrameTypeCrypto, FrameTypeNewToken, FrameTypeStream,
		FrameTypeMaxData, FrameTypeMaxStreamData, FrameTypeMaxStreamsBidi, FrameTypeMaxStreamsUni,
		FrameTypeDataBlocked, FrameTypeStreamDataBlocked, FrameTypeStreamsBlockedBidi,
		FrameTypeStreamsBlockedUni, FrameTypeNewConnectionID, FrameTypeRetireConnectionID,
		FrameTypePathChallenge, FrameTypePathResponse, FrameTypeConnectionClose,
		FrameTypeConnectionCloseApp, FrameTypeHandshakeDone, FrameTypeDatagram, FrameTypeDatagramLen} {
		if want[typ] == "" || !typ.known() {
			t.Errorf("constant %#x missing from the table or unknown", uint64(typ))
		}
	}
}

func TestFrameTypeIsStream(t *testing.T) {
	for typ := FrameType(0); typ < 0x100; typ++ {
		if got, want := typ.IsStream(), typ >= 0x08 && typ <= 0x0f; got != want {
			t.Errorf("FrameType(%#x).IsStream() = %v, want %v", uint64(typ), got, want)
		}
	}
	if FrameType(0x108).IsStream() {
		t.Error("0x108 is not STREAM")
	}
}
