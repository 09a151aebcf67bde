package wire

import (
	"math/rand/v2"
	"testing"
)

func TestDecodePacketNumberRFC(t *testing.T) {
	// RFC 9000 Appendix A.3's example.
	if got := DecodePacketNumber(0xa82f30ea, 0x9b32, 2); got != 0xa82f9b32 {
		t.Errorf("RFC 9000 A.3: got %#x, want 0xa82f9b32", got)
	}
	// RFC 9001 A.5: largest 654360563, 3-byte truncated 0x00bff4.
	if got := DecodePacketNumber(654360563, 0x00bff4, 3); got != 654360564 {
		t.Errorf("RFC 9001 A.5: got %d, want 654360564", got)
	}
}

func TestDecodePacketNumberEdges(t *testing.T) {
	const max = MaxPacketNumber
	tests := []struct {
		name      string
		largest   uint64
		truncated uint64
		pnLen     int
		want      uint64
	}{
		{"next after 0", 0, 1, 1, 1},
		{"same as largest+1", 254, 255, 1, 255},
		{"1-byte wrap to 256", 255, 0x00, 1, 256},
		{"1-byte wrap to 257 across a lost packet", 255, 0x01, 1, 257},
		{"1-byte reordered old packet", 256, 0xff, 1, 255},
		{"1-byte forward by half window - 1", 1000, (1001 + 127) & 0xff, 1, 1128},
		// The window is (expected-128, expected+128]: its upper edge wins.
		{"1-byte exactly half window ahead", 1000, (1001 + 128) & 0xff, 1, 1129},
		{"1-byte half window behind - 1", 1000, (1001 - 127) & 0xff, 1, 874},
		{"near zero cannot go negative", 2, 0xf0, 1, 0xf0},
		{"2-byte wrap", 0xffff, 0x0000, 2, 0x10000},
		{"4-byte wrap", 0xffffffff, 0x00000005, 4, 0x100000005},
		{"4-byte behind", 0x100000005, 0xfffffffe, 4, 0xfffffffe},
		{"cannot exceed 2^62-1", max - 1, (max - 255) & 0xff, 1, max - 255},
		{"top of range", max - 1, max & 0xff, 1, max},
		{"truncated higher bits ignored", 10, 0x1ff, 1, 0xff},
		{"bad pnLen returns truncated", 10, 77, 0, 77},
		{"bad pnLen 5", 10, 77, 5, 77},
	}
	for _, tt := range tests {
		if got := DecodePacketNumber(tt.largest, tt.truncated, tt.pnLen); got != tt.want {
			t.Errorf("%s: DecodePacketNumber(%d, %#x, %d) = %d, want %d", tt.name, tt.largest, tt.truncated, tt.pnLen, got, tt.want)
		}
	}
}

// TestDecodePacketNumberWrapSequence feeds a long 1-byte sequence as nghq
// sends it (wrapping every 256) with random losses of up to 100 packets and
// reordering by a few packets: every packet within half a window of the
// largest must decode exactly.
func TestDecodePacketNumberWrapSequence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, pnLen := range []int{1, 2} {
		var largest uint64
		have := false
		for pn := uint64(0); pn < 200000; {
			trunc := pn & (1<<(8*pnLen) - 1)
			got := trunc
			if have {
				got = DecodePacketNumber(largest, trunc, pnLen)
			}
			if got != pn {
				t.Fatalf("pnLen %d: largest %d, truncated %#x: got %d, want %d", pnLen, largest, trunc, got, pn)
			}
			if !have || pn > largest {
				largest, have = pn, true
			}
			// A reordered straggler from a little while back.
			if back := uint64(rng.IntN(8)); pn > back {
				old := pn - back
				if d := DecodePacketNumber(largest, old&(1<<(8*pnLen)-1), pnLen); d != old {
					t.Fatalf("pnLen %d: straggler %d decoded as %d (largest %d)", pnLen, old, d, largest)
				}
			}
			pn += 1 + uint64(rng.IntN(100)) // lose up to 99 packets
		}
	}
}

// TestDecodePacketNumberProperty checks the defining property of RFC 9000
// A.3 on random values: any pn strictly within half a window of largest+1
// decodes to itself.
func TestDecodePacketNumberProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 200000; i++ {
		pnLen := 1 + rng.IntN(4)
		win := uint64(1) << (8 * pnLen)
		largest := rng.Uint64N(MaxPacketNumber - win)
		expected := largest + 1
		lo := uint64(0)
		if expected > win/2 {
			lo = expected - win/2 + 1
		}
		pn := lo + rng.Uint64N(expected+win/2-lo)
		if got := DecodePacketNumber(largest, pn&(win-1), pnLen); got != pn {
			t.Fatalf("largest %d pnLen %d pn %d: got %d", largest, pnLen, pn, got)
		}
	}
}
