package manifest

import (
	"github.com/h3m-project/h3m/mquic/wire"

	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

// fuzzSeeds returns valid encodings to start from: the worked example's
// manifest and frame, and a manifest with TLVs.
func fuzzSeeds(t testing.TB) (manifest, frame, withTLVs []byte) {
	key := testKey(t)
	d := Sum(unhex(t, rfc9001A5))
	m := Manifest{StreamID: vectorStreamID, Seq: vectorSeq, FirstPN: vectorPN, Digests: d[:]}
	manifest, _ = m.Append(nil, key, nil)
	tlvs, _ := AppendTLV(nil, TLVRefreshDeadline, []byte{0, 30})
	m2 := Manifest{StreamID: 1, Seq: 2, FirstPN: 3, TLVs: tlvs, Digests: testDigests(2, 1)}
	withTLVs, _ = m2.Append(nil, key, nil)
	return manifest, AppendFrame(nil, manifest), withTLVs
}

// FuzzParse: Parse never panics, never reads past its input, and what it
// accepts re-encodes to the same bytes (the format has one encoding).
func FuzzParse(f *testing.F) {
	m, _, tl := fuzzSeeds(f)
	f.Add(m)
	f.Add(tl)
	f.Add(m[:HeaderLen])
	f.Add([]byte{})
	key := testKey(f)
	f.Add(saltedSeed(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, alg := range []DigestAlg{DigestSHA256, DigestSalted128} {
			fuzzParse(t, b, alg, key)
		}
	})
}

// saltedSeed returns a manifest listing two digests of DigestSalted128.
func saltedSeed(t testing.TB) []byte {
	m := Manifest{DigestAlg: DigestSalted128, StreamID: 1, Seq: 2, FirstPN: 3, Salt: bytes.Repeat([]byte{0x5a}, SaltLen), Digests: testDigests(2, 1)[:32]}
	b, err := m.Append(nil, testKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fuzzParse(t *testing.T, b []byte, alg DigestAlg, key *SigningKey) {
	p, n, err := Parse(b, alg)
	if err != nil {
		var pe *ParseError
		if !errors.As(err, &pe) || (!errors.Is(err, wire.ErrTruncated) && !errors.Is(err, ErrInvalid)) {
			t.Fatalf("error %v is not a ParseError with a sentinel cause", err)
		}
		return
	}
	if n > len(b) || n != len(p.SignedBytes())+len(p.Signature) {
		t.Fatalf("length %d of %d", n, len(b))
	}
	// Re-encode the signed part: byte-identical.
	var pub PublicKey
	pub.alg, pub.id = p.Alg, p.KeyID
	again := p.appendSigned(nil, &pub)
	binary.BigEndian.PutUint16(again[len(again)-2:], uint16(len(p.Signature)))
	if !bytes.Equal(again, p.SignedBytes()) {
		t.Fatalf("re-encoded %x, parsed %x", again, p.SignedBytes())
	}
	_ = key.Public().Verify(&p) // must not panic
}

// FuzzParseFrame: ParseFrame never panics and accepts only frames whose
// manifest fills them.
func FuzzParseFrame(f *testing.F) {
	_, fr, tl := fuzzSeeds(f)
	f.Add(fr)
	f.Add(AppendFrame(nil, tl))
	f.Add(fr[:6])
	f.Add(AppendFrame(nil, saltedSeed(f)))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, alg := range []DigestAlg{DigestSHA256, DigestSalted128} {
			fuzzParseFrame(t, b, alg)
		}
	})
}

func fuzzParseFrame(t *testing.T, b []byte, alg DigestAlg) {
	m, n, err := ParseFrame(b, alg)
	if err != nil {
		return
	}
	// The Length varint may be longer than needed (RFC 9000 §16).
	ml := len(m.SignedBytes()) + len(m.Signature)
	if lenField := n - frameTypeLen - ml; n > len(b) || lenField != 1 && lenField != 2 && lenField != 4 && lenField != 8 {
		t.Fatalf("frame of %d bytes, manifest of %d", n, ml)
	}
}

// FuzzParseProfile: ParseProfile never panics and round-trips what it
// accepts.
func FuzzParseProfile(f *testing.F) {
	prof, _ := NewProfile(testKey(f).Public(), vectorStreamID)
	f.Add(prof.Value())
	f.Add(unhex(f, "01040368336d3104"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b)
		if err != nil {
			return
		}
		if !bytes.Equal(p.Value(), b) {
			t.Fatalf("profile %x re-encodes as %x", b, p.Value())
		}
	})
}

