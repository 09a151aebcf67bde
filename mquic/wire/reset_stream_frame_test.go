package wire

import (
	"errors"
	"testing"
)

func TestResetStreamFrame(t *testing.T) {
	tests := []struct {
		f    ResetStreamFrame
		want string
	}{
		{ResetStreamFrame{StreamID: 7, ErrorCode: 0x10c, FinalSize: 23}, "0407410c17"}, // H3_REQUEST_CANCELLED
		{ResetStreamFrame{}, "04000000"},
		{ResetStreamFrame{StreamID: 1<<62 - 1, ErrorCode: 1 << 30, FinalSize: 16384},
			"04ffffffffffffffff" + "c000000040000000" + "80004000"},
	}
	for _, tt := range tests {
		b := AppendResetStreamFrame(nil, tt.f)
		if hexs(b) != tt.want {
			t.Errorf("AppendResetStreamFrame(%+v) = %x, want %s", tt.f, b, tt.want)
		}
		if ResetStreamFrameLen(tt.f) != len(b) {
			t.Errorf("ResetStreamFrameLen = %d, want %d", ResetStreamFrameLen(tt.f), len(b))
		}
		in := append(b, 0x01)
		got, n, err := ParseResetStreamFrame(in)
		if err != nil || got != tt.f || n != len(b) {
			t.Errorf("ParseResetStreamFrame(%x) = %+v, %d, %v", in, got, n, err)
		}
		var f Frame
		if n, err := ParseFrame(in, &f); err != nil || n != len(b) || f.Type != FrameTypeResetStream || f.ResetStream != tt.f {
			t.Errorf("ParseFrame(%x) = %+v, %d, %v", in, f, n, err)
		}
	}
}

func TestParseResetStreamFrameErrors(t *testing.T) {
	for _, tt := range []struct {
		in, field string
		err       error
	}{
		{"", "frame type", ErrTruncated},
		{"05000000", "frame type", ErrInvalidValue},
		{"04", "stream ID", ErrTruncated},
		{"0407", "error code", ErrTruncated},
		{"040741", "error code", ErrTruncated},
		{"0407410c", "final size", ErrTruncated},
		{"0407410c80", "final size", ErrTruncated},
	} {
		_, _, err := ParseResetStreamFrame(mustHex(t, tt.in))
		var fe *FrameError
		if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, tt.err) {
			t.Errorf("%s: got %v, want %s: %v", tt.in, err, tt.field, tt.err)
		}
	}
}
