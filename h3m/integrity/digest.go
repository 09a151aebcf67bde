package integrity

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"
)

// Digest algorithm names. DigestSHA256 and DigestSHA512 are the RFC 3230
// registry names used in Digest and in the session's digest-algorithm set;
// the RFC 9530 Content-Digest keys are their lower-case forms.
const (
	DigestSHA256 = "SHA-256"
	DigestSHA512 = "SHA-512"
)

// Field names this package reads and writes.
const (
	FieldDigest         = "Digest"
	FieldContentDigest  = "Content-Digest"
	FieldSignature      = "Signature"
	FieldSignatureInput = "Signature-Input"
)

type digestAlg struct {
	name string // RFC 3230 registry name, e.g. "SHA-256"
	key  string // RFC 9530 dictionary key, e.g. "sha-256"
	size int
	new  func() hash.Hash
}

// digestAlgs is the constant table of supported digest algorithms.
var digestAlgs = [...]digestAlg{
	{DigestSHA256, "sha-256", sha256.Size, sha256.New},
	{DigestSHA512, "sha-512", sha512.Size, sha512.New},
}

// lookupDigestAlg accepts any spelling of a supported algorithm: the RFC 3230
// token case-insensitively ("SHA-256", "sha-256"), and the hyphen-less form
// nghq sends ("sha256").
func lookupDigestAlg(name string) *digestAlg {
	for i := range digestAlgs {
		a := &digestAlgs[i]
		if strings.EqualFold(name, a.name) || strings.EqualFold(name, strings.ReplaceAll(a.name, "-", "")) {
			return a
		}
	}
	return nil
}

// lookupContentDigestAlg accepts only the RFC 9530 registry keys.
func lookupContentDigestAlg(key string) *digestAlg {
	for i := range digestAlgs {
		if digestAlgs[i].key == key {
			return &digestAlgs[i]
		}
	}
	return nil
}

// CanonicalDigestAlgorithm maps any accepted spelling of a supported digest
// algorithm ("sha256", "sha-256", "SHA-256", ...) to its registry name
// ("SHA-256"). ok is false for algorithms this package does not compute.
func CanonicalDigestAlgorithm(name string) (canonical string, ok bool) {
	if a := lookupDigestAlg(name); a != nil {
		return a.name, true
	}
	return "", false
}

// Hasher is an io.Writer that computes several digest algorithms over the
// same bytes in one pass, e.g. while a pushed body arrives. Write never
// allocates.
type Hasher struct {
	algs []*digestAlg
	hs   []hash.Hash
}

// NewHasher returns a Hasher computing the named algorithms (any spelling
// CanonicalDigestAlgorithm accepts; duplicates are computed once). It fails,
// naming the algorithm, if one is unknown or none is given.
func NewHasher(algs ...string) (*Hasher, error) {
	if len(algs) == 0 {
		return nil, fmt.Errorf("%w: no digest algorithm given", ErrUnsupportedAlgorithm)
	}
	h := &Hasher{}
	for _, name := range algs {
		a := lookupDigestAlg(name)
		if a == nil {
			return nil, fmt.Errorf("%w: digest algorithm %q", ErrUnsupportedAlgorithm, name)
		}
		if h.index(a) >= 0 {
			continue
		}
		h.algs = append(h.algs, a)
		h.hs = append(h.hs, a.new())
	}
	return h, nil
}

func (h *Hasher) index(a *digestAlg) int {
	for i, x := range h.algs {
		if x == a {
			return i
		}
	}
	return -1
}

// Write adds p to every digest. It never fails.
func (h *Hasher) Write(p []byte) (int, error) {
	for _, x := range h.hs {
		x.Write(p)
	}
	return len(p), nil
}

// Clone returns an independent copy of h that goes on from the bytes
// written so far, e.g. to finish the digests of a body whose first part was
// hashed as it arrived without changing h.
func (h *Hasher) Clone() (*Hasher, error) {
	c := &Hasher{algs: slices.Clone(h.algs), hs: make([]hash.Hash, len(h.hs))}
	for i, x := range h.hs {
		cl, ok := x.(hash.Cloner)
		if !ok {
			return nil, fmt.Errorf("integrity: the %s state cannot be copied: %w", h.algs[i].name, errors.ErrUnsupported)
		}
		y, err := cl.Clone()
		if err != nil {
			return nil, fmt.Errorf("integrity: copy the %s state: %w", h.algs[i].name, err)
		}
		c.hs[i] = y
	}
	return c, nil
}

// Reset clears the digests so the Hasher can be reused for another body.
func (h *Hasher) Reset() {
	for _, x := range h.hs {
		x.Reset()
	}
}

