package fec

// The sender's encoding of a whole block with GFNI (AVX-512), when the CPU
// has it. github.com/klauspost/reedsolomon detects GFNI, but for a block of
// more than 10 source symbols its single-goroutine Encode splits the work
// into 10×10 pieces and runs them with its AVX2 kernels, regenerating their
// lookup tables at every call (a third of the time at 200 + 10 symbols);
// its GFNI plan is built only on its multi-goroutine path, which allocates
// about 20 KB per call. The kernel here (gfni_amd64.s) is the same
// arithmetic as the library's GFNI kernels — one GF2P8AFFINEQB per 64 bytes
// of a source symbol and repair symbol — over the whole block in one pass,
// with the block's coefficient matrices computed once per Encoder. Tests
// check it against the library byte for byte.

// gfniOutputs is how many repair symbols one pass of the kernel computes
// (one ZMM accumulator each).
const gfniOutputs = 10

// gfniSmallOutputs is how many repair symbols one pass of the small kernel
// (gfniMulAdd4) computes: the decoder's syndromes of a block that lost few
// packets.
const gfniSmallOutputs = 4

// mulMatrix returns the 8×8 bit matrix, as GF2P8AFFINEQB takes it, of the
// multiplication by c in this package's field: byte 7−i of the result
// holds, as bit k, bit i of c·2^k.
func mulMatrix(c byte) uint64 {
	var m uint64
	for i := range 8 {
		var row byte
		for k := range 8 {
			if gfMul(c, 1<<k)>>i&1 != 0 {
				row |= 1 << k
			}
		}
		m |= uint64(row) << (8 * (7 - i))
	}
	return m
}

// gfniMatrices returns the kernel's coefficient matrices for blocks of up
// to k source symbols and m repair symbols: for each group g of
// gfniOutputs repair symbols, k rows of gfniOutputs matrices, C(10g+o, i)
// at index (g·k + i)·gfniOutputs + o (zero past m).
func gfniMatrices(k, m int) []uint64 {
	groups := roundUp(m, gfniOutputs) / gfniOutputs
	mat := make([]uint64, groups*k*gfniOutputs)
	for g := range groups {
		for i := range k {
			for o := range gfniOutputs {
				if j := g*gfniOutputs + o; j < m {
					mat[(g*k+i)*gfniOutputs+o] = mulMatrix(Coefficient(j, i))
				}
			}
		}
	}
	return mat
}

// roundUp64 rounds n up to a multiple of 64: the kernel works on whole
// 64-byte vectors (buffers are allocated with room for it, zero past their
// symbols).
func roundUp64(n int) int { return roundUp(n, 64) }

// roundUp rounds n up to a multiple of to.
func roundUp(n, to int) int { return (n + to - 1) / to * to }
