package h3m

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
)

// ErrIntegrity is wrapped by every verification failure.
var ErrIntegrity = errors.New("h3m: integrity check failed")

// The kinds of integrity failure IntegrityKind tells apart.
const (
	IntegrityDigest    = "digest"    // a digest field did not match the body, or none was there to check
	IntegritySignature = "signature" // a signature did not verify, or none was there to check
)

// integrityError is a verification failure of a known kind; its message is
// the wrapped error's.
type integrityError struct {
	kind string
	err  error
}

func (e *integrityError) Error() string { return e.err.Error() }
func (e *integrityError) Unwrap() error { return e.err }

func integrityErr(kind string, err error) error { return &integrityError{kind: kind, err: err} }

// IntegrityKind returns which check err failed, IntegrityDigest or
// IntegritySignature, or "" when err is no such failure.
func IntegrityKind(err error) string {
	var ie *integrityError
	if errors.As(err, &ie) {
		return ie.kind
	}
	return ""
}

// Verifier checks the integrity of completed resources: Digest (RFC 3230)
// and Content-Digest (RFC 9530) fields, cavage-12 Signature fields and
// RFC 9421 HTTP Message Signatures. A resource that fails is discarded and
// reported failed, to be fetched over unicast.
//
// The Receiver computes body digests as the bytes arrive in order, on a
// worker beside the packet path, so the checks of a push that arrived whole
// cost no pass over its body; signatures cover header fields
// (Content-Digest among them), not the body.
type Verifier struct {
	// RequireDigest fails resources that carry no digest we can check.
	RequireDigest bool
	// RequireSignature fails resources that carry no signature.
	RequireSignature bool
	// Keys resolves signature key IDs to public keys (from the unicast
	// server, over TLS). Without it, signatures are not checked. The
	// Receiver's workers call it: waiting for the network there delays
	// the checks of the pushes behind.
	Keys integrity.KeyResolver
	// CavageForm is the signed-string form of cavage-12 signatures.
	CavageForm integrity.CavageForm
	// MaxAge bounds the age of a response signature, so that a captured
	// older response of the same path, validly signed, cannot be passed
	// off as the current one (a rollback): an RFC 9421 signature needs a
	// created parameter, a cavage one a signed "(created)" or Date field,
	// no older than this (and not past its expires). 0 means
	// DefaultSignatureMaxAge; negative leaves the age unchecked. Promise
	// signatures, which cover the request alone, are not bound to an age.
	MaxAge time.Duration
	// Now is the verification time; nil means time.Now.
	Now func() time.Time
}

// DefaultSignatureMaxAge is Verifier.MaxAge by default: long enough for a
// large push signed when it starts to arrive, be repaired and be checked,
// short enough to bound replays of superseded versions.
const DefaultSignatureMaxAge = time.Hour

// maxAge returns the age limit of response signatures, 0 for none.
func (v *Verifier) maxAge() time.Duration {
	switch {
	case v.MaxAge < 0:
		return 0
	case v.MaxAge == 0:
		return DefaultSignatureMaxAge
	}
	return v.MaxAge
}

func (v *Verifier) now() func() time.Time {
	if v.Now != nil {
		return v.Now
	}
	return time.Now
}

// Verify runs the checks of v on res exactly as the Receiver does when a
// resource completes: digests, and signatures when v has keys. A nil v
// checks the digests present. The unicast client calls it once a range
// repair has filled the bytes that multicast lost, so that a repaired
// resource passes the same checks as one that arrived whole.
//
// The digests the Receiver computed as the body arrived cover it up to its
// first loss; Verify reads the body back from there to the end (digests
// are sequential: the bytes after a repaired range must be hashed again
// after it), so call it off the packet path. It works on a copy of those
// digests, leaving the resource unchanged, and may be called again.
func (v *Verifier) Verify(res *Resource, prof Profile) error {
	res.mu.Lock()
	if res.request == nil || res.response == nil || res.length < 0 {
		res.mu.Unlock()
		return fmt.Errorf("%w: push %d has no promise, response or length to check", ErrIntegrity, res.PushID)
	}
	c := res.checksLocked()
	res.mu.Unlock()
	d := &res.digests
	d.mu.Lock()
	if d.h != nil {
		sums, err := d.h.Clone()
		if err != nil {
			d.mu.Unlock()
			return fmt.Errorf("h3m: copy the body's digests: %w", err)
		}
		c.sums, c.hashed = sums, d.n
	}
	d.mu.Unlock()
	if err := c.finishDigests(); err != nil {
		return err
	}
	return v.check(&c, prof)
}

// checks is what the integrity checks of a resource that arrived whole
// need, taken from it under its lock.
type checks struct {
	req    *h3frame.Request
	status int
	fields http.Header // header and trailer fields
	algs   []string    // supported digest algorithms the fields name
	body   Body
	length int64
	sums   *integrity.Hasher // digests of body[0:hashed], a copy; nil if none
	hashed int64
}

// checksLocked takes what the checks need from r but its digests.
func (r *Resource) checksLocked() checks {
	fields := h3frame.MergeTrailer(r.response.Header, r.trailer)
	return checks{
		req: r.request, status: r.response.Status, fields: fields,
		algs: digestAlgorithms(fields, r.response.Status),
		body: r.body, length: r.length,
	}
}

// digestsDone reports whether c.sums cover every algorithm the fields name
// over the whole body, so that the checks need no pass over it.
func (c *checks) digestsDone() bool {
	return len(c.algs) == 0 || (c.sums != nil && c.hashed == c.length && covers(c.sums, c.algs))
}

