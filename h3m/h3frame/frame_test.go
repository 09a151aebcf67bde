package h3frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/quic-go/quic-go/quicvarint"
)

func unhexT(t testing.TB, s string) []byte {
	t.Helper()
	var sb strings.Builder
	for _, line := range strings.Split(s, "\n") {
		line, _, _ = strings.Cut(line, "--") // comment
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestTypeString(t *testing.T) {
	for _, tc := range []struct {
		t     Type
		s     string
		known bool
	}{
		{TypeData, "DATA", true},
		{TypeHeaders, "HEADERS", true},
		{TypeCancelPush, "CANCEL_PUSH", true},
		{TypeSettings, "SETTINGS", true},
		{TypePushPromise, "PUSH_PROMISE", true},
		{TypeGoAway, "GOAWAY", true},
		{TypeMaxPushID, "MAX_PUSH_ID", true},
		{TypeDataWithOffset, "DATA_WITH_OFFSET", true},
		{0x21, "reserved(0x21)", false},
		{0x40, "reserved(0x40)", false},
		{0x1f*1000 + 0x21, "reserved(0x7939)", false},
		{0x22, "unknown(0x22)", false},
		{0x02, "unknown(0x2)", false},
	} {
		if got := tc.t.String(); got != tc.s {
			t.Errorf("%#x: String() = %q, want %q", uint64(tc.t), got, tc.s)
		}
		if tc.t.IsKnown() != tc.known {
			t.Errorf("%v: IsKnown() = %t", tc.t, !tc.known)
		}
	}
	for _, ty := range []Type{0x02, 0x06, 0x08, 0x09} {
		if !ty.IsHTTP2Only() || ty.IsKnown() {
			t.Errorf("%v: should be HTTP/2-only and unknown", ty)
		}
	}
	if TypeData.IsHTTP2Only() || TypeData.IsReserved() || Type(0x20).IsReserved() {
		t.Error("DATA or 0x20 misclassified")
	}
}

func TestFrameHeaderVectors(t *testing.T) {
	// Frame headers as nghq wrote them (ref/nghq-wire.md): PUSH_PROMISE of
	// 433 bytes, HEADERS of 488, a 16384-byte DATA frame, and
	// DATA_WITH_OFFSET's two-byte type (RFC 9000 §16 varint of 0xd00).
	for _, tc := range []struct {
		t      Type
		length uint64
		wire   string
	}{
		{TypePushPromise, 433, "05 41b1"},
		{TypeHeaders, 488, "01 41e8"},
		{TypeData, 16384, "00 80004000"},
		{TypeData, 10 << 20, "00 80a00000"},
		{TypeDataWithOffset, 0, "4d00 00"},
		{Type(0x21), 63, "21 3f"},
		{TypeData, MaxVarint, "00 ffffffffffffffff"},
	} {
		wire := unhexT(t, tc.wire)
		got := AppendFrameHeader([]byte{0xaa}, tc.t, tc.length)
		if !bytes.Equal(got[1:], wire) || got[0] != 0xaa {
			t.Errorf("AppendFrameHeader(%v, %d) = %x, want aa%x", tc.t, tc.length, got, wire)
		}
		if n := FrameHeaderLen(tc.t, tc.length); n != len(wire) {
			t.Errorf("FrameHeaderLen(%v, %d) = %d, want %d", tc.t, tc.length, n, len(wire))
		}
		ty, l, n, err := ParseFrameHeader(append(wire, 0x99))
		if err != nil || ty != tc.t || l != tc.length || n != len(wire) {
			t.Errorf("ParseFrameHeader(%x) = %v, %d, %d, %v", wire, ty, l, n, err)
		}
		// Every truncation of the header is incomplete, never malformed.
		for i := range wire {
			if _, _, _, err := ParseFrameHeader(wire[:i]); err != ErrNeedMore {
				t.Errorf("ParseFrameHeader(%x) err = %v, want ErrNeedMore", wire[:i], err)
			}
		}
	}
}

func TestParseFrameHeaderNonMinimal(t *testing.T) {
	// RFC 9000 §16 lets a varint use more bytes than needed; HTTP/3 does not
	// forbid it for frame lengths.
	ty, l, n, err := ParseFrameHeader(unhexT(t, "4001 800001b1"))
	if err != nil || ty != TypeHeaders || l != 433 || n != 6 {
		t.Fatalf("got %v %d %d %v", ty, l, n, err)
	}
}

func TestParseFrame(t *testing.T) {
	frame := AppendHeadersFrame(nil, []byte("abc"))
	frame = AppendDataHeader(frame, 5)
	frame = append(frame, "hello"...)
	ty, p, n, err := ParseFrame(frame)
	if err != nil || ty != TypeHeaders || string(p) != "abc" || n != 5 {
		t.Fatalf("first frame: %v %q %d %v", ty, p, n, err)
	}
	if cap(p) != len(p) {
		t.Error("payload slice lets appends overwrite the next frame")
	}
	ty, p, m, err := ParseFrame(frame[n:])
	if err != nil || ty != TypeData || string(p) != "hello" || n+m != len(frame) {
		t.Fatalf("second frame: %v %q %d %v", ty, p, m, err)
	}
	for i := range len(frame) - n {
		if _, _, _, err := ParseFrame(frame[n : n+i]); err != ErrNeedMore {
			t.Errorf("ParseFrame of %d of %d bytes: err %v, want ErrNeedMore", i, len(frame)-n, err)
		}
	}
	// A length near 2^62 must not overflow the bounds check.
	huge := AppendFrameHeader(nil, TypeData, MaxVarint)
	if _, _, _, err := ParseFrame(append(huge, 1, 2, 3)); err != ErrNeedMore {
		t.Errorf("huge frame: %v", err)
	}
}

func TestPushStreamHeader(t *testing.T) {
	for _, tc := range []struct {
		id   uint64
		wire string
	}{
		{0, "01 00"}, // nghq's stream 7: 01 00
		{3, "01 03"}, // nghq's last push
		{100, "01 4064"},
		{MaxVarint, "01 ffffffffffffffff"},
	} {
		wire := unhexT(t, tc.wire)
		if got := AppendPushStreamHeader(nil, tc.id); !bytes.Equal(got, wire) {
			t.Errorf("AppendPushStreamHeader(%d) = %x, want %x", tc.id, got, wire)
		}
		if PushStreamHeaderLen(tc.id) != len(wire) {
			t.Errorf("PushStreamHeaderLen(%d) = %d", tc.id, PushStreamHeaderLen(tc.id))
		}
		id, n, err := ParsePushStreamHeader(append(wire, 0x01, 0x41))
		if err != nil || id != tc.id || n != len(wire) {
			t.Errorf("ParsePushStreamHeader(%x) = %d %d %v", wire, id, n, err)
		}
		for i := range wire {
			if _, _, err := ParsePushStreamHeader(wire[:i]); err != ErrNeedMore {
				t.Errorf("ParsePushStreamHeader(%x): %v, want ErrNeedMore", wire[:i], err)
			}
		}
	}
	// Control (0x00), QPACK encoder/decoder (0x02, 0x03) and grease stream
	// types are refused, even when the push ID is not there yet.
	for _, st := range []string{"00", "02", "03", "21", "4002"} {
		_, _, err := ParsePushStreamHeader(unhexT(t, st))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "not a push stream") {
			t.Errorf("stream type %s: err %v", st, err)
		}
	}
	// A two-byte encoding of type 1 is still a push stream.
	if id, n, err := ParsePushStreamHeader(unhexT(t, "4001 07")); err != nil || id != 7 || n != 3 {
		t.Errorf("non-minimal stream type: %d %d %v", id, n, err)
	}
}

func TestPushPromise(t *testing.T) {
	// The start of nghq's first packet payload after the STREAM frame header:
	// 05 41b1 00 0000 d1 d7 ... (ref/nghq-wire.md).
	block := loadHex(t, "testdata/nghq/promise-push0.hex")
	frame := AppendPushPromise(nil, 0, block)
	if !bytes.Equal(frame[:6], unhexT(t, "05 41b1 00 0000")) || len(frame) != 3+433 {
		t.Fatalf("PUSH_PROMISE starts %x, %d bytes", frame[:6], len(frame))
	}
	if PushPromiseLen(0, len(block)) != len(frame) {
		t.Errorf("PushPromiseLen = %d, want %d", PushPromiseLen(0, len(block)), len(frame))
	}
	ty, p, n, err := ParseFrame(frame)
	if err != nil || ty != TypePushPromise || n != len(frame) {
		t.Fatalf("ParseFrame: %v %d %v", ty, n, err)
	}
	id, fb, err := ParsePushPromisePayload(p)
	if err != nil || id != 0 || !bytes.Equal(fb, block) {
		t.Fatalf("ParsePushPromisePayload: %d %v", id, err)
	}
	for _, id := range []uint64{1, 63, 64, 16383, 16384, 1 << 30, MaxVarint} {
		_, p, _, err := ParseFrame(AppendPushPromise(nil, id, []byte{0, 0, 0xd1}))
		if err != nil {
			t.Fatal(err)
		}
		got, fb, err := ParsePushPromisePayload(p)
		if err != nil || got != id || !bytes.Equal(fb, []byte{0, 0, 0xd1}) {
			t.Errorf("push ID %d: got %d %x %v", id, got, fb, err)
		}
	}
	for _, bad := range []string{"", "40", "80 0000", "c0 00000000 0000"} {
		_, _, err := ParsePushPromisePayload(unhexT(t, bad))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "push ID") {
			t.Errorf("payload %q: err %v", bad, err)
		}
	}
}

