package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"testing"
)

// TestSumPair checks SumPair against crypto/sha256 for pairs of every
// length up to 300 bytes and around a full packet, equal and different
// lengths (which take the interleaved path and the fallback), and the
// FIPS 180-4 example "abc".
func TestSumPair(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2*1600)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	check := func(a, b []byte) {
		t.Helper()
		var da, db Digest
		SumPair(&da, &db, a, b)
		if da != sha256.Sum256(a) || db != sha256.Sum256(b) {
			t.Fatalf("SumPair of %d and %d bytes: %x %x, want %x %x", len(a), len(b), da, db, sha256.Sum256(a), sha256.Sum256(b))
		}
	}
	var lens []int
	for n := range 300 {
		lens = append(lens, n)
	}
	for n := 1100; n <= 1600; n++ {
		lens = append(lens, n)
	}
	for _, n := range lens {
		a, b := buf[:n], buf[1600:1600+n]
		check(a, b)
		check(a, a)
		for _, d := range []int{-65, -9, -1, 1, 8, 64} {
			if m := n + d; m >= 0 && m <= 1600 {
				check(a, buf[1600:1600+m])
			}
		}
	}
	var da, db Digest
	SumPair(&da, &db, []byte("abc"), []byte("abd"))
	if got := hex.EncodeToString(da[:]); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("SHA-256(abc) = %s", got)
	}
}

// TestSumPairAllocs checks that SumPair allocates nothing.
func TestSumPairAllocs(t *testing.T) {
	a, b := make([]byte, 1200), make([]byte, 1200)
	var da, db Digest
	if n := testing.AllocsPerRun(100, func() { SumPair(&da, &db, a, b) }); n != 0 {
		t.Fatalf("SumPair allocates %v times", n)
	}
}

// BenchmarkSumPair hashes two 1200-byte packets together, against two
// Sum calls (BenchmarkSum: one).
func BenchmarkSumPair(b *testing.B) {
	p, q := make([]byte, 1200), make([]byte, 1200)
	var dp, dq Digest
	b.SetBytes(2 * 1200)
	b.ReportAllocs()
	for b.Loop() {
		SumPair(&dp, &dq, p, q)
	}
}

// FuzzSumPair checks SumPair against crypto/sha256 for any two messages.
func FuzzSumPair(f *testing.F) {
	f.Add([]byte("abc"), []byte("abd"))
	f.Add(make([]byte, 1200), make([]byte, 1200))
	f.Add(make([]byte, 55), make([]byte, 56))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var da, db Digest
		SumPair(&da, &db, a, b)
		if da != sha256.Sum256(a) || db != sha256.Sum256(b) {
			t.Fatalf("SumPair(%x, %x) = %x, %x", a, b, da, db)
		}
	})
}

// listSalted lists, two at a time, what list lists one by one.
func TestListSalted(t *testing.T) {
	salt := []byte("0123456789abcdef")
	var ds, want []byte
	for n := range 70 {
		if got := listSalted(nil, salt, ds); string(got) != string(want) {
			t.Fatalf("%d digests: listSalted %x, want %x", n, got, want)
		}
		d := Sum([]byte{byte(n), 1, 2})
		ds = append(ds, d[:]...)
		want = DigestSalted128.list(want, salt, &d)
	}
}

// saltedPair hashes what crypto/sha256 hashes for salt || digest, pair by
// pair and alone, with the salt changed between pairs.
func TestSaltedPair(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var p saltedPair
	for range 100 {
		salt, da, db := make([]byte, SaltLen), make([]byte, DigestLen), make([]byte, DigestLen)
		for _, b := range [][]byte{salt, da, db} {
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
		}
		p.setSalt(salt)
		p.set(0, da)
		p.set(1, db)
		var oa, ob Digest
		p.sum(&oa, &ob)
		wa, wb := sha256.Sum256(append(append([]byte(nil), salt...), da...)), sha256.Sum256(append(append([]byte(nil), salt...), db...))
		if oa != wa || ob != wb || p.sum1() != wa {
			t.Fatalf("salt %x: %x %x, want %x %x", salt, oa, ob, wa, wb)
		}
	}
}
