package manifest

import (
	"crypto/sha256"
	"encoding/binary"
)

// SumPair sets *da to Sum(a) and *db to Sum(b). Where the processor has the
// SHA extensions (amd64), it hashes the two packets together, interleaved,
// when they take as many SHA-256 blocks as each other (packets of a full
// session do), in about the time Sum takes for one (BenchmarkSumPair
// against BenchmarkSum), since one message alone leaves the SHA unit
// waiting on each round's latency. Otherwise it calls Sum twice.
func SumPair(da, db *Digest, a, b []byte) {
	if !sumPair(da, db, a, b) {
		*da, *db = sha256.Sum256(a), sha256.Sum256(b)
	}
}

// saltedPair hashes DigestSalted128's messages, salt || packet SHA-256 (48
// bytes, one SHA-256 block with its padding), two at a time: the salt and
// the padding are written once per manifest, and the pair is one call of
// the interleaved block function, without SumPair's general padding.
type saltedPair [2][64]byte

// setSalt readies both messages for a manifest with salt.
func (p *saltedPair) setSalt(salt []byte) {
	for i := range p {
		b := &p[i]
		*b = [64]byte{}
		copy(b[:SaltLen], salt)
		b[SaltLen+DigestLen] = 0x80
		binary.BigEndian.PutUint64(b[56:], (SaltLen+DigestLen)*8)
	}
}

// set makes message i that of the packet digest d.
func (p *saltedPair) set(i int, d []byte) { copy(p[i][SaltLen:SaltLen+DigestLen], d) }

// sum sets *da and *db to the SHA-256 digests of messages 0 and 1.
func (p *saltedPair) sum(da, db *Digest) {
	if !sumBlocks(da, db, &p[0], &p[1]) {
		*da = sha256.Sum256(p[0][:SaltLen+DigestLen])
		*db = sha256.Sum256(p[1][:SaltLen+DigestLen])
	}
}

// sum1 returns the SHA-256 digest of message 0 alone.
func (p *saltedPair) sum1() Digest { return sha256.Sum256(p[0][:SaltLen+DigestLen]) }