func TestCancelPush(t *testing.T) {
	for _, tc := range []struct {
		id   uint64
		wire string
	}{{0, "03 01 00"}, {4, "03 01 04"}, {1000, "03 02 43e8"}} {
		frame := AppendCancelPush(nil, tc.id)
		if !bytes.Equal(frame, unhexT(t, tc.wire)) {
			t.Errorf("AppendCancelPush(%d) = %x, want %s", tc.id, frame, tc.wire)
		}
		ty, p, _, err := ParseFrame(frame)
		if err != nil || ty != TypeCancelPush {
			t.Fatal(ty, err)
		}
		if id, err := ParseCancelPushPayload(p); err != nil || id != tc.id {
			t.Errorf("ParseCancelPushPayload(%x) = %d, %v", p, id, err)
		}
	}
	for _, tc := range []struct{ p, msg string }{
		{"", "empty"},
		{"40", "ends inside"},
		{"00 00", "1 bytes after"},
		{"4001 ff ff", "2 bytes after"},
	} {
		_, err := ParseCancelPushPayload(unhexT(t, tc.p))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("payload %q: err %v, want %q", tc.p, err, tc.msg)
		}
	}
}

func TestData(t *testing.T) {
	// nghq's 16 KiB DATA frames start 00 80 00 40 00.
	if got := AppendDataHeader(nil, 16384); !bytes.Equal(got, unhexT(t, "00 80004000")) {
		t.Errorf("AppendDataHeader(16384) = %x", got)
	}
	if DataHeaderLen(16384) != 5 || DataHeaderLen(21) != 2 {
		t.Error("DataHeaderLen")
	}
	// nghq's hello.txt: 00 15 "hello nghq multicast\n".
	frame := append(AppendDataHeader(nil, 21), "hello nghq multicast\n"...)
	if !bytes.Equal(frame[:2], []byte{0x00, 0x15}) {
		t.Errorf("DATA header %x", frame[:2])
	}
	ty, p, n, err := ParseFrame(frame)
	if err != nil || ty != TypeData || string(p) != "hello nghq multicast\n" || n != 23 {
		t.Errorf("ParseFrame: %v %q %d %v", ty, p, n, err)
	}
}

