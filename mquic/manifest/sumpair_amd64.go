//go:build amd64 && !purego

package manifest

import "encoding/binary"

//go:generate go run sha2x_gen.go

// blockSHANI2 runs SHA-256's compression function over blocks 64-byte blocks
// of two messages at once, from pa and pb, updating the states da and db.
// Written by hand (sha2x_gen.go) because crypto/sha256 hashes one message
// at a time, and no library at hand interleaves messages with the SHA
// extensions; TestSumPair checks it against crypto/sha256.
//
//go:noescape
func blockSHANI2(da, db *[8]uint32, pa, pb *byte, blocks int)

// haveSHANI reports whether the processor has the SHA extensions, SSSE3 and
// SSE4.1.
func haveSHANI() bool

// useSHANI2 is set once, at start.
var useSHANI2 = haveSHANI()

// sha256IV is SHA-256's initial state (FIPS 180-4 §5.3.3).
var sha256IV = [8]uint32{0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19}

// sumPair hashes a and b together if they take as many blocks each (the
// same number of full blocks, and of padding blocks after them), and
// reports whether it did.
func sumPair(da, db *Digest, a, b []byte) bool {
	full := len(a) / 64
	ra, rb := len(a)%64, len(b)%64
	if !useSHANI2 || len(b)/64 != full || (ra < 56) != (rb < 56) {
		return false
	}
	ha, hb := sha256IV, sha256IV
	if full > 0 {
		blockSHANI2(&ha, &hb, &a[0], &b[0], full)
	}
	var ta, tb [128]byte
	n := padTail(&ta, a[64*full:], len(a))
	padTail(&tb, b[64*full:], len(b))
	blockSHANI2(&ha, &hb, &ta[0], &tb[0], n)
	putDigest(da, &ha)
	putDigest(db, &hb)
	return true
}

// padTail writes into t the last bytes of a message of size bytes, rest
// (fewer than 64), with SHA-256's padding, and returns how many blocks
// that makes: 1, or 2 when the length does not fit after rest.
func padTail(t *[128]byte, rest []byte, size int) int {
	copy(t[:], rest)
	t[len(rest)] = 0x80
	n := 1
	if len(rest) >= 56 {
		n = 2
	}
	binary.BigEndian.PutUint64(t[64*n-8:], uint64(size)*8)
	return n
}

// sumBlocks sets *da and *db to the SHA-256 digests of the messages whose
// single padded blocks are a and b, and reports whether it could (the SHA
// extensions).
func sumBlocks(da, db *Digest, a, b *[64]byte) bool {
	if !useSHANI2 {
		return false
	}
	ha, hb := sha256IV, sha256IV
	blockSHANI2(&ha, &hb, &a[0], &b[0], 1)
	putDigest(da, &ha)
	putDigest(db, &hb)
	return true
}

// putDigest writes SHA-256 state h, after the last block, as digest d.
func putDigest(d *Digest, h *[8]uint32) {
	for i, w := range h {
		binary.BigEndian.PutUint32(d[4*i:], w)
	}
}
