package manifest

import "crypto/sha256"

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
