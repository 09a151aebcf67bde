package manifest

import (
	"github.com/h3m-project/h3m/mquic/wire"

	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// DigestLen is the length of a packet's SHA-256 digest.
const DigestLen = sha256.Size

// Digest is the SHA-256 digest of one packet: the UDP payload exactly as sent
// (after packet and header protection), nothing added, as MC_INTEGRITY in
// draft-jholland-quic-multicast defines it. A manifest lists it as it is
// (DigestSHA256) or salted and truncated (DigestSalted128).
type Digest [DigestLen]byte

// Sum returns the digest of a packet.
func Sum(pkt []byte) Digest { return sha256.Sum256(pkt) }

// Sizes of the fixed parts of a manifest.
const (
	// HeaderLen is the fixed header: Manifest Stream ID (32), Manifest
	// Sequence Number (32), First Packet Number (64), T (1) and Packet
	// Digest Count (15).
	HeaderLen = 4 + 4 + 8 + 2
	// TrailerLen is the signature block without the signature itself:
	// Signature Algorithm (16), Key ID (64), Signature Length (16).
	TrailerLen = 2 + KeyIDLen + 2
	// MaxDigests is the most digests one manifest can list (15 bits).
	MaxDigests = 1<<15 - 1
)

// TLV types of AMBI's manifest format that this package knows by name.
// Others are skipped.
const (
	TLVPad             = 0   // padding, ignored
	TLVRefreshDeadline = 128 // AMBI: move to another manifest stream before this many seconds
)

// signatureContext prefixes the signed bytes of every manifest, so that a
// signature made for a manifest can never pass for one made with the same key
// for something else (an HTTP message signature, say).
const signatureContext = "h3m-manifest-v1\x00"

// Sentinel causes wrapped in a ParseError.
var (
	// ErrInvalid means the named field holds a value the format forbids.
	ErrInvalid = errors.New("invalid value")
)

// ParseError is a malformed manifest, MANIFEST frame or profile. errors.Is
// matches Err against wire.ErrTruncated (the input ends before the named
// field does) and ErrInvalid.
type ParseError struct {
	What  string // "manifest", "MANIFEST frame" or "profile"
	Field string // the field that is missing or wrong
	Err   error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("%s: %s: %v", e.What, e.Field, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

func manifestErr(field string, err error) error {
	return &ParseError{What: "manifest", Field: field, Err: err}
}

// Manifest is one signed manifest: the digests of the packets numbered
// FirstPN, FirstPN+1, ..., in that order, and the signature over them.
//
// The wire format (all integers big-endian, spec/transport.md):
//
//	Manifest {
//	  Manifest Stream ID (32),
//	  Manifest Sequence Number (32),
//	  First Packet Number (64),
//	  T (1),
//	  Packet Digest Count (15),
//	  [TLV Length (16)],            // present when T is 1
//	  [TLVs (8 * TLV Length)],
//	  [Salt (128)],                 // DigestSalted128 only
//	  Packet Digests (8 * L * Packet Digest Count), // L = 32 (DigestSHA256) or 16 (DigestSalted128)
//	  Signature Algorithm (16),
//	  Key ID (64),
//	  Signature Length (16),
//	  Signature (8 * Signature Length),
//	}
//
// The digest algorithm is the session profile's: the manifest does not name
// it, so a parser must be told it, and a manifest made for another one does
// not parse (or names another key). The signature covers the context string
// "h3m-manifest-v1" and a zero byte, followed by every byte of the manifest
// before the Signature field.
type Manifest struct {
	// DigestAlg is how Digests list the packets (the session profile's;
	// the zero value means DigestSHA256).
	DigestAlg DigestAlg
	// StreamID is the Manifest Stream ID: the profile's, so that manifests
	// of other manifest streams are told apart before any signature check.
	StreamID uint32
	// Seq is the Manifest Sequence Number: one more for each new manifest,
	// wrapping. Copies of a manifest keep its number.
	Seq uint32
	// FirstPN is the packet number of the first digest.
	FirstPN uint64
	// TLVs is the raw TLV space (AMBI's type-length-value options): nil when
	// the manifest has none (T is 0), not nil but empty for T set with an
	// empty space. Append writes it as given; Parse checks its structure.
	TLVs []byte
	// Salt is the Salt of a DigestSalted128 manifest, SaltLen bytes (nil
	// for DigestSHA256).
	Salt []byte
	// Digests are the listed packet digests, DigestAlg.Len() bytes each.
	Digests []byte
	// Alg and KeyID name the signing key.
	Alg   Algorithm
	KeyID KeyID
	// Signature is the signature (set by Parse and Append).
	Signature []byte

	signed []byte // bytes before Signature (set by Parse and Append)
}

// alg returns the digest algorithm, the zero value being DigestSHA256.
func (m *Manifest) alg() DigestAlg {
	if m.DigestAlg == 0 {
		return DigestSHA256
	}
	return m.DigestAlg
}

// Count returns the number of digests.
func (m *Manifest) Count() int { return len(m.Digests) / m.alg().Len() }

// Listed returns the i-th listed digest, that of packet FirstPN+i.
func (m *Manifest) Listed(i int) []byte {
	l := m.alg().Len()
	return m.Digests[i*l : (i+1)*l]
}

// Lists reports whether the i-th listed digest is that of the packet whose
// SHA-256 is d.
func (m *Manifest) Lists(i int, d *Digest) bool { return m.alg().matches(m.Listed(i), m.Salt, d) }

// LastPN returns the packet number of the last digest.
func (m *Manifest) LastPN() uint64 { return m.FirstPN + uint64(m.Count()) - 1 }

// SignedBytes returns the bytes the signature covers, without the context
// prefix: the manifest up to and including Signature Length. It is set by
// Parse and by Append.
func (m *Manifest) SignedBytes() []byte { return m.signed }

// Len returns the encoded length of a manifest of digest algorithm alg that
// lists digests packets, with tlvLen bytes of TLVs and a signature of
// sigLen bytes.
func Len(alg DigestAlg, digests, tlvLen, sigLen int) int {
	n := HeaderLen + alg.saltLen() + digests*alg.Len() + TrailerLen + sigLen
	if tlvLen > 0 {
		n += 2 + tlvLen
	}
	return n
}

// MaxDigestsIn returns how many digests of algorithm dig fit in a manifest
// of at most size bytes signed with alg and without TLVs, or 0 if none
// fits.
func MaxDigestsIn(size int, dig DigestAlg, alg Algorithm) int {
	n := (size - HeaderLen - dig.saltLen() - TrailerLen - alg.SignatureLen()) / dig.Len()
	return max(0, min(n, MaxDigests))
}

// Append encodes the manifest, signs it with key and appends it to dst. It
// sets m.Alg, m.KeyID, m.Signature and the signed bytes (aliasing the result).
// scratch, when its capacity suffices, is used to build the message to sign,
// so that signing with Ed25519 allocates only the signature.
func (m *Manifest) Append(dst []byte, key *SigningKey, scratch []byte) ([]byte, error) {
	if err := m.check(); err != nil {
		return dst, err
	}
	start := len(dst)
	dst = m.appendSigned(dst, key.pub)
	signed := dst[start:]
	sig, err := key.sign(signed, scratch)
	if err != nil {
		return dst[:start], fmt.Errorf("manifest: sign: %w", err)
	}
	binary.BigEndian.PutUint16(dst[len(dst)-2:], uint16(len(sig)))
	dst = append(dst, sig...)
	m.Alg, m.KeyID = key.pub.alg, key.pub.id
	m.signed = dst[start : len(dst)-len(sig)]
	m.Signature = dst[len(dst)-len(sig):]
	return dst, nil
}

// appendSigned appends the manifest up to the Signature Length field, which
// holds the length the key's algorithm produces.
func (m *Manifest) appendSigned(dst []byte, pub *PublicKey) []byte {
	dst = binary.BigEndian.AppendUint32(dst, m.StreamID)
	dst = binary.BigEndian.AppendUint32(dst, m.Seq)
	dst = binary.BigEndian.AppendUint64(dst, m.FirstPN)
	tc := uint16(m.Count())
	if m.TLVs != nil {
		tc |= 0x8000
	}
	dst = binary.BigEndian.AppendUint16(dst, tc)
	if m.TLVs != nil {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(m.TLVs)))
		dst = append(dst, m.TLVs...)
	}
	dst = append(dst, m.Salt...)
	dst = append(dst, m.Digests...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(pub.alg))
	dst = append(dst, pub.id[:]...)
	return binary.BigEndian.AppendUint16(dst, uint16(pub.alg.SignatureLen()))
}

// check validates the fields Append encodes.
func (m *Manifest) check() error {
	alg := m.alg()
	if alg.Len() == 0 {
		return manifestErr("digest algorithm", fmt.Errorf("%w: %d", ErrInvalid, uint8(alg)))
	}
	if len(m.Salt) != alg.saltLen() {
		return manifestErr("salt", fmt.Errorf("%w: %d bytes, %s takes %d", ErrInvalid, len(m.Salt), alg, alg.saltLen()))
	}
	switch n, l := len(m.Digests), alg.Len(); {
	case n == 0:
		return manifestErr("packet digest count", fmt.Errorf("%w: no digests", ErrInvalid))
	case n%l != 0:
		return manifestErr("packet digests", fmt.Errorf("%w: %d bytes, not a multiple of %d", ErrInvalid, n, l))
	case n/l > MaxDigests:
		return manifestErr("packet digest count", fmt.Errorf("%w: %d digests, at most %d", ErrInvalid, n/l, MaxDigests))
	}
	if m.FirstPN > wire.MaxPacketNumber || m.LastPN() > wire.MaxPacketNumber {
		return manifestErr("first packet number", fmt.Errorf("%w: packets %d to %d pass 2^62-1", ErrInvalid, m.FirstPN, m.LastPN()))
	}
	if len(m.TLVs) > 0xffff {
		return manifestErr("TLV length", fmt.Errorf("%w: %d bytes", ErrInvalid, len(m.TLVs)))
	}
	if err := checkTLVs(m.TLVs); err != nil {
		return err
	}
	return nil
}

// Parse parses the manifest at the start of b, of a session whose profile
// names digest algorithm alg, and returns it with its length, so that
// manifests sent back to back (AMBI's application/ambi framing) can be read
// one after the other. The returned manifest aliases b. Parse checks the
// structure only; PublicKey.Verify checks the signature.
func Parse(b []byte, alg DigestAlg) (Manifest, int, error) {
	m := Manifest{DigestAlg: alg}
	if alg.Len() == 0 {
		return m, 0, manifestErr("digest algorithm", fmt.Errorf("%w: %d", ErrInvalid, uint8(alg)))
	}
	if len(b) < HeaderLen {
		return m, 0, manifestErr("header", wire.ErrTruncated)
	}
	m.StreamID = binary.BigEndian.Uint32(b)
	m.Seq = binary.BigEndian.Uint32(b[4:])
	m.FirstPN = binary.BigEndian.Uint64(b[8:])
	tc := binary.BigEndian.Uint16(b[16:])
	count := int(tc & 0x7fff)
	pos := HeaderLen
	if m.FirstPN > wire.MaxPacketNumber {
		return m, 0, manifestErr("first packet number", fmt.Errorf("%w: %d exceeds 2^62-1", ErrInvalid, m.FirstPN))
	}
	if count == 0 {
		return m, 0, manifestErr("packet digest count", fmt.Errorf("%w: 0", ErrInvalid))
	}
	if m.FirstPN+uint64(count)-1 > wire.MaxPacketNumber {
		return m, 0, manifestErr("packet digest count", fmt.Errorf("%w: %d digests from packet %d pass 2^62-1", ErrInvalid, count, m.FirstPN))
	}
	if tc&0x8000 != 0 {
		if len(b) < pos+2 {
			return m, 0, manifestErr("TLV length", wire.ErrTruncated)
		}
		n := int(binary.BigEndian.Uint16(b[pos:]))
		pos += 2
		if len(b) < pos+n {
			return m, 0, manifestErr("TLVs", wire.ErrTruncated)
		}
		m.TLVs = b[pos : pos+n : pos+n]
		pos += n
		if err := checkTLVs(m.TLVs); err != nil {
			return m, 0, err
		}
	}
	if sl := alg.saltLen(); sl > 0 {
		if len(b) < pos+sl {
			return m, 0, manifestErr("salt", wire.ErrTruncated)
		}
		m.Salt = b[pos : pos+sl : pos+sl]
		pos += sl
	}
	n := count * alg.Len()
	if len(b) < pos+n {
		return m, 0, manifestErr("packet digests", wire.ErrTruncated)
	}
	m.Digests = b[pos : pos+n : pos+n]
	pos += n
	if len(b) < pos+TrailerLen {
		return m, 0, manifestErr("signature block", wire.ErrTruncated)
	}
	m.Alg = Algorithm(binary.BigEndian.Uint16(b[pos:]))
	copy(m.KeyID[:], b[pos+2:])
	sigLen := int(binary.BigEndian.Uint16(b[pos+2+KeyIDLen:]))
	pos += TrailerLen
	if len(b) < pos+sigLen {
		return m, 0, manifestErr("signature", wire.ErrTruncated)
	}
	m.signed = b[:pos:pos]
	m.Signature = b[pos : pos+sigLen : pos+sigLen]
	return m, pos + sigLen, nil
}

// checkTLVs walks a TLV space: types 0-127 have an 8-bit length, 128-255 a
// 16-bit one (AMBI). A TLV that runs past the space is an error, as AMBI
// requires.
func checkTLVs(b []byte) error {
	for len(b) > 0 {
		typ := b[0]
		hdr, n := 2, 0
		if typ >= 128 {
			hdr = 3
		}
		if len(b) < hdr {
			return manifestErr("TLV length", fmt.Errorf("%w: TLV type %d runs past the TLV space", ErrInvalid, typ))
		}
		if typ >= 128 {
			n = int(binary.BigEndian.Uint16(b[1:]))
		} else {
			n = int(b[1])
		}
		if len(b) < hdr+n {
			return manifestErr("TLV length", fmt.Errorf("%w: TLV type %d of %d bytes runs past the TLV space", ErrInvalid, typ, n))
		}
		b = b[hdr+n:]
	}
	return nil
}

// AppendTLV appends one TLV to a TLV space. The value can hold at most 255
// bytes for types 0-127 and 65535 for types 128-255.
func AppendTLV(dst []byte, typ byte, value []byte) ([]byte, error) {
	switch {
	case typ >= 128 && len(value) <= 0xffff:
		dst = append(dst, typ)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(value)))
	case typ < 128 && len(value) <= 0xff:
		dst = append(dst, typ, byte(len(value)))
	default:
		return dst, manifestErr("TLV length", fmt.Errorf("%w: %d bytes for TLV type %d", ErrInvalid, len(value), typ))
	}
	return append(dst, value...), nil
}
