package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// nghq's session ID (its example's default), the 10 ASCII bytes "Session ID".
var nghqSessionID = []byte("Session ID")

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hexs(b []byte) string { return hex.EncodeToString(b) }

func TestAppendShortHeader(t *testing.T) {
	tests := []struct {
		dcid  []byte
		pn    uint64
		pnLen int
		want  string
	}{
		// nghq's first packets (capture pkt 1 and 2): 0x40, "Session ID", 1-byte PN.
		{nghqSessionID, 0, 1, "4053657373696f6e20494400"},
		{nghqSessionID, 1, 1, "4053657373696f6e20494401"},
		// 1-byte PN keeps only the low byte: packet 300 goes out as 0x2c.
		{nghqSessionID, 300, 1, "4053657373696f6e2049442c"},
		// RFC 9001 A.5: empty DCID, pn 654360564 (0x2700bff4) in 3 bytes.
		{nil, 654360564, 3, "4200bff4"},
		{[]byte{0xaa}, 0x01020304, 2, "41aa0304"},
		{[]byte{0xaa, 0xbb}, 0x01020304, 4, "43aabb01020304"},
	}
	for _, tt := range tests {
		got := AppendShortHeader(nil, tt.dcid, tt.pn, tt.pnLen)
		if hex.EncodeToString(got) != tt.want {
			t.Errorf("AppendShortHeader(%x, %d, %d) = %x, want %s", tt.dcid, tt.pn, tt.pnLen, got, tt.want)
		}
		if PacketNumberLen(got[0]) != tt.pnLen {
			t.Errorf("PacketNumberLen(%#x) = %d, want %d", got[0], PacketNumberLen(got[0]), tt.pnLen)
		}
		pnOff := 1 + len(tt.dcid)
		if want := tt.pn & (1<<(8*tt.pnLen) - 1); ReadPacketNumber(got[pnOff:], tt.pnLen) != want {
			t.Errorf("ReadPacketNumber = %d, want %d", ReadPacketNumber(got[pnOff:], tt.pnLen), want)
		}
	}
	// Appends after existing bytes.
	if got := AppendShortHeader([]byte{0xff}, nil, 7, 1); !bytes.Equal(got, []byte{0xff, 0x40, 0x07}) {
		t.Errorf("append to prefix: %x", got)
	}
	for _, bad := range []int{0, 5, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("pnLen %d: no panic", bad)
				}
			}()
			AppendShortHeader(nil, nil, 0, bad)
		}()
	}
}

func TestParseShortHeader(t *testing.T) {
	pkt := mustHex(t, "4053657373696f6e204944000a0041b4")
	dcid, off, err := ParseShortHeader(pkt, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dcid, nghqSessionID) || off != 11 {
		t.Fatalf("got dcid %q, pnOffset %d", dcid, off)
	}
	if &dcid[0] != &pkt[1] {
		t.Error("dcid does not alias the packet")
	}
	if cap(dcid) != 10 {
		t.Errorf("dcid capacity %d, want 10 (appending must not overwrite the packet)", cap(dcid))
	}

	// Fixed bit clear is accepted (nghq ignores it).
	if _, _, err := ParseShortHeader([]byte{0x00, 0x01}, 0); err != nil {
		t.Errorf("fixed bit clear: %v", err)
	}
	// Zero-length DCID.
	if d, off, err := ParseShortHeader([]byte{0x43, 1, 2, 3, 4}, 0); err != nil || len(d) != 0 || off != 1 {
		t.Errorf("empty dcid: %x %d %v", d, off, err)
	}

	for _, tt := range []struct {
		name    string
		pkt     []byte
		dcidLen int
		want    error
	}{
		{"empty", nil, 0, ErrPacketTooShort},
		{"long header", mustHex(t, "c300000001088394c8f03e5157080000449e00000002"), 8, ErrNotShortHeader},
		{"no PN byte", pkt[:11], 10, ErrPacketTooShort},
		{"short DCID", pkt[:5], 10, ErrPacketTooShort},
		{"only first byte", pkt[:1], 0, ErrPacketTooShort},
		{"dcid len 21", pkt, 21, ErrConnIDLen},
		{"dcid len -1", pkt, -1, ErrConnIDLen},
	} {
		if _, _, err := ParseShortHeader(tt.pkt, tt.dcidLen); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	// Exactly first byte + DCID + 1 PN byte is enough.
	if _, _, err := ParseShortHeader(pkt[:12], 10); err != nil {
		t.Errorf("minimal packet: %v", err)
	}
	// 20-byte DCID is the maximum.
	if _, off, err := ParseShortHeader(make([]byte, 22), MaxConnIDLen); err != nil || off != 21 {
		t.Errorf("20-byte dcid: %d %v", off, err)
	}
}

func TestShortHeaderAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	pkt := AppendShortHeader(nil, nghqSessionID, 5, 4)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendShortHeader(buf[:0], nghqSessionID, 5, 4)
		if _, _, err := ParseShortHeader(pkt, 10); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ParseShortHeader(pkt[:3], 10); err == nil {
			t.Fatal("no error")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
}

func FuzzParseShortHeader(f *testing.F) {
	f.Add(mustHex(f, "4053657373696f6e204944000a0041b4"), 10)
	f.Add(mustHex(f, "4cfe4189655e5cd55c41f69080575d7999c25a5bfb"), 0)
	f.Add([]byte{0x80}, 0)
	f.Add([]byte{}, 20)
	f.Fuzz(func(t *testing.T, pkt []byte, dcidLen int) {
		dcid, off, err := ParseShortHeader(pkt, dcidLen)
		if err != nil {
			return
		}
		if pkt[0]&0x80 != 0 {
			t.Fatalf("long header accepted: %x", pkt)
		}
		if off != 1+dcidLen || len(dcid) != dcidLen || off >= len(pkt) {
			t.Fatalf("dcidLen %d: got dcid %x, pnOffset %d for %d-byte packet", dcidLen, dcid, off, len(pkt))
		}
		if !bytes.Equal(dcid, pkt[1:off]) {
			t.Fatalf("dcid %x, want %x", dcid, pkt[1:off])
		}
		// Re-encoding the parsed header with the PN length of its first
		// byte reproduces the packet's first byte (masked to the bits we
		// write), DCID and PN whenever the PN fits.
		pnLen := PacketNumberLen(pkt[0])
		if off+pnLen <= len(pkt) && pkt[0]&^0x03 == 0x40 {
			pn := ReadPacketNumber(pkt[off:], pnLen)
			if re := AppendShortHeader(nil, dcid, pn, pnLen); !bytes.Equal(re, pkt[:off+pnLen]) {
				t.Fatalf("re-encoded %x, want %x", re, pkt[:off+pnLen])
			}
		}
	})
}
