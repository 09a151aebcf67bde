//go:build !amd64 || purego

package manifest

// sumPair leaves both packets to Sum.
func sumPair(da, db *Digest, a, b []byte) bool { return false }

// sumBlocks leaves both messages to crypto/sha256.
func sumBlocks(da, db *Digest, a, b *[64]byte) bool { return false }
