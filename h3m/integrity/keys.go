package integrity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"math/big"
)

// KeyResolver returns the public key for a signature's key ID. It may
// return an AlgorithmKey (or *AlgorithmKey) to bind the key to one
// algorithm; this is needed for RSA keys under RFC 9421 when the signature
// has no alg parameter, because an RSA key alone does not say whether it
// signs rsa-pss-sha512 or rsa-v1_5-sha256.
type KeyResolver func(keyID string) (crypto.PublicKey, error)

// AlgorithmKey binds a public key to one signature algorithm. Algorithm is
// an RFC 9421 name ("ed25519", "ecdsa-p256-sha256", "ecdsa-p384-sha384",
// "rsa-pss-sha512", "rsa-v1_5-sha256"); for cavage signatures the binding
// is ignored and only Key is used.
type AlgorithmKey struct {
	Algorithm string
	Key       crypto.PublicKey
}

// StaticKeys returns a KeyResolver over a fixed map from key ID to public
// key (the map is copied).
func StaticKeys(keys map[string]crypto.PublicKey) KeyResolver {
	m := maps.Clone(keys)
	return func(keyID string) (crypto.PublicKey, error) {
		k, ok := m[keyID]
		if !ok {
			return nil, fmt.Errorf("integrity: unknown key ID %q", keyID)
		}
		return k, nil
	}
}

// ParsePublicKeyPEM reads the first PEM block of data: a CERTIFICATE (its
// subject public key), a PUBLIC KEY (PKIX) or an RSA PUBLIC KEY (PKCS #1).
func ParsePublicKeyPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("integrity: no PEM block")
	}
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("integrity: certificate: %w", err)
		}
		return cert.PublicKey, nil
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("integrity: public key: %w", err)
		}
		return k, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("integrity: RSA public key: %w", err)
		}
		return k, nil
	}
	return nil, fmt.Errorf("integrity: unsupported PEM block %q", block.Type)
}

// ParsePrivateKeyPEM reads the first PEM block of data: a PRIVATE KEY
// (PKCS #8), an RSA PRIVATE KEY (PKCS #1) or an EC PRIVATE KEY (SEC 1).
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("integrity: no PEM block")
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("integrity: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("integrity: %s: %w", block.Type, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("integrity: %T cannot sign", k)
	}
	return s, nil
}

// keyKind is the family of a key.
type keyKind int

const (
	kindUnknown keyKind = iota
	kindEd25519
	kindECDSA
	kindRSA
)

// normalizeKey unwraps AlgorithmKey and value/pointer variants, returning
// the key, its kind, its ECDSA curve name (if any) and a bound algorithm.
func normalizeKey(k crypto.PublicKey) (key crypto.PublicKey, kind keyKind, curve, alg string) {
	switch v := k.(type) {
	case AlgorithmKey:
		key, kind, curve, _ = normalizeKey(v.Key)
		return key, kind, curve, v.Algorithm
	case *AlgorithmKey:
		if v == nil {
			return nil, kindUnknown, "", ""
		}
		key, kind, curve, _ = normalizeKey(v.Key)
		return key, kind, curve, v.Algorithm
	case ed25519.PublicKey:
		if len(v) == ed25519.PublicKeySize {
			return v, kindEd25519, "", ""
		}
	case *ed25519.PublicKey:
		if v != nil {
			return normalizeKey(*v)
		}
	case *ecdsa.PublicKey:
		if v != nil && v.Curve != nil {
			return v, kindECDSA, v.Curve.Params().Name, ""
		}
	case ecdsa.PublicKey:
		return normalizeKey(&v)
	case *rsa.PublicKey:
		if v != nil && v.N != nil {
			return v, kindRSA, "", ""
		}
	case rsa.PublicKey:
		return normalizeKey(&v)
	}
	return k, kindUnknown, "", ""
}

// scheme is one concrete signature scheme.
type scheme struct {
	kind  keyKind
	curve string      // ECDSA curve name, "P-256" or "P-384"
	hash  crypto.Hash // 0 for Ed25519
	pss   bool        // RSASSA-PSS with salt length = hash size
	raw   bool        // ECDSA signature as fixed-size r||s (RFC 9421), else ASN.1 DER
}