// FuzzAuthenticator feeds an Authenticator a session of real packets and
// manifests interleaved with fuzzed manifests and packets. Whatever comes,
// no packet is released that a real manifest did not list, nothing is
// released twice, and the caps hold.
func FuzzAuthenticator(f *testing.F) {
	m, _, tl := fuzzSeeds(f)
	f.Add(m, []byte("pkt 3 real"), uint16(3))
	f.Add(tl, []byte("forged"), uint16(0))
	f.Add([]byte{}, []byte{}, uint16(0xffff))
	f.Add(saltedSeed(f), []byte("pkt 3 real"), uint16(3))
	type setup struct {
		prof *Profile
		real *Manifest
	}
	var setups []setup
	for _, prof := range []*Profile{testProfile(f), saltedProfile(f)} {
		setups = append(setups, setup{prof, newAlgHarness(f, AuthConfig{}, prof).manifest(0, 0, 6, "real")})
	}
	key := testKey(f)
	f.Fuzz(func(t *testing.T, fuzzManifest, fuzzPacket []byte, fuzzPN uint16) {
		for _, s := range setups {
			fuzzAuthenticator(t, s.prof, key, s.real, fuzzManifest, fuzzPacket, fuzzPN)
		}
	})
}

func fuzzAuthenticator(t *testing.T, prof *Profile, key *SigningKey, real *Manifest, fuzzManifest, fuzzPacket []byte, fuzzPN uint16) {
	h := &authHarness{t: t, key: key, alg: prof.Digest}
	released := map[uint64]int{}
	a, err := NewAuthenticator(prof, AuthConfig{MaxHeldPackets: 8, MaxDigests: 8}, func(pn uint64, p []byte, _ int, _ bool) {
		released[pn]++
		if string(p) != string(packet(pn, "real")) {
			t.Fatalf("released %q as packet %d", p, pn)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	h.a = a
	now := time.Unix(1000, 0)
	for pn := range uint64(6) {
		h.arrive(pn, "real", now)
		fp, _, err := Parse(fuzzManifest, prof.Digest)
		if err == nil {
			_ = a.HandleManifest(&fp, now)
		}
		d := Sum(fuzzPacket)
		// Lent every other time, the buffer reused after Keep.
		lent := append([]byte(nil), fuzzPacket...)
		switch {
		case a.Authenticate(&d, uint64(fuzzPN), now):
		case pn%2 == 1:
			a.HoldLent(&d, uint64(fuzzPN), lent, len(lent), false, now)
		default:
			a.Hold(&d, uint64(fuzzPN), fuzzPacket, len(fuzzPacket), false, now)
		}
		a.Keep()
		for i := range lent {
			lent[i] ^= 0xff
		}
		if st := a.Stats(); st.Held > 8 || st.WaitingDigests > 8 {
			t.Fatalf("caps broken: %+v", st)
		}
	}
	_ = a.HandleManifest(real, now)
	for pn, n := range released {
		if n > 1 || pn >= 6 {
			t.Fatalf("packet %d released %d times", pn, n)
		}
	}
	a.Expire(now.Add(time.Hour))
	if st := a.Stats(); st.Held != 0 || st.WaitingDigests != 0 || st.HeldBytes != 0 {
		t.Fatalf("state left after expiry: %+v", st)
	}
	if a.heldPN.len() != 0 || a.held.n != 0 || a.digests.len() != 0 {
		t.Fatalf("indexes not empty after expiry: %d, %d, %d", a.heldPN.len(), a.held.n, a.digests.len())
	}
}