func TestDataWithOffset(t *testing.T) {
	// Hand-assembled from the frame layout of
	// draft-hurst-quic-http-data-offset-frame: type 0xd00 = varint 4d 00,
	// Length = len(Offset field) + len(Data).
	for _, tc := range []struct {
		offset uint64
		data   string
		wire   string
	}{
		{0, "abc", "4d00 04 00 616263"},
		{1 << 20, "", "4d00 04 80100000"},
		{10000, "x", "4d00 03 6710 78"},
		{MaxVarint - 1, "z", "4d00 09 fffffffffffffffe 7a"},
	} {
		wire := unhexT(t, tc.wire)
		h := AppendDataWithOffsetHeader(nil, tc.offset, len(tc.data))
		if got := append(h, tc.data...); !bytes.Equal(got, wire) {
			t.Errorf("offset %d: got %x, want %x", tc.offset, got, wire)
		}
		if DataWithOffsetHeaderLen(tc.offset, len(tc.data)) != len(h) {
			t.Errorf("offset %d: DataWithOffsetHeaderLen = %d, want %d", tc.offset, DataWithOffsetHeaderLen(tc.offset, len(tc.data)), len(h))
		}
		ty, p, n, err := ParseFrame(wire)
		if err != nil || ty != TypeDataWithOffset || n != len(wire) {
			t.Fatalf("ParseFrame(%x): %v %d %v", wire, ty, n, err)
		}
		off, data, err := ParseDataWithOffsetPayload(p)
		if err != nil || off != tc.offset || string(data) != tc.data {
			t.Errorf("ParseDataWithOffsetPayload(%x) = %d %q %v", p, off, data, err)
		}
	}
	for _, bad := range []string{"", "40", "c0 0000"} {
		if _, _, err := ParseDataWithOffsetPayload(unhexT(t, bad)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "offset") {
			t.Errorf("payload %q: err %v", bad, err)
		}
	}
	// Data reaching past 2^62-1 cannot exist.
	if _, _, err := ParseDataWithOffsetPayload(unhexT(t, "ffffffffffffffff 00 00")); !errors.Is(err, ErrMalformed) {
		t.Errorf("data beyond 2^62: err %v", err)
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 64)
	n := testing.AllocsPerRun(100, func() {
		b := AppendDataWithOffsetHeader(buf[:0], 123456, 1200)
		b = AppendDataHeader(b, 1200)
		b = AppendPushStreamHeader(b, 77)
		_, _, _, _ = ParseFrameHeader(b)
		_, _, _ = ParseDataWithOffsetPayload(b[3:])
	})
	if n != 0 {
		t.Errorf("frame header codec allocates %v times per run", n)
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(AppendPushPromise(nil, 0, []byte{0, 0, 0xd1}))
	f.Add(AppendCancelPush(nil, 7))
	f.Add(append(AppendDataWithOffsetHeader(nil, 99, 3), "abc"...))
	f.Add(append(AppendDataHeader(nil, 3), "abc"...))
	f.Add(AppendPushStreamHeader(nil, 5))
	f.Add([]byte{0x4d, 0x00, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = ParsePushStreamHeader(b)
		ty, p, n, err := ParseFrame(b)
		if err != nil {
			if err != ErrNeedMore {
				t.Fatalf("ParseFrame: %v is not ErrNeedMore", err)
			}
			return
		}
		if n > len(b) || len(p) > n {
			t.Fatalf("n %d, payload %d, input %d", n, len(p), len(b))
		}
		// Re-encoding with the minimal header gives the same frame content.
		again := append(AppendFrameHeader(nil, ty, uint64(len(p))), p...)
		ty2, p2, n2, err := ParseFrame(again)
		if err != nil || ty2 != ty || !bytes.Equal(p, p2) || n2 != len(again) {
			t.Fatalf("re-encoded frame differs: %v %v", ty2, err)
		}
		switch ty {
		case TypePushPromise:
			if id, fb, err := ParsePushPromisePayload(p); err == nil {
				_, p2, _, err := ParseFrame(AppendPushPromise(nil, id, fb))
				if err != nil || !bytes.Equal(p2, append(quicvarint.Append(nil, id), fb...)) {
					t.Fatalf("PUSH_PROMISE round trip")
				}
				_, _ = ParseFieldSection(fb, 0)
			}
		case TypeCancelPush:
			if id, err := ParseCancelPushPayload(p); err == nil {
				if _, p2, _, _ := ParseFrame(AppendCancelPush(nil, id)); len(p2) > len(p) {
					t.Fatalf("CANCEL_PUSH re-encodes longer")
				}
			}
		case TypeDataWithOffset:
			if off, data, err := ParseDataWithOffsetPayload(p); err == nil {
				h := AppendDataWithOffsetHeader(nil, off, len(data))
				_, p2, _, err := ParseFrame(append(h, data...))
				if err != nil {
					t.Fatal(err)
				}
				off2, data2, err := ParseDataWithOffsetPayload(p2)
				if err != nil || off2 != off || !bytes.Equal(data, data2) {
					t.Fatalf("DATA_WITH_OFFSET round trip")
				}
			}
		case TypeHeaders:
			_, _ = ParseFieldSection(p, 0)
		}
	})
}