// Algorithms returns the registry names of the computed algorithms, in order.
func (h *Hasher) Algorithms() []string {
	out := make([]string, len(h.algs))
	for i, a := range h.algs {
		out[i] = a.name
	}
	return out
}

// Sum returns the digest of the bytes written so far for alg (any accepted
// spelling), or nil if the Hasher does not compute alg.
func (h *Hasher) Sum(alg string) []byte {
	a := lookupDigestAlg(alg)
	if a == nil {
		return nil
	}
	return h.sum(a)
}

func (h *Hasher) sum(a *digestAlg) []byte {
	if i := h.index(a); i >= 0 {
		return h.hs[i].Sum(nil)
	}
	return nil
}

// Digest returns an RFC 3230 Digest field value, e.g.
// "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=,SHA-512=...".
func (h *Hasher) Digest() string {
	var b []byte
	for i, a := range h.algs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, a.name...)
		b = append(b, '=')
		b = base64.StdEncoding.AppendEncode(b, h.hs[i].Sum(nil))
	}
	return string(b)
}

// ContentDigest returns an RFC 9530 Content-Digest field value (an RFC 8941
// dictionary), e.g. "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:, sha-512=:...:".
func (h *Hasher) ContentDigest() string {
	var b []byte
	for i, a := range h.algs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, a.key...)
		b = append(b, '=')
		b = appendSFBare(b, h.hs[i].Sum(nil))
	}
	return string(b)
}

// CheckDigest compares an RFC 3230 Digest field value with the digests
// computed so far; see VerifyDigest for the rules. Algorithms the Hasher
// does not compute count as unsupported.
func (h *Hasher) CheckDigest(fieldValue string, allowed []string) error {
	vals, err := ParseDigest(fieldValue)
	if err != nil {
		return err
	}
	return checkDigests(FieldDigest, vals, lookupDigestAlg, allowed, h.sum)
}

// CheckContentDigest is CheckDigest for an RFC 9530 Content-Digest value.
func (h *Hasher) CheckContentDigest(fieldValue string, allowed []string) error {
	vals, err := ParseContentDigest(fieldValue)
	if err != nil {
		return err
	}
	return checkDigests(FieldContentDigest, vals, lookupContentDigestAlg, allowed, h.sum)
}

// DigestValue is one digest from a Digest or Content-Digest field.
type DigestValue struct {
	// Algorithm is the algorithm token or key as the field spells it; use
	// CanonicalDigestAlgorithm to compare.
	Algorithm string
	// Value is the decoded digest. For an algorithm this package does not
	// support it is nil when the encoded value is not base64.
	Value []byte
}

// ParseDigest parses an RFC 3230 Digest field value: a comma-separated list
// of algorithm=base64 pairs. Algorithm tokens are case-insensitive; values of
// supported algorithms must be base64 (padded or not) of the right length.
func ParseDigest(fieldValue string) ([]DigestValue, error) {
	var out []DigestValue
	for _, elem := range strings.Split(fieldValue, ",") {
		elem = strings.Trim(elem, " \t")
		if elem == "" {
			continue // RFC 9110 #rule: empty list elements are ignored
		}
		name, val, ok := strings.Cut(elem, "=")
		if !ok {
			return nil, fmt.Errorf("%w: Digest element %q has no '='", ErrSyntax, elem)
		}
		if name == "" || strings.IndexFunc(name, func(r rune) bool { return r > 0x7f || !isTChar(byte(r)) }) >= 0 {
			return nil, fmt.Errorf("%w: Digest algorithm %q is not a token", ErrSyntax, name)
		}
		dv := DigestValue{Algorithm: name}
		if a := lookupDigestAlg(name); a != nil {
			b, err := decodeBase64(val)
			if err != nil {
				return nil, fmt.Errorf("Digest %s: %w", a.name, err)
			}
			if len(b) != a.size {
				return nil, fmt.Errorf("%w: Digest %s value is %d bytes, want %d", ErrSyntax, a.name, len(b), a.size)
			}
			dv.Value = b
		} else if b, err := decodeBase64(val); err == nil {
			dv.Value = b
		}
		out = append(out, dv)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: empty Digest field", ErrSyntax)
	}
	return out, nil
}

