package manifest

import (
	"crypto/rand"
	"crypto/sha512"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
)

// Batch verification of Ed25519 manifest signatures.
//
// A receiver verifies one signature per manifest: a dozen or so per read at
// high rates. Verifying them together costs less per signature: one
// multi-scalar multiplication checks
//
//	[8]( sum z_i R_i + (sum z_i k_i) A - (sum z_i S_i) B ) = 0
//
// for random 128-bit z_i (RFC 8032 §5.1.7's cofactored equation, summed),
// which holds if every signature verifies and, except with probability
// about 2^-128, fails otherwise. All manifests have the session's key A, so
// its terms collapse into one, and A and B come with precomputed tables.
// Written here with curve25519-voi's group operations rather than taken
// from its BatchVerifier, which allocates a dozen times per batch and
// expects a key per signature: the receive path allocates nothing per
// packet, and this allocates only the multiplication's tables, once per
// batch.

// Batch is the working space of batch verification (Prechecker.VerifyClaimed).
// Its zero value is ready; it keeps its buffers from one use to the next. It
// is not safe for concurrent use.
type Batch struct {
	msg     []byte
	z       []byte
	zs      []scalar.Scalar
	rs      []curve.EdwardsPoint
	zp      []*scalar.Scalar
	rp      []*curve.EdwardsPoint
	static  [2]*scalar.Scalar
	sum, kA scalar.Scalar
	s, k, t scalar.Scalar
	res     curve.EdwardsPoint
}

// grow sizes b for n signatures.
func (b *Batch) grow(n int) {
	if cap(b.zs) < n {
		b.zs = make([]scalar.Scalar, n)
		b.rs = make([]curve.EdwardsPoint, n)
		b.zp = make([]*scalar.Scalar, n)
		b.rp = make([]*curve.EdwardsPoint, n)
		b.z = make([]byte, 16*n)
	}
	b.zp, b.rp, b.z = b.zp[:n], b.rp[:n], b.z[:16*n]
}

// verifyBatchEd25519 reports whether the Ed25519 signatures of ms (all with
// the key k, already checked to name it) all verify, with b's space.
func (k *PublicKey) verifyBatchEd25519(ms []*Manifest, b *Batch) bool {
	n := len(ms)
	b.grow(n)
	if _, err := rand.Read(b.z); err != nil {
		return false
	}
	b.sum.Zero()
	b.kA.Zero()
	var z32 [32]byte
	for i, m := range ms {
		sig := m.Signature
		// R and S as RFC 8032 §5.1.7 decodes them, canonical only, as
		// the one-by-one verification requires.
		var y curve.CompressedEdwardsY
		if _, err := y.SetBytes(sig[:32]); err != nil || !y.IsCanonicalVartime() {
			return false
		}
		if _, err := b.rs[i].SetCompressedY(&y); err != nil {
			return false
		}
		if _, err := b.s.SetCanonicalBytes(sig[32:]); err != nil {
			return false
		}
		// k = SHA-512(R || A || M), M the context and the signed bytes.
		b.msg = append(append(append(append(b.msg[:0], sig[:32]...), k.raw...), signatureContext...), m.signed...)
		h := sha512.Sum512(b.msg)
		if _, err := b.k.SetBytesModOrderWide(h[:]); err != nil {
			return false
		}
		copy(z32[:16], b.z[16*i:16*i+16])
		z := &b.zs[i]
		if _, err := z.SetBytesModOrder(z32[:]); err != nil {
			return false
		}
		b.sum.Add(&b.sum, b.t.Mul(z, &b.s))
		b.kA.Add(&b.kA, b.t.Mul(z, &b.k))
		b.zp[i], b.rp[i] = z, &b.rs[i]
	}
	b.sum.Neg(&b.sum)
	b.static = [2]*scalar.Scalar{&b.sum, &b.kA}
	b.res.ExpandedMultiscalarMulVartime(b.static[:], k.edStatic[:], b.zp, b.rp)
	return b.res.IsSmallOrder()
}
