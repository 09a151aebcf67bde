package manifest

import (
	"github.com/h3m-project/h3m/mquic/wire"

	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// rfc8032Seed is the secret key of RFC 8032 §7.1 TEST 1, and rfc8032Public
// its public key as the RFC prints it.
const (
	rfc8032Seed   = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
	rfc8032Public = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testKey returns the RFC 8032 TEST 1 key as a SigningKey.
func testKey(t testing.TB) *SigningKey {
	t.Helper()
	k, err := NewSigningKey(ed25519.NewKeyFromSeed(unhex(t, rfc8032Seed)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testDigests(n int, salt byte) []byte {
	var b []byte
	for i := range n {
		d := Sum([]byte{salt, byte(i), byte(i >> 8)})
		b = append(b, d[:]...)
	}
	return b
}

func TestRFC8032Key(t *testing.T) {
	k := testKey(t)
	if got := hex.EncodeToString(k.Public().Bytes()); got != rfc8032Public {
		t.Fatalf("public key %s, RFC 8032 TEST 1 says %s", got, rfc8032Public)
	}
	// RFC 8032 TEST 1 signs the empty message: the signer underneath is
	// plain Ed25519.
	const sig = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155" +
		"5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
	if !ed25519.Verify(ed25519.PublicKey(k.Public().Bytes()), nil, unhex(t, sig)) {
		t.Fatal("RFC 8032 TEST 1 signature does not verify")
	}
}

func TestAppendParseRoundTrip(t *testing.T) {
	key := testKey(t)
	tlvs, err := AppendTLV(nil, TLVRefreshDeadline, []byte{0, 30})
	if err != nil {
		t.Fatal(err)
	}
	if tlvs, err = AppendTLV(tlvs, TLVPad, []byte{0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		m    Manifest
	}{
		{"one digest", Manifest{StreamID: 1, Seq: 0, FirstPN: 0, Digests: testDigests(1, 1)}},
		{"many digests", Manifest{StreamID: 0xffffffff, Seq: 0xffffffff, FirstPN: 1 << 40, Digests: testDigests(33, 2)}},
		{"tlvs", Manifest{StreamID: 7, Seq: 9, FirstPN: 100, TLVs: tlvs, Digests: testDigests(3, 3)}},
		{"last packet number", Manifest{StreamID: 7, Seq: 9, FirstPN: wire.MaxPacketNumber - 1, Digests: testDigests(2, 4)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			b, err := m.Append([]byte("prefix"), key, nil)
			if err != nil {
				t.Fatal(err)
			}
			b = b[len("prefix"):]
			if len(b) != Len(DigestSHA256, m.Count(), len(m.TLVs), 64) {
				t.Fatalf("encoded %d bytes, Len says %d", len(b), Len(DigestSHA256, m.Count(), len(m.TLVs), 64))
			}
			got, n, err := Parse(append(b, 0xee), DigestSHA256) // a trailing byte is not part of it
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b) {
				t.Fatalf("parsed %d bytes of %d", n, len(b))
			}
			if got.StreamID != m.StreamID || got.Seq != m.Seq || got.FirstPN != m.FirstPN ||
				!bytes.Equal(got.TLVs, m.TLVs) || !bytes.Equal(got.Digests, m.Digests) ||
				got.Alg != Ed25519 || got.KeyID != key.Public().ID() || !bytes.Equal(got.Signature, m.Signature) {
				t.Fatalf("parsed %+v, encoded %+v", got, m)
			}
			if !bytes.Equal(got.SignedBytes(), b[:len(b)-64]) {
				t.Fatal("signed bytes are not everything before the signature")
			}
			if err := key.Public().Verify(&got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Listed(got.Count()-1), m.Listed(m.Count()-1)) || got.LastPN() != m.FirstPN+uint64(m.Count())-1 {
				t.Fatal("Digest or LastPN wrong")
			}
		})
	}
}

// Every byte of a signed manifest is covered: flipping any bit of it makes
// verification fail (or parsing, or the key check).
func TestEveryBitIsSigned(t *testing.T) {
	key := testKey(t)
	m := Manifest{StreamID: 5, Seq: 6, FirstPN: 7, Digests: testDigests(2, 5)}
	b, err := m.Append(nil, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(b) * 8 {
		c := bytes.Clone(b)
		c[i/8] ^= 1 << (i % 8)
		p, _, err := Parse(c, DigestSHA256)
		if err != nil {
			continue
		}
		if err := key.Public().Verify(&p); err == nil {
			t.Fatalf("bit %d flipped and the manifest still verifies", i)
		}
	}
}

// The signature is over the context string and the manifest, so a plain
// Ed25519 signature of the manifest bytes (what another protocol using the
// same key might produce) does not verify.
func TestSignatureContext(t *testing.T) {
	key := testKey(t)
	m := Manifest{StreamID: 5, Seq: 6, FirstPN: 7, Digests: testDigests(1, 6)}
	b, err := m.Append(nil, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _, _ := Parse(b, DigestSHA256)
	plain := ed25519.Sign(ed25519.NewKeyFromSeed(unhex(t, rfc8032Seed)), p.SignedBytes())
	copy(b[len(b)-64:], plain)
	p, _, _ = Parse(b, DigestSHA256)
	if err := key.Public().Verify(&p); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a signature without the context verified (%v)", err)
	}
}

func TestECDSA(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := NewSigningKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key.Public().Algorithm() != ECDSAP256SHA256 || len(key.Public().Bytes()) != 65 {
		t.Fatalf("key %s of %d bytes", key.Public().Algorithm(), len(key.Public().Bytes()))
	}
	m := Manifest{StreamID: 1, Seq: 2, FirstPN: 3, Digests: testDigests(4, 7)}
	b, err := m.Append(nil, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := Parse(b, DigestSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Public().Verify(&p); err != nil {
		t.Fatal(err)
	}
	// The profile round-trips the uncompressed point.
	prof, err := NewProfile(&priv.PublicKey, 99)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseProfile(prof.Value())
	if err != nil {
		t.Fatal(err)
	}
	if !back.Key.Equal(key.Public()) || back.StreamID != 99 {
		t.Fatal("ECDSA profile did not round-trip")
	}
	b[len(b)-1] ^= 1
	p, _, _ = Parse(b, DigestSHA256)
	if err := key.Public().Verify(&p); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("tampered ECDSA signature: %v", err)
	}
	// An Ed25519 key does not verify an ECDSA manifest.
	if err := testKey(t).Public().Verify(&p); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewPublicKey(&other.PublicKey); err == nil {
		t.Fatal("a P-384 key was accepted")
	}
}

func TestWrongKey(t *testing.T) {
	key := testKey(t)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := NewSigningKey(other, nil)
	m := Manifest{StreamID: 1, Seq: 2, FirstPN: 3, Digests: testDigests(1, 8)}
	b, _ := m.Append(nil, otherKey, nil)
	p, _, _ := Parse(b, DigestSHA256)
	if err := key.Public().Verify(&p); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("manifest of another key: %v", err)
	}
	// Same key ID claimed, but signed by the other key.
	id := key.Public().ID()
	copy(b[HeaderLen+DigestLen+2:], id[:])
	p, _, _ = Parse(b, DigestSHA256)
	if err := key.Public().Verify(&p); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("forged key ID: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	key := testKey(t)
	m := Manifest{StreamID: 1, Seq: 2, FirstPN: 3, Digests: testDigests(2, 9)}
	good, _ := m.Append(nil, key, nil)
	set := func(off int, v ...byte) []byte {
		b := bytes.Clone(good)
		copy(b[off:], v)
		return b
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		field string
		err   error
	}{
		{"empty", nil, "header", wire.ErrTruncated},
		{"short header", good[:HeaderLen-1], "header", wire.ErrTruncated},
		{"packet number beyond 2^62", set(8, 0x40), "first packet number", ErrInvalid},
		{"digests pass 2^62-1", set(8, 0x3f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "packet digest count", ErrInvalid},
		{"no digests", set(16, 0, 0), "packet digest count", ErrInvalid},
		{"digests truncated", good[:HeaderLen+DigestLen], "packet digests", wire.ErrTruncated},
		{"signature block truncated", good[:HeaderLen+2*DigestLen+TrailerLen-1], "signature block", wire.ErrTruncated},
		{"signature truncated", good[:len(good)-1], "signature", wire.ErrTruncated},
		{"tlv length truncated", set(16, 0x80, 2)[:HeaderLen+1], "TLV length", wire.ErrTruncated},
		{"tlvs truncated", set(16, 0x80, 2, 0, 200), "TLVs", wire.ErrTruncated},
		{"tlv runs past", append(set(16, 0x80, 2)[:HeaderLen], 0, 3, 1, 5, 0, 0), "TLV length", ErrInvalid},
		{"long tlv runs past", append(set(16, 0x80, 2)[:HeaderLen], 0, 4, 128, 0, 2, 0), "TLV length", ErrInvalid},
		{"tlv header runs past", append(set(16, 0x80, 2)[:HeaderLen], 0, 2, 128, 0), "TLV length", ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(tc.in, DigestSHA256)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Field != tc.field || !errors.Is(err, tc.err) {
				t.Fatalf("got %v, want field %q: %v", err, tc.field, tc.err)
			}
			if !strings.HasPrefix(err.Error(), "manifest: "+tc.field) {
				t.Fatalf("message %q does not name the field", err)
			}
		})
	}
	// A signature of another length than the algorithm's parses, but never
	// verifies.
	b := append(set(len(good)-64-2, 0, 65), 0)
	p, _, err := Parse(b, DigestSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := key.Public().Verify(&p); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("65-byte signature: %v", err)
	}
}

func TestAppendErrors(t *testing.T) {
	key := testKey(t)
	for _, tc := range []struct {
		name  string
		m     Manifest
		field string
	}{
		{"no digests", Manifest{}, "packet digest count"},
		{"partial digest", Manifest{Digests: make([]byte, 33)}, "packet digests"},
		{"too many", Manifest{Digests: make([]byte, (MaxDigests+1)*DigestLen)}, "packet digest count"},
		{"beyond 2^62", Manifest{FirstPN: wire.MaxPacketNumber, Digests: make([]byte, 2*DigestLen)}, "first packet number"},
		{"bad tlvs", Manifest{TLVs: []byte{5}, Digests: make([]byte, DigestLen)}, "TLV length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.m.Append([]byte{1}, key, nil)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Field != tc.field {
				t.Fatalf("got %v, want field %q", err, tc.field)
			}
			if !bytes.Equal(out, []byte{1}) {
				t.Fatal("dst changed on error")
			}
		})
	}
	if _, err := AppendTLV(nil, 5, make([]byte, 256)); err == nil {
		t.Fatal("256-byte value of a short TLV accepted")
	}
}

func TestFrame(t *testing.T) {
	key := testKey(t)
	m := Manifest{StreamID: 1, Seq: 2, FirstPN: 3, Digests: testDigests(2, 10)}
	body, _ := m.Append(nil, key, nil)
	f := AppendFrame(nil, body)
	if len(f) != FrameLen(len(body)) {
		t.Fatalf("frame of %d bytes, FrameLen says %d", len(f), FrameLen(len(body)))
	}
	if !bytes.Equal(f[:4], []byte{0x8f, 0xf3, 0xe8, 0xa0}) {
		t.Fatalf("frame type encoded as %x", f[:4])
	}
	got, n, err := ParseFrame(append(f, 0x01), DigestSHA256) // a PING after it
	if err != nil || n != len(f) || got.Seq != 2 {
		t.Fatalf("ParseFrame: %v, %d of %d bytes", err, n, len(f))
	}
	for _, tc := range []struct {
		name  string
		in    []byte
		field string
	}{
		{"empty", nil, "type"},
		{"other type", []byte{0x01}, "type"},
		{"type not minimal", append([]byte{0xc0, 0, 0, 0}, f[:4]...), "type"},
		{"no length", f[:4], "length"},
		{"short", f[:len(f)-1], "manifest"},
		{"trailing bytes", AppendFrame(nil, append(bytes.Clone(body), 0)), "length"},
		{"bad manifest", AppendFrame(nil, body[:10]), "header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseFrame(tc.in, DigestSHA256)
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Field != tc.field {
				t.Fatalf("got %v, want field %q", err, tc.field)
			}
		})
	}
}

func TestProfile(t *testing.T) {
	key := testKey(t)
	prof, err := NewProfile(key.Public(), 0x01020304)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		alg  DigestAlg
		want string
	}{
		{DigestSalted128, "82" + "0807" + "01020304" + rfc8032Public}, // NewProfile's default
		{DigestSHA256, "01" + "0807" + "01020304" + rfc8032Public},
	} {
		v := prof.Value()
		if hex.EncodeToString(v) != tc.want {
			t.Fatalf("profile %x, want %s", v, tc.want)
		}
		back, err := ParseProfile(v)
		if err != nil || back.Digest != tc.alg || back.StreamID != 0x01020304 || !back.Key.Equal(key.Public()) {
			t.Fatalf("round trip: %v", err)
		}
		prof.Digest = DigestSHA256
	}
	for _, tc := range []struct {
		name, in, field string
	}{
		{"empty", "", "header"},
		{"short", "010807", "header"},
		// sha-256-128 without a salt: collisions cost 2^64 (spec).
		{"truncated sha-256", "02" + "0807" + "01020304" + rfc8032Public, "digest algorithm"},
		{"unknown digest", "00" + "0807" + "01020304" + rfc8032Public, "digest algorithm"},
		{"unknown algorithm", "01" + "0808" + "01020304" + rfc8032Public, "public key"},
		{"short key", "01" + "0807" + "01020304" + rfc8032Public[:62], "public key"},
		{"not a point", "01" + "0403" + "01020304" + "04" + strings.Repeat("00", 64), "public key"},
		// y = 2 is no point's y-coordinate: no signature could verify.
		{"ed25519 not a point", "01" + "0807" + "01020304" + "02" + strings.Repeat("00", 31), "public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProfile(unhex(t, tc.in))
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Field != tc.field {
				t.Fatalf("got %v, want field %q", err, tc.field)
			}
		})
	}
}

func TestFitDigests(t *testing.T) {
	for _, dig := range []DigestAlg{DigestSHA256, DigestSalted128} {
		for _, size := range []int{100, 200, 1000, 1151, 1171, 1400, 65000} {
			n := FitDigests(size, dig, Ed25519)
			if n > 0 && FrameLen(Len(dig, n, 0, 64)) > size {
				t.Errorf("%v: %d digests need %d bytes, more than %d", dig, n, FrameLen(Len(dig, n, 0, 64)), size)
			}
			if n < MaxDigests && FrameLen(Len(dig, n+1, 0, 64)) <= size {
				t.Errorf("%v: %d bytes fit %d digests, FitDigests says %d", dig, size, n+1, n)
			}
		}
	}
	// A 1200-byte packet of this project's sender (8-byte session ID,
	// 4-byte packet number, 16-byte tag) has 1171 bytes of room.
	if n := FitDigests(1171, DigestSHA256, Ed25519); n != 33 {
		t.Errorf("1171 bytes fit %d digests, want 33", n)
	}
	if n := FitDigests(1171, DigestSalted128, Ed25519); n != 65 {
		t.Errorf("1171 bytes fit %d salted digests, want 65", n)
	}
}

// A DigestSalted128 manifest's encoding, and the errors that name its Salt.
func TestSaltedManifest(t *testing.T) {
	key := testKey(t)
	salt := bytes.Repeat([]byte{0x5a}, SaltLen)
	d := Sum([]byte("packet"))
	m := Manifest{DigestAlg: DigestSalted128, StreamID: 7, Seq: 1, FirstPN: 9, Salt: salt, Digests: DigestSalted128.List(salt, d)}
	b, err := m.Append(nil, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != Len(DigestSalted128, 1, 0, 64) || !bytes.Equal(b[HeaderLen:HeaderLen+SaltLen], salt) {
		t.Fatalf("encoded %x", b)
	}
	// The listed digest: the first 16 bytes of SHA-256(Salt ‖ SHA-256(packet)).
	want := sha256.Sum256(append(append([]byte(nil), salt...), d[:]...))
	if !bytes.Equal(m.Digests, want[:16]) {
		t.Fatalf("listed %x, want %x", m.Digests, want[:16])
	}
	p, n, err := Parse(b, DigestSalted128)
	if err != nil || n != len(b) || !bytes.Equal(p.Salt, salt) || p.Count() != 1 || !p.Lists(0, &d) {
		t.Fatalf("parsed %+v, %v", p, err)
	}
	if other := Sum([]byte("packet!")); p.Lists(0, &other) {
		t.Fatal("another packet matches")
	}
	if err := key.Public().Verify(&p); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		err   error
		field string
	}{
		{"salt truncated", func() error { _, _, err := Parse(b[:HeaderLen+SaltLen-1], DigestSalted128); return err }(), "salt"},
		{"digests truncated", func() error { _, _, err := Parse(b[:HeaderLen+SaltLen+15], DigestSalted128); return err }(), "packet digests"},
		{"unknown algorithm", func() error { _, _, err := Parse(b, 2); return err }(), "digest algorithm"},
		{"no salt", func() error {
			_, err := (&Manifest{DigestAlg: DigestSalted128, Digests: make([]byte, 16)}).Append(nil, key, nil)
			return err
		}(), "salt"},
		{"salt in sha-256", func() error {
			_, err := (&Manifest{Salt: salt, Digests: make([]byte, DigestLen)}).Append(nil, key, nil)
			return err
		}(), "salt"},
	} {
		var pe *ParseError
		if !errors.As(tc.err, &pe) || pe.Field != tc.field {
			t.Errorf("%s: got %v, want field %q", tc.name, tc.err, tc.field)
		}
	}
}

func TestIsFrame(t *testing.T) {
	if !IsFrame(AppendFrame(nil, nil)) {
		t.Fatal("MANIFEST frame type not recognized")
	}
	for _, b := range [][]byte{nil, {0x8f, 0xf3, 0xe8}, {0x8f, 0xf3, 0xe8, 0xa1}, {0x08, 0, 0, 0}} {
		if IsFrame(b) {
			t.Fatalf("%x taken for a MANIFEST frame", b)
		}
	}
}

// Ed25519 manifests are signed and verified with curve25519-voi (key.go);
// crypto/ed25519 must agree with it both ways on the signatures anyone can
// make, including one whose S is not reduced (S + L), which both refuse
// (TestBatchAgreesWithSingle shows where the two differ).
func TestEd25519AgreesWithStdlib(t *testing.T) {
	key := testKey(t)
	std := ed25519.NewKeyFromSeed(unhex(t, rfc8032Seed))
	m := Manifest{StreamID: 5, Seq: 6, FirstPN: 7, Digests: testDigests(33, 7)}
	b, err := m.Append(nil, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, _, _ := Parse(b, DigestSHA256)
	signed := append([]byte(signatureContext), p.SignedBytes()...)
	if !ed25519.Verify(std.Public().(ed25519.PublicKey), signed, p.Signature) {
		t.Fatal("crypto/ed25519 refuses the signer's signature")
	}
	if got := ed25519.Sign(std, signed); !bytes.Equal(got, p.Signature) {
		t.Fatalf("signature %x, crypto/ed25519 makes %x", p.Signature, got)
	}
	// S + L, L the group order (little-endian), encodes the same scalar
	// unreduced: RFC 8032 §5.1.7 rejects it.
	l := unhex(t, "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")
	sig := bytes.Clone(p.Signature)
	carry := 0
	for i := range 32 {
		v := int(sig[32+i]) + int(l[i]) + carry
		sig[32+i], carry = byte(v), v>>8
	}
	if carry != 0 || sig[63]&0xe0 != 0 {
		t.Fatal("S + L does not fit in 253 bits")
	}
	copy(b[len(b)-64:], sig)
	p, _, _ = Parse(b, DigestSHA256)
	if ed25519.Verify(std.Public().(ed25519.PublicKey), signed, sig) {
		t.Fatal("crypto/ed25519 takes an unreduced S")
	}
	if err := key.Public().Verify(&p); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("an unreduced S verified (%v)", err)
	}
}
