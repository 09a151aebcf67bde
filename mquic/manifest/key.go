package manifest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/oasisprotocol/curve25519-voi/curve"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// Ed25519 signatures are made and verified with curve25519-voi rather than
// crypto/ed25519: on amd64 its vectorized (AVX2) field arithmetic signs and
// verifies in about half the time, and its expanded public key keeps the
// decompressed point and its table across verifications (crypto/ed25519
// decompresses the key on every call); batch.go verifies several
// signatures at once with its group operations. The receiver verifies one
// signature per manifest and the sender signs one, so this is most of what
// asymmetric authentication costs per packet beyond hashing
// (spec/transport.md, "Cost").
//
// Verification is RFC 8032 §5.1.7's with the cofactored equation
// ([8][S]B = [8]R + [8][k]A), which batch verification needs, for single
// signatures too so that a signature's fate does not depend on the
// manifests it is verified with. It accepts every signature the
// cofactorless check of crypto/ed25519 accepts; the two differ only on
// signatures that the key holder makes with a small-order component on
// purpose, which no one else can make.
var voiRFC8032 = &voi.Options{Verify: voi.VerifyOptionsFIPS_186_5}

// Algorithm is a signature algorithm, numbered as TLS 1.3 SignatureScheme
// (RFC 8446 §4.2.3).
type Algorithm uint16

// The signature algorithms manifests can use.
const (
	// Ed25519 is pure Ed25519 (RFC 8032), the default: 64-byte signatures,
	// 32-byte public keys.
	Ed25519 Algorithm = 0x0807
	// ECDSAP256SHA256 is ECDSA over P-256 with SHA-256. Its signature is r
	// and s as two 32-byte big-endian integers (64 bytes, the IEEE P1363
	// form of JWS ES256 and RFC 9421), not TLS's ASN.1 form; its public key
	// is the uncompressed SEC 1 point (65 bytes).
	ECDSAP256SHA256 Algorithm = 0x0403
)

// String returns the algorithm's name.
func (a Algorithm) String() string {
	switch a {
	case Ed25519:
		return "ed25519"
	case ECDSAP256SHA256:
		return "ecdsa_secp256r1_sha256"
	}
	return fmt.Sprintf("algorithm 0x%04x", uint16(a))
}

// SignatureLen returns the length of the algorithm's signatures, 0 for an
// unknown algorithm.
func (a Algorithm) SignatureLen() int {
	switch a {
	case Ed25519, ECDSAP256SHA256:
		return 64
	}
	return 0
}

// KeyIDLen is the length of a KeyID.
const KeyIDLen = 8

// KeyID names a public key in manifests: the first 8 bytes of
// SHA-256(Signature Algorithm (16) || public key bytes).
type KeyID [KeyIDLen]byte

// Errors of signature verification.
var (
	// ErrBadSignature means the signature does not verify.
	ErrBadSignature = errors.New("manifest: signature does not verify")
	// ErrWrongKey means the manifest names another algorithm or key than
	// the one it is checked with.
	ErrWrongKey = errors.New("manifest: signed with another key")
)

// PublicKey is a manifest verification key.
type PublicKey struct {
	alg Algorithm
	raw []byte
	ed  *voi.ExpandedPublicKey
	// For batch verification: the base point and the key, expanded.
	edStatic [2]*curve.ExpandedEdwardsPoint
	ec       *ecdsa.PublicKey
	id       KeyID
}

// NewPublicKey wraps an ed25519.PublicKey or a P-256 *ecdsa.PublicKey.
func NewPublicKey(pub crypto.PublicKey) (*PublicKey, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ParsePublicKey(Ed25519, k)
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("manifest: ECDSA key on %s, only P-256 is supported", k.Curve.Params().Name)
		}
		raw, err := k.Bytes()
		if err != nil {
			return nil, fmt.Errorf("manifest: ECDSA key: %w", err)
		}
		return ParsePublicKey(ECDSAP256SHA256, raw)
	}
	return nil, fmt.Errorf("manifest: unsupported public key type %T (want ed25519 or ECDSA P-256)", pub)
}

// ParsePublicKey reads a public key in its wire form: 32 bytes for Ed25519,
// the 65-byte uncompressed point for ECDSA P-256.
func ParsePublicKey(alg Algorithm, raw []byte) (*PublicKey, error) {
	k := &PublicKey{alg: alg, raw: bytes.Clone(raw)}
	switch alg {
	case Ed25519:
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("manifest: ed25519 public key of %d bytes, want %d", len(raw), ed25519.PublicKeySize)
		}
		ed, err := voi.NewExpandedPublicKey(voi.PublicKey(k.raw))
		if err != nil {
			return nil, fmt.Errorf("manifest: ed25519 public key %x is not a point of the curve", raw)
		}
		var y curve.CompressedEdwardsY
		if _, err := y.SetBytes(k.raw); err != nil || !y.IsCanonicalVartime() {
			return nil, fmt.Errorf("manifest: ed25519 public key %x is not in canonical form (RFC 8032 §5.1.3)", raw)
		}
		k.ed = ed
		var a curve.EdwardsPoint
		if _, err := a.SetCompressedY(&y); err != nil {
			return nil, fmt.Errorf("manifest: ed25519 public key %x is not a point of the curve", raw)
		}
		k.edStatic = [2]*curve.ExpandedEdwardsPoint{curve.NewExpandedEdwardsPoint(curve.ED25519_BASEPOINT_POINT), curve.NewExpandedEdwardsPoint(&a)}
	case ECDSAP256SHA256:
		ec, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
		if err != nil {
			return nil, fmt.Errorf("manifest: ECDSA P-256 public key: %w", err)
		}
		k.ec = ec
	default:
		return nil, fmt.Errorf("manifest: unsupported signature %s", alg)
	}
	h := sha256.New()
	var a [2]byte
	binary.BigEndian.PutUint16(a[:], uint16(alg))
	h.Write(a[:])
	h.Write(k.raw)
	copy(k.id[:], h.Sum(nil))
	return k, nil
}

