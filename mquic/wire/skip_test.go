package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// TestParseFrameAllTypes parses one hand-built instance of every frame type
// RFC 9000 and RFC 9221 define, each followed by a PING that must not be
// consumed. Field layouts are from RFC 9000 §19 (quoted per case).
func TestParseFrameAllTypes(t *testing.T) {
	tests := []struct {
		name string
		typ  FrameType
		in   string
	}{
		// ACK: largest 0x1234 (2-byte), delay 5, 2 ranges, first range 3,
		// (gap 1, len 2), (gap 0, len 0).
		{"ACK with ranges", FrameTypeAck, "02" + "5234" + "05" + "02" + "03" + "01" + "02" + "00" + "00"},
		{"ACK no ranges", FrameTypeAck, "02" + "00" + "00" + "00" + "00"},
		{"ACK first range to zero", FrameTypeAck, "02" + "0a" + "00" + "00" + "0a"},
		{"ACK_ECN", FrameTypeAckECN, "03" + "10" + "00" + "01" + "00" + "02" + "03" + "01" + "02" + "4003"},
		{"RESET_STREAM", FrameTypeResetStream, "04" + "07" + "410c" + "17"},
		{"STOP_SENDING", FrameTypeStopSending, "05" + "07" + "410c"},
		{"CRYPTO", FrameTypeCrypto, "06" + "00" + "04" + "01020304"},
		{"CRYPTO with offset", FrameTypeCrypto, "06" + "4100" + "01" + "ff"},
		{"NEW_TOKEN", FrameTypeNewToken, "07" + "03" + "aabbcc"},
		{"STREAM", FrameTypeStream, "0e" + "07" + "41f0" + "02" + "0015"},
		{"MAX_DATA", FrameTypeMaxData, "10" + "80100000"},
		{"MAX_STREAM_DATA", FrameTypeMaxStreamData, "11" + "03" + "4400"},
		{"MAX_STREAMS bidi", FrameTypeMaxStreamsBidi, "12" + "4064"},
		{"MAX_STREAMS uni at 2^60", FrameTypeMaxStreamsUni, "13" + "d000000000000000"},
		{"DATA_BLOCKED", FrameTypeDataBlocked, "14" + "4400"},
		{"STREAM_DATA_BLOCKED", FrameTypeStreamDataBlocked, "15" + "07" + "4400"},
		{"STREAMS_BLOCKED bidi", FrameTypeStreamsBlockedBidi, "16" + "05"},
		{"STREAMS_BLOCKED uni", FrameTypeStreamsBlockedUni, "17" + "05"},
		// seq 2, retire prior to 1, length 8, CID, 16-byte token.
		{"NEW_CONNECTION_ID", FrameTypeNewConnectionID, "18" + "02" + "01" + "08" + "0102030405060708" + strings.Repeat("ab", 16)},
		{"NEW_CONNECTION_ID 20-byte CID", FrameTypeNewConnectionID, "18" + "00" + "00" + "14" + strings.Repeat("cd", 20) + strings.Repeat("ab", 16)},
		{"RETIRE_CONNECTION_ID", FrameTypeRetireConnectionID, "19" + "02"},
		{"PATH_CHALLENGE", FrameTypePathChallenge, "1a" + "0102030405060708"},
		{"PATH_RESPONSE", FrameTypePathResponse, "1b" + "0102030405060708"},
		// error code PROTOCOL_VIOLATION (0x0a), frame type ACK, reason "bad".
		{"CONNECTION_CLOSE", FrameTypeConnectionClose, "1c" + "0a" + "02" + "03" + "626164"},
		{"CONNECTION_CLOSE no reason", FrameTypeConnectionClose, "1c" + "00" + "00" + "00"},
		{"CONNECTION_CLOSE_APP", FrameTypeConnectionCloseApp, "1d" + "4100" + "04" + "646f6e65"},
		{"HANDSHAKE_DONE", FrameTypeHandshakeDone, "1e"},
		{"DATAGRAM_LEN", FrameTypeDatagramLen, "31" + "02" + "abcd"},
	}
	for _, tt := range tests {
		frame := mustHex(t, tt.in)
		in := append(bytes.Clone(frame), 0x01)
		var f Frame
		n, err := ParseFrame(in, &f)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if n != len(frame) {
			t.Errorf("%s: consumed %d, want %d", tt.name, n, len(frame))
		}
		if f.Type != tt.typ {
			t.Errorf("%s: type %v, want %v", tt.name, f.Type, tt.typ)
		}
		// Every strict prefix is a truncated frame, never a shorter one.
		for i := 1; i < len(frame); i++ {
			if _, err := ParseFrame(frame[:i], &f); !errors.Is(err, ErrTruncated) {
				t.Errorf("%s: prefix of %d bytes: got %v, want truncated", tt.name, i, err)
			}
		}
	}

	// DATAGRAM without length runs to the end of the packet.
	var f Frame
	if n, err := ParseFrame(mustHex(t, "30"+"0102030401"), &f); err != nil || n != 6 || f.Type != FrameTypeDatagram {
		t.Errorf("DATAGRAM: %d %v %v", n, f.Type, err)
	}
}