// ParseContentDigest parses an RFC 9530 Content-Digest field value, an RFC
// 8941 dictionary whose values are byte sequences. Members of supported
// algorithms ("sha-256", "sha-512") must be byte sequences of the right
// length; members of other algorithms whose value is not a byte sequence
// (such as the deprecated integer checksums) are skipped.
func ParseContentDigest(fieldValue string) ([]DigestValue, error) {
	dict, err := parseSFDictionary(fieldValue)
	if err != nil {
		return nil, fmt.Errorf("Content-Digest: %w", err)
	}
	if len(dict) == 0 {
		return nil, fmt.Errorf("%w: empty Content-Digest field", ErrSyntax)
	}
	var out []DigestValue
	for _, m := range dict {
		a := lookupContentDigestAlg(m.key)
		var b []byte
		if m.item != nil {
			b, _ = m.item.val.([]byte)
		}
		if b == nil {
			if a != nil {
				return nil, fmt.Errorf("%w: Content-Digest %s is not a byte sequence", ErrSyntax, m.key)
			}
			continue
		}
		if a != nil && len(b) != a.size {
			return nil, fmt.Errorf("%w: Content-Digest %s value is %d bytes, want %d", ErrSyntax, m.key, len(b), a.size)
		}
		out = append(out, DigestValue{Algorithm: m.key, Value: b})
	}
	return out, nil
}

// VerifyDigest checks an RFC 3230 Digest field value against body. Every
// digest whose algorithm this package supports is compared (others are
// ignored); if none is supported the result is ErrNoSupportedDigest. A
// mismatch is a *MismatchError. allowed is the session's digest-algorithm
// set: when it is non-empty, any digest in the field whose algorithm is not
// in it fails with ErrAlgorithmNotAllowed (nil or empty means any).
func VerifyDigest(fieldValue string, body io.Reader, allowed []string) error {
	vals, err := ParseDigest(fieldValue)
	if err != nil {
		return err
	}
	return verifyBody(FieldDigest, vals, lookupDigestAlg, body, allowed)
}

// VerifyContentDigest is VerifyDigest for an RFC 9530 Content-Digest value.
func VerifyContentDigest(fieldValue string, body io.Reader, allowed []string) error {
	vals, err := ParseContentDigest(fieldValue)
	if err != nil {
		return err
	}
	return verifyBody(FieldContentDigest, vals, lookupContentDigestAlg, body, allowed)
}

func verifyBody(field string, vals []DigestValue, lookup func(string) *digestAlg, body io.Reader, allowed []string) error {
	// Check the allowed set and support before reading the body.
	if err := checkAllowedDigests(field, vals, allowed); err != nil {
		return err
	}
	var names []string
	for _, v := range vals {
		if a := lookup(v.Algorithm); a != nil {
			names = append(names, a.name)
		}
	}
	if len(names) == 0 {
		return fmt.Errorf("%w in %s %q", ErrNoSupportedDigest, field, algList(vals))
	}
	h, err := NewHasher(names...)
	if err != nil {
		return err
	}
	if body != nil {
		if _, err := io.Copy(h, body); err != nil {
			return fmt.Errorf("integrity: reading body for %s: %w", field, err)
		}
	}
	return checkDigests(field, vals, lookup, allowed, h.sum)
}

func checkAllowedDigests(field string, vals []DigestValue, allowed []string) error {
	if len(allowed) == 0 {
		return nil
	}
	for _, v := range vals {
		if !digestAllowed(v.Algorithm, allowed) {
			return fmt.Errorf("%w: %s uses %q, session allows %q", ErrAlgorithmNotAllowed, field, v.Algorithm, allowed)
		}
	}
	return nil
}

func digestAllowed(alg string, allowed []string) bool {
	a := lookupDigestAlg(alg)
	for _, x := range allowed {
		if strings.EqualFold(x, alg) || (a != nil && lookupDigestAlg(x) == a) {
			return true
		}
	}
	return false
}

func checkDigests(field string, vals []DigestValue, lookup func(string) *digestAlg, allowed []string, sum func(*digestAlg) []byte) error {
	if err := checkAllowedDigests(field, vals, allowed); err != nil {
		return err
	}
	checked := 0
	for _, v := range vals {
		a := lookup(v.Algorithm)
		if a == nil {
			continue
		}
		got := sum(a)
		if got == nil {
			continue
		}
		checked++
		if subtle.ConstantTimeCompare(got, v.Value) != 1 {
			return &MismatchError{Field: field, Algorithm: a.name, Want: v.Value, Got: got}
		}
	}
	if checked == 0 {
		return fmt.Errorf("%w in %s %q", ErrNoSupportedDigest, field, algList(vals))
	}
	return nil
}

func algList(vals []DigestValue) string {
	names := make([]string, len(vals))
	for i, v := range vals {
		names[i] = v.Algorithm
	}
	return strings.Join(names, ",")
}
