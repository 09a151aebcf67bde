package manifest

import (
	"github.com/h3m-project/h3m/mquic/wire"

	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// ExtensionID is the transport parameter ID under which a session's
// extensions parameter advertises asymmetric packet authentication (an
// experimental value; the draft's extensions parameter takes 16-bit IDs).
// Its value is the session's Profile. A session that advertises it is an
// asymmetric session; one that does not is symmetric.
const ExtensionID uint16 = 0xff3e

// DigestAlg is how a session's manifests list packet digests: the
// profile's first byte.
type DigestAlg uint8

// The digest algorithms.
const (
	// DigestSHA256 lists each packet's SHA-256, 32 bytes. Its number is
	// sha-256's in the IANA Named Information Hash Algorithm registry, the
	// numbering draft-jholland-quic-multicast uses.
	DigestSHA256 DigestAlg = 1
	// DigestSalted128 lists, for each packet, the first 16 bytes of
	// SHA-256(Salt ‖ SHA-256(packet)), with a Salt of 16 random bytes that
	// the sender draws for each manifest when it signs it, after the
	// packets it lists are sealed (randomized hashing): a key holder who
	// makes the sender send a packet of its choice cannot have prepared a
	// second packet with the same listed digest, so forging one costs a
	// second preimage (2^128) rather than a collision (2^64); see
	// spec/transport.md. The number is outside the registry's 6-bit range,
	// so that it never names a registered hash. Manifests list about twice
	// as many packets as with DigestSHA256.
	DigestSalted128 DigestAlg = 0x82
	// DefaultDigestAlg is NewProfile's.
	DefaultDigestAlg = DigestSalted128
)

// SaltLen is the length of a manifest's Salt (DigestSalted128).
const SaltLen = 16

// Len returns the length of a listed digest (0 for an unknown algorithm).
func (d DigestAlg) Len() int {
	switch d {
	case DigestSHA256:
		return DigestLen
	case DigestSalted128:
		return 16
	}
	return 0
}

// saltLen returns the length of the Salt field of the manifests.
func (d DigestAlg) saltLen() int {
	if d == DigestSalted128 {
		return SaltLen
	}
	return 0
}

// String names the algorithm.
func (d DigestAlg) String() string {
	switch d {
	case DigestSHA256:
		return "sha-256"
	case DigestSalted128:
		return "salted-sha-256-128"
	}
	return fmt.Sprintf("digest algorithm %d", uint8(d))
}

// list appends to dst the listed digest of the packet whose SHA-256 is d,
// in a manifest with salt.
func (d DigestAlg) list(dst, salt []byte, pd *Digest) []byte {
	if d != DigestSalted128 {
		return append(dst, pd[:]...)
	}
	var in [SaltLen + DigestLen]byte
	copy(in[:], salt)
	copy(in[SaltLen:], pd[:])
	out := sha256.Sum256(in[:])
	return append(dst, out[:16]...)
}

// listSalted appends to dst the DigestSalted128 digests, in a manifest with
// salt, of the packets whose SHA-256 digests ds concatenates, two at a time
// (saltedPair).
func listSalted(dst, salt, ds []byte) []byte {
	var p saltedPair
	p.setSalt(salt)
	for ; len(ds) >= 2*DigestLen; ds = ds[2*DigestLen:] {
		p.set(0, ds[:DigestLen])
		p.set(1, ds[DigestLen:2*DigestLen])
		var oa, ob Digest
		p.sum(&oa, &ob)
		dst = append(append(dst, oa[:16]...), ob[:16]...)
	}
	if len(ds) > 0 {
		dst = DigestSalted128.list(dst, salt, (*Digest)(ds))
	}
	return dst
}

// matches reports whether listed, a digest a manifest with salt lists, is
// that of the packet whose SHA-256 is pd.
func (d DigestAlg) matches(listed, salt []byte, pd *Digest) bool {
	var buf [DigestLen]byte
	return bytes.Equal(listed, d.list(buf[:0], salt, pd))
}

// List returns the digest of the packet whose SHA-256 is d as a manifest
// with salt lists it (salt is ignored by DigestSHA256).
func (d DigestAlg) List(salt []byte, pd Digest) []byte { return d.list(nil, salt, &pd) }

// Profile is what an asymmetric session advertises about its manifests (the
// value of the ExtensionID extension): how packets are digested, the
// manifest stream and the signing key. The advertisement is fetched over TLS, so the key it
// carries is pinned for the whole session.
//
//	Packet Authentication Profile {
//	  Digest Algorithm (8),        // DigestAlg: 1 sha-256, 0x82 salted-sha-256-128
//	  Signature Algorithm (16),    // Algorithm
//	  Manifest Stream ID (32),
//	  Public Key (..),             // to the end of the value
//	}
type Profile struct {
	// Digest is how the manifests list packet digests.
	Digest DigestAlg
	// StreamID is the Manifest Stream ID every manifest of the session
	// carries.
	StreamID uint32
	// Key verifies the manifests.
	Key *PublicKey
}

// profileFixedLen is the profile without the public key.
const profileFixedLen = 1 + 2 + 4

// NewProfile builds the profile of a session whose manifests key signs
// (key: an ed25519.PublicKey, a P-256 *ecdsa.PublicKey or a *PublicKey),
// with DefaultDigestAlg; set Digest for another.
func NewProfile(key crypto.PublicKey, streamID uint32) (*Profile, error) {
	pk, ok := key.(*PublicKey)
	if !ok {
		var err error
		if pk, err = NewPublicKey(key); err != nil {
			return nil, err
		}
	}
	return &Profile{Digest: DefaultDigestAlg, StreamID: streamID, Key: pk}, nil
}

// AppendValue appends the profile's encoding, the extension value.
func (p *Profile) AppendValue(dst []byte) []byte {
	dst = append(dst, byte(p.Digest))
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.Key.alg))
	dst = binary.BigEndian.AppendUint32(dst, p.StreamID)
	return append(dst, p.Key.raw...)
}

// Value returns the extension value.
func (p *Profile) Value() []byte { return p.AppendValue(nil) }

func profileErr(field string, err error) error {
	return &ParseError{What: "profile", Field: field, Err: err}
}

// ParseProfile parses an extension value.
func ParseProfile(v []byte) (*Profile, error) {
	if len(v) < profileFixedLen {
		return nil, profileErr("header", wire.ErrTruncated)
	}
	dig := DigestAlg(v[0])
	if dig.Len() == 0 {
		return nil, profileErr("digest algorithm", fmt.Errorf("%w: %d, want 1 (sha-256) or 0x82 (salted-sha-256-128)", ErrInvalid, v[0]))
	}
	alg := Algorithm(binary.BigEndian.Uint16(v[1:]))
	key, err := ParsePublicKey(alg, v[profileFixedLen:])
	if err != nil {
		return nil, profileErr("public key", fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	return &Profile{Digest: dig, StreamID: binary.BigEndian.Uint32(v[3:]), Key: key}, nil
}
