package wire

import (
	"bytes"
	"testing"
)

func TestAppendPingPadding(t *testing.T) {
	b := AppendPing([]byte{0xee})
	if !bytes.Equal(b, []byte{0xee, 0x01}) {
		t.Errorf("AppendPing = %x", b)
	}
	for _, n := range []int{-1, 0, 1, 7, 1200} {
		b := AppendPadding([]byte{0xee}, n)
		want := 1 + max(n, 0)
		if len(b) != want || b[0] != 0xee || bytes.IndexFunc(b[1:], func(r rune) bool { return r != 0 }) >= 0 {
			t.Errorf("AppendPadding(%d) = %x", n, b)
		}
	}
	// Padding over dirty spare capacity still writes zeros.
	dirty := bytes.Repeat([]byte{0xff}, 64)
	if b := AppendPadding(dirty[:0], 64); !bytes.Equal(b, make([]byte, 64)) {
		t.Errorf("AppendPadding over dirty buffer = %x", b)
	}
}

func TestParsePingPadding(t *testing.T) {
	var f Frame
	// PADDING runs to the first non-zero byte.
	in := append(AppendPadding(nil, 17), 0x01)
	if n, err := ParseFrame(in, &f); err != nil || n != 17 || f.Type != FrameTypePadding || f.PaddingLen != 17 {
		t.Errorf("padding: %+v %d %v", f, n, err)
	}
	if n, err := ParseFrame(in[17:], &f); err != nil || n != 1 || f.Type != FrameTypePing {
		t.Errorf("ping: %+v %d %v", f, n, err)
	}
	// Padding to the end of the packet.
	if n, err := ParseFrame(make([]byte, 1000), &f); err != nil || n != 1000 || f.PaddingLen != 1000 {
		t.Errorf("padding to end: %+v %d %v", f, n, err)
	}
	if n, err := ParseFrame([]byte{0}, &f); err != nil || n != 1 || f.PaddingLen != 1 {
		t.Errorf("single padding: %+v %d %v", f, n, err)
	}
}