// finishDigests completes c.sums by reading the body back: from where the
// digests computed on arrival stopped, or from the start when they lack an
// algorithm the fields name.
func (c *checks) finishDigests() error {
	if c.digestsDone() {
		return nil
	}
	sums, from := c.sums, c.hashed
	if sums == nil || from > c.length || !covers(sums, c.algs) {
		from = 0
		var err error
		if sums, err = integrity.NewHasher(c.algs...); err != nil {
			return fmt.Errorf("h3m: digests: %w", err)
		}
	}
	if c.body == nil {
		return fmt.Errorf("%w: no body to check", ErrIntegrity)
	}
	buf := make([]byte, digestChunk)
	for off := from; off < c.length; {
		n, err := c.body.ReadAt(buf[:min(int64(len(buf)), c.length-off)], off)
		sums.Write(buf[:n])
		off += int64(n)
		switch {
		case err == io.EOF && off == c.length:
		case err != nil:
			return fmt.Errorf("h3m: reading the body for its digests at %d of %d: %w", off, c.length, err)
		case n == 0:
			return fmt.Errorf("h3m: reading the body for its digests: no bytes at %d of %d", off, c.length)
		}
		// Hand the processor over between chunks: packet intake, if it
		// waits for one, then gets it within a chunk's hashing instead
		// of a whole scheduling slice.
		runtime.Gosched()
	}
	c.sums, c.hashed = sums, c.length
	return nil
}

// digestChunk is how much of a body a digest pass reads at once: about a
// tenth of a millisecond of hashing.
const digestChunk = 64 << 10

// covers reports whether h computes every one of algs.
func covers(h *integrity.Hasher, algs []string) bool {
	have := h.Algorithms()
	for _, a := range algs {
		if !slices.Contains(have, a) {
			return false
		}
	}
	return true
}

// check runs the checks on c, whose digests are done: constant time in the
// body's size. A nil Verifier checks digests when present.
func (v *Verifier) check(c *checks, prof Profile) error {
	if v == nil {
		v = &Verifier{}
	}
	checked := false
	if d := c.fields.Get(integrity.FieldDigest); d != "" {
		if err := checkDigest(c.sums, d, prof, (*integrity.Hasher).CheckDigest, integrity.VerifyDigest); err != nil {
			return integrityErr(IntegrityDigest, fmt.Errorf("%w: digest: %w", ErrIntegrity, err))
		}
		checked = true
	}
	if d := c.fields.Get(integrity.FieldContentDigest); d != "" && c.status != http.StatusPartialContent {
		if err := checkDigest(c.sums, d, prof, (*integrity.Hasher).CheckContentDigest, integrity.VerifyContentDigest); err != nil {
			return integrityErr(IntegrityDigest, fmt.Errorf("%w: content-digest: %w", ErrIntegrity, err))
		}
		checked = true
	}
	if v.RequireDigest && !checked {
		return integrityErr(IntegrityDigest, fmt.Errorf("%w: no digest", ErrIntegrity))
	}
	req, fields := c.req, c.fields
	msg := &integrity.Message{
		Method: req.Method, Scheme: req.Scheme, Authority: req.Authority, Path: req.Path,
		Status: c.status, RequestHeader: req.Header, ResponseHeader: fields,
	}
	signed := false
	if v.Keys != nil {
		if in := fields.Get(integrity.FieldSignatureInput); in != "" {
			opts := integrity.VerifyOptions{Now: v.now(), MaxAge: v.maxAge()}
			if err := integrity.VerifyMessageWith(msg, in, fields.Get(integrity.FieldSignature), "", v.Keys, opts); err != nil {
				return integrityErr(IntegritySignature, fmt.Errorf("%w: message signature: %w", ErrIntegrity, err))
			}
			signed = true
		} else if s := fields.Get(integrity.FieldSignature); s != "" {
			sig, err := integrity.ParseCavageSignature(s)
			if err == nil {
				err = integrity.VerifyCavageWith(msg, sig, v.Keys, integrity.CavageOptions{
					Allowed: prof.SignatureAlgorithms, Form: v.CavageForm, Now: v.now(), MaxAge: v.maxAge()})
			}
			if err != nil {
				return integrityErr(IntegritySignature, fmt.Errorf("%w: signature: %w", ErrIntegrity, err))
			}
			signed = true
		}
		if s := req.Header.Get(integrity.FieldSignature); s != "" {
			reqMsg := *msg
			reqMsg.Status, reqMsg.ResponseHeader = 0, nil
			sig, err := integrity.ParseCavageSignature(s)
			if err == nil {
				err = integrity.VerifyCavageAt(&reqMsg, sig, v.Keys, prof.SignatureAlgorithms, v.CavageForm, v.now()())
			}
			if err != nil {
				return integrityErr(IntegritySignature, fmt.Errorf("%w: promise signature: %w", ErrIntegrity, err))
			}
			signed = true
		}
	}
	if v.RequireSignature && !signed {
		return integrityErr(IntegritySignature, fmt.Errorf("%w: no verifiable signature", ErrIntegrity))
	}
	return nil
}

// checkDigest checks one digest field against sums. Without sums the field
// names no supported algorithm (or does not parse), and verify says which,
// reading no body.
func checkDigest(sums *integrity.Hasher, value string, prof Profile,
	check func(*integrity.Hasher, string, []string) error, verify func(string, io.Reader, []string) error) error {
	if sums == nil {
		return verify(value, nil, prof.DigestAlgorithms)
	}
	return check(sums, value, prof.DigestAlgorithms)
}
