package integrity

import (
	"encoding/base64"
	"errors"
	"fmt"
)

// Sentinel errors. Functions wrap them with context; test with errors.Is.
var (
	// ErrSyntax: a field value does not parse.
	ErrSyntax = errors.New("integrity: malformed field value")
	// ErrNoSupportedDigest: a digest field holds no digest whose algorithm
	// this package computes, so nothing could be checked.
	ErrNoSupportedDigest = errors.New("integrity: no digest with a supported algorithm")
	// ErrDigestMismatch: a digest does not match the body. The concrete error
	// is a *MismatchError.
	ErrDigestMismatch = errors.New("integrity: digest mismatch")
	// ErrAlgorithmNotAllowed: a digest or signature uses an algorithm outside
	// the session's advertised set (digest-algorithm / signature-algorithm).
	ErrAlgorithmNotAllowed = errors.New("integrity: algorithm not in the session's allowed set")
	// ErrUnsupportedAlgorithm: an algorithm this package does not implement.
	ErrUnsupportedAlgorithm = errors.New("integrity: unsupported algorithm")
	// ErrMissingComponent: a covered field or component is absent from the
	// message.
	ErrMissingComponent = errors.New("integrity: covered component missing from message")
	// ErrBadComponent: a covered component cannot be used in this message
	// (e.g. "@status" on a request, ";req" on a request, an unknown derived
	// component, a value containing CR or LF).
	ErrBadComponent = errors.New("integrity: unusable covered component")
	// ErrKeyType: the key does not fit the signature algorithm.
	ErrKeyType = errors.New("integrity: key type does not match algorithm")
	// ErrBadSignature: the signature does not verify over the message.
	ErrBadSignature = errors.New("integrity: signature verification failed")
	// ErrExpired: the signature's expiry time has passed.
	ErrExpired = errors.New("integrity: signature expired")
	// ErrNoSignature: the requested signature label is absent.
	ErrNoSignature = errors.New("integrity: signature not present")
)

// MismatchError reports a digest that does not match the body.
type MismatchError struct {
	Field     string // "Digest" or "Content-Digest"
	Algorithm string // canonical name, e.g. "SHA-256"
	Want      []byte // the digest the field carries
	Got       []byte // the digest of the body
}

// Error describes the mismatch with both digests in base64.
func (e *MismatchError) Error() string {
	return fmt.Sprintf("integrity: %s %s mismatch: field has %s, body hashes to %s",
		e.Field, e.Algorithm,
		base64.StdEncoding.EncodeToString(e.Want), base64.StdEncoding.EncodeToString(e.Got))
}

// Unwrap makes errors.Is(err, ErrDigestMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrDigestMismatch }
