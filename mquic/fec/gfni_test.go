package fec

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/reedsolomon"
)

// TestMulMatrix: the bit matrices are those of the library's GFNI kernels
// (its table of them, as two of its values).
func TestMulMatrix(t *testing.T) {
	for c, want := range map[byte]uint64{1: 0x0102040810204080, 2: 0x8001828488102040, 0xff: 0x5fbf211d65cb972f} {
		if got := mulMatrix(c); got != want {
			t.Errorf("mulMatrix(%#x) = %#x, want %#x", c, got, want)
		}
	}
}

// TestGFNIMatchesLibrary: the kernels' repair symbols are the library's,
// byte for byte, for blocks of 1 to 255 source symbols, 1 to 30 repair
// symbols (in groups of ten; the small kernel's first four) and symbols of
// one and of many vectors.
func TestGFNIMatchesLibrary(t *testing.T) {
	if !haveGFNI {
		t.Skip("no AVX-512 GFNI on this CPU")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ k, m, n int }{{1, 1, 64}, {7, 3, 64}, {10, 10, 1152}, {33, 10, 640}, {200, 10, 1152}, {200, 30, 1152}, {255, 1, 128}} {
		t.Run(fmt.Sprintf("k%d_m%d_n%d", c.k, c.m, c.n), func(t *testing.T) {
			src := make([][]byte, c.k)
			for i := range src {
				src[i] = make([]byte, c.n)
				for b := range src[i] {
					src[i][b] = byte(rng.Uint32())
				}
			}
			rs, err := reedsolomon.New(c.k, c.m, reedsolomon.WithCustomMatrix(repairRows(c.k, c.m)))
			if err != nil {
				t.Fatal(err)
			}
			shards := append([][]byte{}, src...)
			for range c.m {
				shards = append(shards, make([]byte, c.n))
			}
			if err := rs.Encode(shards); err != nil {
				t.Fatal(err)
			}
			mat := gfniMatrices(c.k, c.m)
			groups := (c.m + gfniOutputs - 1) / gfniOutputs
			out := make([][]byte, groups*gfniOutputs)
			for j := range out {
				out[j] = bytes.Repeat([]byte{0xaa}, c.n) // overwritten
			}
			for g := range groups {
				gfniMulAdd10(&mat[g*c.k*gfniOutputs], &src[0], c.k, &out[g*gfniOutputs], c.n)
			}
			for j := range c.m {
				if !bytes.Equal(out[j], shards[c.k+j]) {
					t.Fatalf("repair symbol %d differs from the library's", j)
				}
			}
			// The small kernel (the decoder's): the first four.
			mat4 := make([]uint64, c.k*gfniSmallOutputs)
			for i := range c.k {
				for o := range min(c.m, gfniSmallOutputs) {
					mat4[i*gfniSmallOutputs+o] = mulMatrix(Coefficient(o, i))
				}
			}
			out4 := out[:gfniSmallOutputs]
			for j := range out4 {
				out4[j] = bytes.Repeat([]byte{0xaa}, c.n)
			}
			gfniMulAdd4(&mat4[0], &src[0], c.k, &out4[0], c.n)
			for j := range min(c.m, gfniSmallOutputs) {
				if !bytes.Equal(out4[j], shards[c.k+j]) {
					t.Fatalf("small kernel: repair symbol %d differs from the library's", j)
				}
			}
		})
	}
}

// TestEncoderWithoutGFNI runs the encoder tests on the library's path, which
// CPUs without AVX-512 GFNI take.
func TestEncoderWithoutGFNI(t *testing.T) {
	if !haveGFNI {
		t.Skip("the other tests take the library's path already")
	}
	haveGFNI = false
	defer func() { haveGFNI = true }()
	t.Run("reference", TestEncoderMatchesReference)
	t.Run("vector", TestVector)
}

// TestDecoderWithoutGFNI runs the decoder tests on the library's path (the
// syndromes by slice multiplication), which CPUs without AVX-512 GFNI
// take; the other tests take the kernel's where the CPU has it.
func TestDecoderWithoutGFNI(t *testing.T) {
	if !haveGFNI {
		t.Skip("the other tests take the library's path already")
	}
	haveGFNI = false
	defer func() { haveGFNI = true }()
	t.Run("erasures", TestDecodeErasures)
	t.Run("padded", TestPaddedPayloads)
	t.Run("noallocs", TestDecodeNoAllocs)
}

// BenchmarkEncodeBlock is the computation of a full block's repair symbols
// (200 source symbols of 1152 bytes, 10 repair symbols) by the library's
// Encode and by the GFNI kernel, per source symbol.
func BenchmarkEncodeBlock(b *testing.B) {
	const k, m, n = 200, 10, 1152
	src := make([][]byte, k)
	for i := range src {
		src[i] = bytes.Repeat([]byte{byte(i)}, n)
	}
	out := make([][]byte, m)
	for j := range out {
		out[j] = make([]byte, n)
	}
	b.Run("library", func(b *testing.B) {
		rs, _ := reedsolomon.New(k, m, reedsolomon.WithCustomMatrix(repairRows(k, m)))
		shards := append(append([][]byte{}, src...), out...)
		b.SetBytes(k * n)
		for b.Loop() {
			rs.Encode(shards)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/k, "ns/source")
	})
	b.Run("gfni", func(b *testing.B) {
		if !haveGFNI {
			b.Skip("no AVX-512 GFNI on this CPU")
		}
		mat := gfniMatrices(k, m)
		b.SetBytes(k * n)
		for b.Loop() {
			gfniMulAdd10(&mat[0], &src[0], k, &out[0], n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/k, "ns/source")
	})
}
