//go:build !amd64

package fec

// haveGFNI is false: the kernel is amd64 only (the library encodes). A
// variable only so that tests can switch the kernel off on amd64.
var haveGFNI = false

func gfniMulAdd10(*uint64, *[]byte, int, *[]byte, int) { panic("fec: no GFNI kernel on this platform") }

func gfniMulAdd4(*uint64, *[]byte, int, *[]byte, int) { panic("fec: no GFNI kernel on this platform") }