func (s scheme) fits(kind keyKind, curve string) bool {
	return s.kind == kind && (s.kind != kindECDSA || s.curve == curve)
}

// sign signs msg with key under s.
func (s scheme) sign(key crypto.Signer, msg []byte) ([]byte, error) {
	_, kind, curve, _ := normalizeKey(key.Public())
	if !s.fits(kind, curve) {
		return nil, fmt.Errorf("%w: %T", ErrKeyType, key.Public())
	}
	if s.kind == kindEd25519 {
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	h := s.hash.New()
	h.Write(msg)
	digest := h.Sum(nil)
	var opts crypto.SignerOpts = s.hash
	if s.pss {
		opts = &rsa.PSSOptions{SaltLength: s.hash.Size(), Hash: s.hash}
	}
	sig, err := key.Sign(rand.Reader, digest, opts)
	if err != nil {
		return nil, fmt.Errorf("integrity: signing: %w", err)
	}
	if s.kind == kindECDSA && s.raw {
		return derToRaw(sig, curveSize(curve))
	}
	return sig, nil
}

// verify checks sig over msg with pub under s: ErrKeyType if the key does
// not fit, ErrBadSignature if the signature does not verify.
func (s scheme) verify(pub crypto.PublicKey, msg, sig []byte) error {
	key, kind, curve, _ := normalizeKey(pub)
	if !s.fits(kind, curve) {
		return fmt.Errorf("%w: %T (curve %q)", ErrKeyType, key, curve)
	}
	if s.kind == kindEd25519 {
		if !ed25519.Verify(key.(ed25519.PublicKey), msg, sig) {
			return ErrBadSignature
		}
		return nil
	}
	h := s.hash.New()
	h.Write(msg)
	digest := h.Sum(nil)
	switch s.kind {
	case kindRSA:
		var err error
		if s.pss {
			err = rsa.VerifyPSS(key.(*rsa.PublicKey), s.hash, digest, sig, &rsa.PSSOptions{SaltLength: s.hash.Size(), Hash: s.hash})
		} else {
			err = rsa.VerifyPKCS1v15(key.(*rsa.PublicKey), s.hash, digest, sig)
		}
		if err != nil {
			return ErrBadSignature
		}
		return nil
	case kindECDSA:
		ek := key.(*ecdsa.PublicKey)
		n := curveSize(curve)
		if s.raw {
			if len(sig) != 2*n {
				return fmt.Errorf("%w: ECDSA signature is %d bytes, want %d", ErrBadSignature, len(sig), 2*n)
			}
			r := new(big.Int).SetBytes(sig[:n])
			ss := new(big.Int).SetBytes(sig[n:])
			if !ecdsa.Verify(ek, digest, r, ss) {
				return ErrBadSignature
			}
			return nil
		}
		if ecdsa.VerifyASN1(ek, digest, sig) {
			return nil
		}
		// Some cavage implementations send r||s instead of DER.
		if len(sig) == 2*n {
			r := new(big.Int).SetBytes(sig[:n])
			ss := new(big.Int).SetBytes(sig[n:])
			if ecdsa.Verify(ek, digest, r, ss) {
				return nil
			}
		}
		return ErrBadSignature
	}
	return fmt.Errorf("%w: %T", ErrKeyType, key)
}

func curveSize(curve string) int {
	switch curve {
	case "P-256":
		return 32
	case "P-384":
		return 48
	case "P-521":
		return 66
	}
	return 0
}

// derToRaw converts an ASN.1 ECDSA signature to fixed-size r||s.
func derToRaw(der []byte, n int) ([]byte, error) {
	var sig struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil || len(rest) != 0 || sig.R == nil || sig.S == nil ||
		sig.R.Sign() <= 0 || sig.S.Sign() <= 0 || sig.R.BitLen() > 8*n || sig.S.BitLen() > 8*n {
		return nil, errors.New("integrity: signer returned a malformed ECDSA signature")
	}
	out := make([]byte, 2*n)
	sig.R.FillBytes(out[:n])
	sig.S.FillBytes(out[n:])
	return out, nil
}
