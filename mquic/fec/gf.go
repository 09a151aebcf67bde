package fec

// Scalar arithmetic in GF(2^8) with the polynomial x^8+x^4+x^3+x^2+1
// (0x11d), the field of github.com/klauspost/reedsolomon. The library
// multiplies and adds whole slices (vectorized), which is where the time
// goes; it exports no scalar multiplication, which the few coefficients and
// the small matrix inversion of a block need, hence these tables.

// gfTables are the exponential and logarithm tables of the field.
type gfTables struct {
	exp [510]byte // exp[i] = α^i, twice over so that exp[log a + log b] needs no reduction
	log [256]byte // log[α^i] = i; log[0] is unused
}

// gf holds the tables, computed once: read-only after package init.
var gf = func() (t gfTables) {
	x := 1
	for i := range 255 {
		t.exp[i] = byte(x)
		t.exp[i+255] = byte(x)
		t.log[x] = byte(i)
		x <<= 1
		if x&0x100 != 0 {
			x ^= 0x11d
		}
	}
	return t
}()

// gfMul returns a·b.
func gfMul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return gf.exp[int(gf.log[a])+int(gf.log[b])]
}

// gfInv returns 1/a (a ≠ 0).
func gfInv(a byte) byte {
	return gf.exp[255-int(gf.log[a])]
}

// Coefficient returns C(j, i), the coefficient of source symbol i in repair
// symbol j: 1 / ((255 − j) ⊕ i). For i < k and j < m with k + m ≤
// MaxSymbols the divisor is never 0, and the matrix is a Cauchy matrix.
func Coefficient(j, i int) byte {
	return gfInv(byte(255-j) ^ byte(i))
}