// Algorithm returns the key's signature algorithm.
func (k *PublicKey) Algorithm() Algorithm { return k.alg }

// Bytes returns the key's wire form. The caller must not modify it.
func (k *PublicKey) Bytes() []byte { return k.raw }

// ID returns the key's KeyID.
func (k *PublicKey) ID() KeyID { return k.id }

// Equal reports whether k and o are the same key.
func (k *PublicKey) Equal(o *PublicKey) bool {
	return o != nil && k.alg == o.alg && bytes.Equal(k.raw, o.raw)
}

// Verify checks a parsed manifest's signature with k: ErrWrongKey if the
// manifest names another algorithm or key ID, ErrBadSignature if the
// signature does not verify.
func (k *PublicKey) Verify(m *Manifest) error {
	_, err := k.verify(m, nil)
	return err
}

// verify is Verify with a reusable message buffer, returned for the next
// call.
func (k *PublicKey) verify(m *Manifest, scratch []byte) ([]byte, error) {
	if m.Alg != k.alg || m.KeyID != k.id {
		return scratch, ErrWrongKey
	}
	if len(m.Signature) != k.alg.SignatureLen() || len(m.signed) == 0 {
		return scratch, ErrBadSignature
	}
	switch k.alg {
	case Ed25519:
		msg := append(append(scratch[:0], signatureContext...), m.signed...)
		if !voi.VerifyExpandedWithOptions(k.ed, msg, m.Signature, voiRFC8032) {
			return msg, ErrBadSignature
		}
		return msg, nil
	case ECDSAP256SHA256:
		h := sha256.New()
		h.Write([]byte(signatureContext))
		h.Write(m.signed)
		r := new(big.Int).SetBytes(m.Signature[:32])
		s := new(big.Int).SetBytes(m.Signature[32:])
		if !ecdsa.Verify(k.ec, h.Sum(nil), r, s) {
			return scratch, ErrBadSignature
		}
		return scratch, nil
	}
	return scratch, ErrWrongKey
}

// verifyBatch verifies the signatures of ms with k together, with b's
// space, and reports whether all of them verify (false: at least one does
// not, or a manifest names another key; verify tells which). It batches
// Ed25519 signatures (batch.go); other algorithms are verified one by one.
func (k *PublicKey) verifyBatch(ms []*Manifest, b *Batch) bool {
	for _, m := range ms {
		if m.Alg != k.alg || m.KeyID != k.id || len(m.Signature) != k.alg.SignatureLen() || len(m.signed) == 0 {
			return false
		}
	}
	if k.alg == Ed25519 {
		return k.verifyBatchEd25519(ms, b)
	}
	for _, m := range ms {
		var err error
		if b.msg, err = k.verify(m, b.msg); err != nil {
			return false
		}
	}
	return true
}

// SigningKey signs manifests.
type SigningKey struct {
	signer crypto.Signer
	ed     voi.PrivateKey // when signer is an ed25519.PrivateKey
	pub    *PublicKey
	rand   io.Reader
}

// NewSigningKey wraps a private key: an ed25519.PrivateKey, a P-256
// *ecdsa.PrivateKey, or any crypto.Signer whose public key is one of those
// (a key in an HSM, say). rnd is the randomness ECDSA needs; nil means
// crypto/rand.
func NewSigningKey(key crypto.Signer, rnd io.Reader) (*SigningKey, error) {
	if key == nil {
		return nil, errors.New("manifest: no signing key")
	}
	pub, err := NewPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	k := &SigningKey{signer: key, pub: pub, rand: rnd}
	if ed, ok := key.(ed25519.PrivateKey); ok {
		k.ed = voi.PrivateKey(ed)
	}
	return k, nil
}

// Public returns the key's public half.
func (k *SigningKey) Public() *PublicKey { return k.pub }

// sign signs the context string followed by signed.
func (k *SigningKey) sign(signed, scratch []byte) ([]byte, error) {
	switch k.pub.alg {
	case Ed25519:
		msg := append(append(scratch[:0], signatureContext...), signed...)
		if k.ed != nil {
			return voi.Sign(k.ed, msg), nil
		}
		return k.signer.Sign(k.rand, msg, crypto.Hash(0))
	case ECDSAP256SHA256:
		h := sha256.New()
		h.Write([]byte(signatureContext))
		h.Write(signed)
		der, err := k.signer.Sign(k.rand, h.Sum(nil), crypto.SHA256)
		if err != nil {
			return nil, err
		}
		return p1363FromASN1(der)
	}
	return nil, fmt.Errorf("unsupported signature %s", k.pub.alg)
}

// p1363FromASN1 turns an ASN.1 ECDSA-Sig-Value into r || s, 32 bytes each.
func p1363FromASN1(der []byte) ([]byte, error) {
	var r, s big.Int
	in := cryptobyte.String(der)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, asn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1Integer(&r) || !seq.ReadASN1Integer(&s) || !seq.Empty() ||
		r.Sign() <= 0 || s.Sign() <= 0 || r.BitLen() > 256 || s.BitLen() > 256 {
		return nil, errors.New("malformed ECDSA signature from the signer")
	}
	out := make([]byte, 64)
	r.FillBytes(out[:32])
	s.FillBytes(out[32:])
	return out, nil
}