func TestParseFrameErrors(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		typ   FrameType
		field string
		err   error
	}{
		{"empty", "", 0, "frame type", ErrTruncated},
		{"ACK first range > largest", "02" + "05" + "00" + "00" + "06", FrameTypeAck, "first ACK range", ErrInvalidValue},
		{"ACK gap below zero", "02" + "05" + "00" + "01" + "04" + "00" + "00", FrameTypeAck, "gap", ErrInvalidValue},
		{"ACK range below zero", "02" + "0a" + "00" + "01" + "00" + "00" + "09", FrameTypeAck, "ACK range length", ErrInvalidValue},
		{"ACK huge count, no ranges", "02" + "05" + "00" + "bfffffff" + "00", FrameTypeAck, "gap", ErrTruncated},
		{"ACK_ECN missing counts", "03" + "05" + "00" + "00" + "00" + "01", FrameTypeAckECN, "ECT1 count", ErrTruncated},
		{"CRYPTO too long", "06" + "ffffffffffffffff" + "01" + "00", FrameTypeCrypto, "offset+length", ErrInvalidValue},
		{"CRYPTO data short", "06" + "00" + "05" + "0102", FrameTypeCrypto, "crypto data", ErrTruncated},
		{"NEW_TOKEN empty", "07" + "00", FrameTypeNewToken, "token length", ErrInvalidValue},
		{"MAX_STREAMS > 2^60", "12" + "d000000000000001", FrameTypeMaxStreamsBidi, "maximum streams", ErrInvalidValue},
		{"STREAMS_BLOCKED > 2^60", "17" + "ffffffffffffffff", FrameTypeStreamsBlockedUni, "maximum streams", ErrInvalidValue},
		{"NEW_CONNECTION_ID retire > seq", "18" + "01" + "02" + "08", FrameTypeNewConnectionID, "retire prior to", ErrInvalidValue},
		{"NEW_CONNECTION_ID zero length", "18" + "01" + "00" + "00", FrameTypeNewConnectionID, "length", ErrInvalidValue},
		{"NEW_CONNECTION_ID length 21", "18" + "01" + "00" + "15" + strings.Repeat("00", 37), FrameTypeNewConnectionID, "length", ErrInvalidValue},
		{"NEW_CONNECTION_ID no token", "18" + "01" + "00" + "01" + "aa" + "0102", FrameTypeNewConnectionID, "stateless reset token", ErrTruncated},
		{"PATH_CHALLENGE short", "1a" + "01020304", FrameTypePathChallenge, "data", ErrTruncated},
		{"CONNECTION_CLOSE reason short", "1c" + "00" + "00" + "05" + "6162", FrameTypeConnectionClose, "reason phrase", ErrTruncated},
		{"CONNECTION_CLOSE_APP no reason length", "1d" + "00", FrameTypeConnectionCloseApp, "reason phrase length", ErrTruncated},
		{"DATAGRAM_LEN short", "31" + "05" + "00", FrameTypeDatagramLen, "datagram data", ErrTruncated},
		{"non-minimal PING", "4001", FrameTypePing, "frame type", ErrNotMinimal},
		{"non-minimal STREAM", "800000" + "0a" + "0000", FrameTypeStream + 2, "frame type", ErrNotMinimal},
		{"truncated 2-byte type", "40", 0, "frame type", ErrTruncated},
	}
	for _, tt := range tests {
		var f Frame
		n, err := ParseFrame(mustHex(t, tt.in), &f)
		var fe *FrameError
		if !errors.As(err, &fe) || n != 0 {
			t.Errorf("%s: got %d, %v; want FrameError", tt.name, n, err)
			continue
		}
		if fe.Type != tt.typ || fe.Field != tt.field || !errors.Is(err, tt.err) {
			t.Errorf("%s: got %v (type %v field %q), want %v %q %v", tt.name, err, fe.Type, fe.Field, tt.typ, tt.field, tt.err)
		}
	}
}
