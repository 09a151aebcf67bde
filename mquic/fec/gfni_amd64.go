package fec

import "golang.org/x/sys/cpu"

// haveGFNI reports whether this CPU (and OS) runs the GFNI kernel: AVX-512
// with GFNI. Set once at start-up from the CPU's features; read-only (but
// for tests of the library's path).
var haveGFNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512GFNI

// gfniMulAdd10 sets out[o][:n] = Σ_{i<k} mat[i·10+o] · in[i][:n] for o <
// 10, where mat holds GF2P8AFFINEQB matrices: the 10 repair symbols of a
// block of k source symbols. n is a positive multiple of 64 and every
// buffer has n bytes from its start.
//
//go:noescape
func gfniMulAdd10(mat *uint64, in *[]byte, k int, out *[]byte, n int)

// gfniMulAdd4 is gfniMulAdd10 with four outputs, mat holding four matrices
// per source symbol (mat[i·4+o]): out[o] for o < 4.
//
//go:noescape
func gfniMulAdd4(mat *uint64, in *[]byte, k int, out *[]byte, n int)
