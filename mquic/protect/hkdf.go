package protect

import (
	"crypto/hkdf"
	"fmt"
	"hash"
)

// The RFC 9001 §5.1 labels for QUIC packet protection keys, and §6.1's for
// the next key phase (used here only as a test vector: sessions never update
// keys, they roll over).
const (
	labelKey         = "quic key"
	labelIV          = "quic iv"
	labelHP          = "quic hp"
	labelKeyUpdate   = "quic ku"
	tls13LabelPrefix = "tls13 "
)

// ExpandLabel is TLS 1.3's HKDF-Expand-Label (RFC 8446 §7.1) with an empty
// context: HKDF-Expand(secret, HkdfLabel, length), where HkdfLabel is the
// 2-byte length, the label prefixed with "tls13 " and an empty context. It
// panics if the label exceeds 249 bytes or length is beyond what HKDF can
// produce (255 hash blocks), both programming errors.
func ExpandLabel(h func() hash.Hash, secret []byte, label string, length int) []byte {
	full := len(tls13LabelPrefix) + len(label)
	if full > 255 || length < 0 || length > 0xffff {
		panic(fmt.Sprintf("protect: ExpandLabel(%q, %d): label or length out of range", label, length))
	}
	info := make([]byte, 0, 2+1+full+1)
	info = append(info, byte(length>>8), byte(length), byte(full))
	info = append(info, tls13LabelPrefix...)
	info = append(info, label...)
	info = append(info, 0) // empty context
	out, err := hkdf.Expand(h, secret, string(info), length)
	if err != nil {
		panic(fmt.Sprintf("protect: ExpandLabel(%q, %d): %v", label, length, err))
	}
	return out
}

// DeriveKeys derives the AEAD key, the IV and the header-protection key from
// a secret of the suite's hash length, with the "quic key", "quic iv" and
// "quic hp" labels as RFC 9001 §5.1 does for 1-RTT keys.
func DeriveKeys(s Suite, secret []byte) (key, iv, hp []byte, err error) {
	if s == SuiteNull || !s.Supported() {
		return nil, nil, nil, fmt.Errorf("protect: cannot derive keys for %v", s)
	}
	h := s.Hash()
	if n := h().Size(); len(secret) != n {
		return nil, nil, nil, fmt.Errorf("protect: secret: %d bytes, %v needs %d", len(secret), s, n)
	}
	key = ExpandLabel(h, secret, labelKey, s.KeyLen())
	iv = ExpandLabel(h, secret, labelIV, s.IVLen())
	hp = ExpandLabel(h, secret, labelHP, s.KeyLen())
	return key, iv, hp, nil
}
