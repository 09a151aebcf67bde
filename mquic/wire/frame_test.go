package wire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParseFrameUnknown(t *testing.T) {
	for _, tt := range []struct {
		in  string
		typ FrameType
	}{
		{"1f", 0x1f}, {"20", 0x20}, {"2f0000", 0x2f}, {"32", 0x32}, {"3f", 0x3f},
		{"4040", 0x40}, {"40af", 0xaf}, // ACK_FREQUENCY (0xaf) is an extension, not RFC 9000
		{"80004000", 0x4000}, {"c000000000000100ff", 0x100},
	} {
		var f Frame
		n, err := ParseFrame(mustHex(t, tt.in), &f)
		if !errors.Is(err, ErrUnknownFrameType) || n != 0 {
			t.Errorf("%s: got %d, %v; want unknown type %#x", tt.in, n, err, uint64(tt.typ))
			continue
		}
		if f.Type != tt.typ {
			t.Errorf("%s: f.Type = %v", tt.in, f.Type)
		}
		if !strings.Contains(err.Error(), "unknown frame type") {
			t.Errorf("%s: message %q", tt.in, err)
		}
	}
}

// TestParseFrameNGHQPacket walks the frames of the nghq capture's second
// packet, built by hand from its documented layout: two STREAM frames of
// stream 7, the second with OFF|LEN|FIN.
func TestParseFrameNGHQPacket(t *testing.T) {
	payload := AppendStreamFrame(nil, StreamFrame{StreamID: 7, Data: bytes.Repeat([]byte{0x01}, 496)}, true)
	payload = append(payload, mustHex(t, "0f0741f017"+"0015")...)
	payload = append(payload, "hello nghq multicast\n"...)
	if !bytes.HasPrefix(payload, mustHex(t, "0a0741f0")) {
		t.Fatalf("first frame header %x", payload[:4])
	}
	var f Frame
	var got []StreamFrame
	for b := payload; len(b) > 0; {
		n, err := ParseFrame(b, &f)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f.Stream)
		b = b[n:]
	}
	if len(got) != 2 || got[0].Offset != 0 || len(got[0].Data) != 496 || got[0].Fin ||
		got[1].Offset != 496 || !got[1].Fin || string(got[1].Data[2:]) != "hello nghq multicast\n" {
		t.Errorf("frames: %+v", got)
	}
}

