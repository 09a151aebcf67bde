#include "textflag.h"

// func gfniMulAdd10(mat *uint64, in *[]byte, k int, out *[]byte, n int)
//
// For each 64-byte column: ten accumulators Z0-Z9 start at zero; each
// source symbol's 64 bytes (Z26) are multiplied by its ten matrices
// (GF2P8AFFINEQB with the matrix broadcast from memory) into Z16-Z25 and
// added (XOR) to the accumulators, which are then stored. Avoids BP, R14
// and Z15 (frame pointer, g, zero register of the Go ABI).
TEXT ·gfniMulAdd10(SB), NOSPLIT, $0-40
	MOVQ mat+0(FP), AX
	MOVQ in+8(FP), BX
	MOVQ k+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ n+32(FP), SI
	XORQ R8, R8

column:
	CMPQ R8, SI
	JAE  done
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	MOVQ AX, R9
	MOVQ BX, R10
	MOVQ CX, R11

source:
	MOVQ      (R10), R12
	VMOVDQU64 (R12)(R8*1), Z26
	VGF2P8AFFINEQB.BCST $0x00, 0(R9), Z26, Z16
	VGF2P8AFFINEQB.BCST $0x00, 8(R9), Z26, Z17
	VGF2P8AFFINEQB.BCST $0x00, 16(R9), Z26, Z18
	VGF2P8AFFINEQB.BCST $0x00, 24(R9), Z26, Z19
	VGF2P8AFFINEQB.BCST $0x00, 32(R9), Z26, Z20
	VGF2P8AFFINEQB.BCST $0x00, 40(R9), Z26, Z21
	VGF2P8AFFINEQB.BCST $0x00, 48(R9), Z26, Z22
	VGF2P8AFFINEQB.BCST $0x00, 56(R9), Z26, Z23
	VGF2P8AFFINEQB.BCST $0x00, 64(R9), Z26, Z24
	VGF2P8AFFINEQB.BCST $0x00, 72(R9), Z26, Z25
	VPXORQ    Z16, Z0, Z0
	VPXORQ    Z17, Z1, Z1
	VPXORQ    Z18, Z2, Z2
	VPXORQ    Z19, Z3, Z3
	VPXORQ    Z20, Z4, Z4
	VPXORQ    Z21, Z5, Z5
	VPXORQ    Z22, Z6, Z6
	VPXORQ    Z23, Z7, Z7
	VPXORQ    Z24, Z8, Z8
	VPXORQ    Z25, Z9, Z9
	ADDQ $80, R9
	ADDQ $24, R10
	DECQ R11
	JNZ  source

	MOVQ      0(DX), R12
	VMOVDQU64 Z0, (R12)(R8*1)
	MOVQ      24(DX), R12
	VMOVDQU64 Z1, (R12)(R8*1)
	MOVQ      48(DX), R12
	VMOVDQU64 Z2, (R12)(R8*1)
	MOVQ      72(DX), R12
	VMOVDQU64 Z3, (R12)(R8*1)
	MOVQ      96(DX), R12
	VMOVDQU64 Z4, (R12)(R8*1)
	MOVQ      120(DX), R12
	VMOVDQU64 Z5, (R12)(R8*1)
	MOVQ      144(DX), R12
	VMOVDQU64 Z6, (R12)(R8*1)
	MOVQ      168(DX), R12
	VMOVDQU64 Z7, (R12)(R8*1)
	MOVQ      192(DX), R12
	VMOVDQU64 Z8, (R12)(R8*1)
	MOVQ      216(DX), R12
	VMOVDQU64 Z9, (R12)(R8*1)
	ADDQ $64, R8
	JMP  column

done:
	VZEROUPPER
	RET

// func gfniMulAdd4(mat *uint64, in *[]byte, k int, out *[]byte, n int)
//
// gfniMulAdd10 with four outputs (four matrices per source symbol): the
// decoder's syndromes when it uses four repair rows or fewer.
TEXT ·gfniMulAdd4(SB), NOSPLIT, $0-40
	MOVQ mat+0(FP), AX
	MOVQ in+8(FP), BX
	MOVQ k+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ n+32(FP), SI
	XORQ R8, R8

column4:
	CMPQ R8, SI
	JAE  done4
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	MOVQ AX, R9
	MOVQ BX, R10
	MOVQ CX, R11

source4:
	MOVQ      (R10), R12
	VMOVDQU64 (R12)(R8*1), Z26
	VGF2P8AFFINEQB.BCST $0x00, 0(R9), Z26, Z16
	VGF2P8AFFINEQB.BCST $0x00, 8(R9), Z26, Z17
	VGF2P8AFFINEQB.BCST $0x00, 16(R9), Z26, Z18
	VGF2P8AFFINEQB.BCST $0x00, 24(R9), Z26, Z19
	VPXORQ    Z16, Z0, Z0
	VPXORQ    Z17, Z1, Z1
	VPXORQ    Z18, Z2, Z2
	VPXORQ    Z19, Z3, Z3
	ADDQ $32, R9
	ADDQ $24, R10
	DECQ R11
	JNZ  source4

	MOVQ      0(DX), R12
	VMOVDQU64 Z0, (R12)(R8*1)
	MOVQ      24(DX), R12
	VMOVDQU64 Z1, (R12)(R8*1)
	MOVQ      48(DX), R12
	VMOVDQU64 Z2, (R12)(R8*1)
	MOVQ      72(DX), R12
	VMOVDQU64 Z3, (R12)(R8*1)
	ADDQ $64, R8
	JMP  column4

done4:
	VZEROUPPER
	RET
