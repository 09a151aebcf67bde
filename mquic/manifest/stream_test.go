package manifest

import (
	"github.com/h3m-project/h3m/mquic/wire"

	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

// streamSeeds returns three manifests back to back (the worked example's,
// one with TLVs, one of 300 digests) and their encodings.
func streamSeeds(t testing.TB) ([]byte, [][]byte) {
	t.Helper()
	vec, _, tlv := fuzzSeeds(t)
	big := Manifest{StreamID: 9, Seq: 1 << 31, FirstPN: wire.MaxPacketNumber - 299, Digests: testDigests(300, 3)}
	b, err := big.Append(nil, testKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	parts := [][]byte{vec, tlv, b}
	return bytes.Join(parts, nil), parts
}

func TestStreamReader(t *testing.T) {
	stream, parts := streamSeeds(t)
	// The worked example of spec/transport.md is the first manifest.
	if want := unhex(t, "68336d3100000007000000002700bff40001c9759440440569185c4698c4d95901279b66c9405661cd09cb41bbe0ab137e360807a70937e86c387269004006158935d4c245e7cc044d820941d032d588f28d31c0a90dbdae7d8609c16bd3f603d4a8a232e00ef23f7415bf71545b8ca02fb4e0eb58523872d3fc9b6f8503"); !bytes.Equal(parts[0], want) {
		t.Fatalf("seed is not the worked example: %x", parts[0])
	}
	for name, r := range map[string]io.Reader{
		"whole":    bytes.NewReader(stream),
		"one byte": iotest.OneByteReader(bytes.NewReader(stream)),
		"half":     iotest.HalfReader(bytes.NewReader(stream)),
	} {
		sr := NewStreamReader(r, DigestSHA256, 0)
		for i, want := range parts {
			m, b, err := sr.Next()
			if err != nil {
				t.Fatalf("%s: manifest %d: %v", name, i, err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("%s: manifest %d: %x, want %x", name, i, b, want)
			}
			if err := testKey(t).Public().Verify(&m); err != nil {
				t.Fatalf("%s: manifest %d: %v", name, i, err)
			}
		}
		if _, _, err := sr.Next(); err != io.EOF {
			t.Fatalf("%s: at the end: %v, want EOF", name, err)
		}
		if _, _, err := sr.Next(); err != io.EOF {
			t.Fatalf("%s: again: %v", name, err)
		}
	}
}

func TestStreamReaderErrors(t *testing.T) {
	stream, parts := streamSeeds(t)
	// Ends inside the second manifest.
	sr := NewStreamReader(bytes.NewReader(stream[:len(parts[0])+20]), DigestSHA256, 0)
	if _, _, err := sr.Next(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sr.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated: %v", err)
	}
	// A limit below the third manifest's length.
	sr = NewStreamReader(iotest.OneByteReader(bytes.NewReader(stream)), DigestSHA256, len(parts[2])-1)
	sr.Next()
	sr.Next()
	if _, _, err := sr.Next(); !errors.Is(err, ErrTooLong) {
		t.Fatalf("over the limit: %v", err)
	}
	// A malformed manifest (digest count 0) after a good one.
	bad := append(bytes.Clone(parts[0]), parts[1]...)
	bad[len(parts[0])+16], bad[len(parts[0])+17] = 0x80, 0
	sr = NewStreamReader(bytes.NewReader(bad), DigestSHA256, 0)
	sr.Next()
	_, _, err := sr.Next()
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Field != "packet digest count" {
		t.Fatalf("malformed: %v", err)
	}
	if _, _, err2 := sr.Next(); err2 != err {
		t.Fatalf("error not sticky: %v", err2)
	}
	// A read error is passed on.
	sr = NewStreamReader(iotest.ErrReader(io.ErrClosedPipe), DigestSHA256, 0)
	if _, _, err := sr.Next(); err != io.ErrClosedPipe {
		t.Fatalf("read error: %v", err)
	}
}

// FuzzStreamReader: whatever the bytes, the reader returns manifests that
// Parse accepts, back to back from the start of the input, and ends with a
// clear error; it never panics or returns more bytes than it read.
func FuzzStreamReader(f *testing.F) {
	stream, parts := streamSeeds(f)
	f.Add(stream, uint16(0))
	f.Add(parts[0], uint16(1))
	f.Add(stream[:len(stream)-1], uint16(7))
	f.Add([]byte{}, uint16(0))
	f.Add(saltedSeed(f), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, maxLen uint16) {
		for _, alg := range []DigestAlg{DigestSHA256, DigestSalted128} {
			fuzzStreamReader(t, b, maxLen, alg)
		}
	})
}

func fuzzStreamReader(t *testing.T, b []byte, maxLen uint16, alg DigestAlg) {
	sr := NewStreamReader(iotest.HalfReader(bytes.NewReader(b)), alg, int(maxLen))
	pos := 0
	for {
		m, raw, err := sr.Next()
		if err != nil {
			var pe *ParseError
			switch {
			case err == io.EOF:
				if pos != len(b) {
					t.Fatalf("EOF after %d of %d bytes", pos, len(b))
				}
			case err == io.ErrUnexpectedEOF, errors.Is(err, ErrTooLong), errors.As(err, &pe):
			default:
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if !bytes.Equal(raw, b[pos:pos+len(raw)]) {
			t.Fatalf("manifest at %d is not the input's bytes", pos)
		}
		again, n, err := Parse(raw, alg)
		if err != nil || n != len(raw) || again.Seq != m.Seq || again.FirstPN != m.FirstPN {
			t.Fatalf("returned manifest does not parse back: %v", err)
		}
		pos += len(raw)
	}
}

// TestSignerOnManifest: the hook sees every manifest once, signed, in
// sequence order, byte-identical to the MANIFEST frames' payloads.
func TestSignerOnManifest(t *testing.T) {
	var got [][]byte
	s := newTestSigner(t, SignerConfig{PacketsPerManifest: 4, OnManifest: func(m []byte) {
		got = append(got, bytes.Clone(m))
	}}, 1171)
	now := time.Unix(1000, 0)
	frames := map[uint32][]byte{}
	for pn := uint64(0); pn < 10; pn++ {
		s.Add(pn, pkt(pn), true, now)
		for {
			f, err := s.Next(now, false)
			if err != nil {
				t.Fatal(err)
			}
			if f == nil {
				break
			}
			m, _, err := ParseFrame(f, DigestSHA256)
			if err != nil {
				t.Fatal(err)
			}
			frames[m.Seq] = bytes.Clone(f[len(f)-len(m.SignedBytes())-len(m.Signature):])
		}
	}
	drain(t, s, now, true)
	if len(frames) != 2 {
		t.Fatalf("%d manifests sent before the end, want 2", len(frames))
	}
	if len(got) != 3 {
		t.Fatalf("%d manifests handed out, want 3 (4+4+2 packets)", len(got))
	}
	for i, b := range got {
		m, n, err := Parse(b, DigestSHA256)
		if err != nil || n != len(b) {
			t.Fatalf("manifest %d: %v", i, err)
		}
		if m.Seq != uint32(i) {
			t.Fatalf("manifest %d has sequence number %d", i, m.Seq)
		}
		if err := testProfile(t).Key.Verify(&m); err != nil {
			t.Fatal(err)
		}
		if f, ok := frames[m.Seq]; ok && !bytes.Equal(f, b) {
			t.Fatalf("manifest %d differs from its frame", i)
		}
	}
}

func TestEachHeld(t *testing.T) {
	h := newAuthHarness(t, AuthConfig{})
	t0 := time.Now()
	for pn := uint64(5); pn < 9; pn++ {
		h.arrive(pn, "x", t0.Add(time.Duration(pn)*time.Millisecond))
	}
	if err := h.a.HandleManifest(h.manifest(0, 6, 1, "x"), t0); err != nil {
		t.Fatal(err)
	}
	var pns []uint64
	h.a.EachHeld(func(pn uint64, since time.Time, manifestOnly bool) bool {
		if want := t0.Add(time.Duration(pn) * time.Millisecond); !since.Equal(want) || manifestOnly {
			t.Fatalf("packet %d held since %v, want %v", pn, since, want)
		}
		pns = append(pns, pn)
		return pn < 7
	})
	if len(pns) != 2 || pns[0] != 5 || pns[1] != 7 {
		t.Fatalf("held %v, want [5 7] (6 released, stopped after 7)", pns)
	}
}
