// Package protect implements packet protection for multicast QUIC sessions:
// AEAD payload protection and header protection as RFC 9001 §5 defines them,
// keyed either from a raw key and IV (the draft's literal form) or from a
// secret through the RFC 9001 §5.1 key schedule (this project's secret form).
package protect

import (
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// Suite is a TLS cipher suite registry value, as carried by the session's
// cipher-suite parameter.
type Suite uint16

// The cipher suites a session can use.
const (
	// SuiteNull is TLS_NULL_WITH_NULL_NULL: no encryption, no AEAD tag and no
	// header protection. It is what a session without a cipher-suite uses.
	SuiteNull             Suite = 0x0000
	SuiteAES128GCM        Suite = 0x1301 // TLS_AES_128_GCM_SHA256
	SuiteAES256GCM        Suite = 0x1302 // TLS_AES_256_GCM_SHA384
	SuiteChaCha20Poly1305 Suite = 0x1303 // TLS_CHACHA20_POLY1305_SHA256
)

// Supported reports whether this package implements the suite.
func (s Suite) Supported() bool {
	switch s {
	case SuiteNull, SuiteAES128GCM, SuiteAES256GCM, SuiteChaCha20Poly1305:
		return true
	}
	return false
}

// String returns the suite's TLS name, or its hex value when unknown.
func (s Suite) String() string {
	switch s {
	case SuiteNull:
		return "TLS_NULL_WITH_NULL_NULL"
	case SuiteAES128GCM:
		return "TLS_AES_128_GCM_SHA256"
	case SuiteAES256GCM:
		return "TLS_AES_256_GCM_SHA384"
	case SuiteChaCha20Poly1305:
		return "TLS_CHACHA20_POLY1305_SHA256"
	}
	return fmt.Sprintf("cipher suite %04x", uint16(s))
}

// KeyLen is the AEAD key length in bytes (0 for the NULL suite).
func (s Suite) KeyLen() int {
	switch s {
	case SuiteAES128GCM:
		return 16
	case SuiteAES256GCM, SuiteChaCha20Poly1305:
		return 32
	}
	return 0
}

// IVLen is the AEAD IV (nonce) length in bytes (0 for the NULL suite).
func (s Suite) IVLen() int {
	if s == SuiteNull {
		return 0
	}
	return 12
}

// TagLen is the number of bytes the AEAD adds to each packet (0 for NULL).
func (s Suite) TagLen() int {
	if s == SuiteNull {
		return 0
	}
	return 16
}

// Hash is the hash function of the suite's key schedule (nil for NULL).
func (s Suite) Hash() func() hash.Hash {
	switch s {
	case SuiteAES128GCM, SuiteChaCha20Poly1305:
		return sha256.New
	case SuiteAES256GCM:
		return sha512.New384
	}
	return nil
}
