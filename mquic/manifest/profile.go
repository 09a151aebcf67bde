package manifest

import (
	"github.com/h3m-project/h3m/mquic/wire"

	"crypto"
	"encoding/binary"
	"fmt"
)

// ExtensionID is the transport parameter ID under which a session's
// extensions parameter advertises asymmetric packet authentication (an
// experimental value; the draft's extensions parameter takes 16-bit IDs).
// Its value is the session's Profile. A session that advertises it is an
// asymmetric session; one that does not is symmetric.
const ExtensionID uint16 = 0xff3e

// HashSHA256 is SHA-256's number in the IANA Named Information Hash Algorithm
// registry, the hash-algorithm numbering draft-jholland-quic-multicast uses.
const HashSHA256 = 1

// Profile is what an asymmetric session advertises about its manifests (the
// value of the ExtensionID extension): the packet hash, the manifest stream
// and the signing key. The advertisement is fetched over TLS, so the key it
// carries is pinned for the whole session.
//
//	Packet Authentication Profile {
//	  Hash Algorithm (8),          // 1 = sha-256, the only one supported
//	  Signature Algorithm (16),    // Algorithm
//	  Manifest Stream ID (32),
//	  Public Key (..),             // to the end of the value
//	}
type Profile struct {
	// StreamID is the Manifest Stream ID every manifest of the session
	// carries.
	StreamID uint32
	// Key verifies the manifests.
	Key *PublicKey
}

// profileFixedLen is the profile without the public key.
const profileFixedLen = 1 + 2 + 4

// NewProfile builds the profile of a session whose manifests key signs
// (key: an ed25519.PublicKey, a P-256 *ecdsa.PublicKey or a *PublicKey).
func NewProfile(key crypto.PublicKey, streamID uint32) (*Profile, error) {
	pk, ok := key.(*PublicKey)
	if !ok {
		var err error
		if pk, err = NewPublicKey(key); err != nil {
			return nil, err
		}
	}
	return &Profile{StreamID: streamID, Key: pk}, nil
}

// AppendValue appends the profile's encoding, the extension value.
func (p *Profile) AppendValue(dst []byte) []byte {
	dst = append(dst, HashSHA256)
	dst = binary.BigEndian.AppendUint16(dst, uint16(p.Key.alg))
	dst = binary.BigEndian.AppendUint32(dst, p.StreamID)
	return append(dst, p.Key.raw...)
}

// Value returns the extension value.
func (p *Profile) Value() []byte { return p.AppendValue(nil) }

func profileErr(field string, err error) error {
	return &ParseError{What: "profile", Field: field, Err: err}
}

// ParseProfile parses an extension value.
func ParseProfile(v []byte) (*Profile, error) {
	if len(v) < profileFixedLen {
		return nil, profileErr("header", wire.ErrTruncated)
	}
	if v[0] != HashSHA256 {
		return nil, profileErr("hash algorithm", fmt.Errorf("%w: %d, only 1 (sha-256) is supported", ErrInvalid, v[0]))
	}
	alg := Algorithm(binary.BigEndian.Uint16(v[1:]))
	key, err := ParsePublicKey(alg, v[profileFixedLen:])
	if err != nil {
		return nil, profileErr("public key", fmt.Errorf("%w: %w", ErrInvalid, err))
	}
	return &Profile{StreamID: binary.BigEndian.Uint32(v[3:]), Key: key}, nil
}