func TestParseFrameAllocs(t *testing.T) {
	var payload []byte
	payload = AppendStreamFrame(payload, StreamFrame{StreamID: 7, Offset: 1 << 20, Data: make([]byte, 1000)}, true)
	payload = AppendResetStreamFrame(payload, ResetStreamFrame{StreamID: 11, ErrorCode: 0x10c, FinalSize: 12345})
	payload = AppendPing(payload)
	payload = AppendStreamFrame(payload, StreamFrame{StreamID: 0, Data: make([]byte, 100), Fin: true}, false)
	payload = AppendPadding(payload[:len(payload):len(payload)], 50)[:len(payload)] // keep cap tight
	payload = AppendPadding(payload, 50)
	buf := make([]byte, 0, 2048)
	var f Frame
	allocs := testing.AllocsPerRun(200, func() {
		frames := 0
		for b := payload; len(b) > 0; frames++ {
			n, err := ParseFrame(b, &f)
			if err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		// The STREAM frame without LEN swallows the padding after it.
		if frames != 4 {
			t.Fatalf("%d frames", frames)
		}
		buf = AppendStreamFrame(buf[:0], StreamFrame{StreamID: 7, Offset: 1 << 20, Data: payload[:1000]}, true)
		buf = AppendResetStreamFrame(buf, ResetStreamFrame{StreamID: 11})
		buf = AppendPing(buf)
		buf = AppendPadding(buf, 100)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run, want 0", allocs)
	}
}

func BenchmarkParseFrameStream(b *testing.B) {
	pkt := AppendStreamFrame(nil, StreamFrame{StreamID: 7, Offset: 1 << 20, Data: make([]byte, 1150)}, true)
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	var f Frame
	for b.Loop() {
		if _, err := ParseFrame(pkt, &f); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range []string{
		"0a0741f0" + "0102", "0f0741f017" + "0015", "0e0041b441b4" + "05", "0803" + "ff",
		"0407410c17", "01", "000000", "02" + "5234" + "05" + "02" + "03" + "01" + "02" + "00" + "00",
		"03" + "10" + "00" + "00" + "00" + "01" + "02" + "03", "18" + "02" + "01" + "01" + "aa" + strings.Repeat("ab", 16),
		"1c" + "0a" + "02" + "03" + "626164", "1d" + "00" + "00", "30" + "ff", "31" + "01" + "ff", "4001", "40af",
		"0e00" + "fffffffffffffffe" + "01" + "55",
	} {
		f.Add(mustHex(f, s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		n, err := ParseFrame(b, &fr)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) && !errors.Is(err, ErrUnknownFrameType) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			if n != 0 {
				t.Fatalf("error with n = %d", n)
			}
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		switch {
		case fr.Type == FrameTypeStream:
			sf := fr.Stream
			if sf.Offset+uint64(len(sf.Data)) > 1<<62-1 {
				t.Fatalf("offset+length %d+%d accepted", sf.Offset, len(sf.Data))
			}
			for _, withLen := range []bool{true, false} {
				re := AppendStreamFrame(nil, sf, withLen)
				if len(re) != StreamFrameOverhead(sf.StreamID, sf.Offset, len(sf.Data), withLen)+len(sf.Data) {
					t.Fatalf("overhead mismatch for %x", re)
				}
				got, rn, err := ParseStreamFrame(re)
				if err != nil || rn != len(re) || got.StreamID != sf.StreamID || got.Offset != sf.Offset ||
					got.Fin != sf.Fin || !bytes.Equal(got.Data, sf.Data) {
					t.Fatalf("re-parse of %x: %+v, %d, %v; want %+v", re, got, rn, err, sf)
				}
			}
		case fr.Type == FrameTypeResetStream:
			re := AppendResetStreamFrame(nil, fr.ResetStream)
			got, rn, err := ParseResetStreamFrame(re)
			if err != nil || rn != len(re) || got != fr.ResetStream {
				t.Fatalf("re-parse of %x: %+v, %d, %v; want %+v", re, got, rn, err, fr.ResetStream)
			}
			if rn > n {
				t.Fatalf("re-encoding %d bytes longer than the %d-byte input", rn, n)
			}
		case fr.Type == FrameTypePadding:
			if fr.PaddingLen != n || bytes.IndexFunc(b[:n], func(r rune) bool { return r != 0 }) >= 0 || (n < len(b) && b[n] == 0) {
				t.Fatalf("padding run %d in %x", n, b)
			}
		case fr.Type == FrameTypePing:
			if n != 1 {
				t.Fatalf("PING of %d bytes", n)
			}
		}
	})
}

func TestFrameErrorMessages(t *testing.T) {
	var f Frame
	for _, tt := range []struct{ in, want string }{
		{"", "wire: frame type: truncated"},
		{"40", "wire: frame type: truncated"},
		{"4001", "wire: PING frame: frame type: frame type not in its shortest encoding"},
		{"0e07", "wire: STREAM frame: offset: truncated"},
		{"0700", "wire: NEW_TOKEN frame: token length: invalid value"},
		{"2a", "wire: unknown frame type"},
	} {
		if _, err := ParseFrame(mustHex(t, tt.in), &f); err == nil || err.Error() != tt.want {
			t.Errorf("%s: got %v, want %q", tt.in, err, tt.want)
		}
	}
	// The type of the frame that failed is in f.Type, unknown or not.
	for _, tt := range []struct {
		in  string
		typ FrameType
	}{{"2a", 0x2a}, {"4001", FrameTypePing}, {"0e07", FrameTypeStream}, {"04", FrameTypeResetStream}, {"0700", FrameTypeNewToken}} {
		if _, err := ParseFrame(mustHex(t, tt.in), &f); err == nil || f.Type != tt.typ {
			t.Errorf("%s: f.Type = %v after %v, want %v", tt.in, f.Type, err, tt.typ)
		}
	}
}

// An unknown frame type, the reason a receiver drops a packet of an
// extension it does not know, costs no allocation.
func TestParseFrameUnknownAllocatesNothing(t *testing.T) {
	var f Frame
	for _, in := range [][]byte{{0x2a}, {0x80, 0x00, 0x40, 0x00}} {
		if a := testing.AllocsPerRun(100, func() { _, _ = ParseFrame(in, &f) }); a != 0 {
			t.Errorf("%x: %v allocations", in, a)
		}
	}
}
