package h3m

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
)

// ErrIntegrity is wrapped by every verification failure.
var ErrIntegrity = errors.New("h3m: integrity check failed")

// Verifier checks the integrity of completed resources: Digest (RFC 3230)
// and Content-Digest (RFC 9530) fields, cavage-12 Signature fields and
// RFC 9421 HTTP Message Signatures. A resource that fails is discarded and
// reported failed, to be fetched over unicast.
//
// The Receiver computes body digests as the bytes arrive in order, so the
// checks of a push that arrived whole cost no pass over its body; signatures
// cover header fields (Content-Digest among them), not the body.
type Verifier struct {
	// RequireDigest fails resources that carry no digest we can check.
	RequireDigest bool
	// RequireSignature fails resources that carry no signature.
	RequireSignature bool
	// Keys resolves signature key IDs to public keys (from the unicast
	// server, over TLS). Without it, signatures are not checked. The
	// Receiver calls it with its locks held: it must answer from what it
	// has (a cache) and never wait for the network.
	Keys integrity.KeyResolver
	// CavageForm is the signed-string form of cavage-12 signatures.
	CavageForm integrity.CavageForm
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
// after it), so call it off the packet path. It leaves the resource's
// state unchanged and may be called again.
func (v *Verifier) Verify(res *Resource, prof Profile) error {
	res.mu.Lock()
	if res.request == nil || res.response == nil || res.length < 0 {
		res.mu.Unlock()
		return fmt.Errorf("%w: push %d has no promise, response or length to check", ErrIntegrity, res.PushID)
	}
	c := res.checksLocked()
	res.mu.Unlock()
	if err := c.finishDigests(); err != nil {
		return err
	}
	return v.check(&c, prof)
}

// bodyDigests are the digests of a body's first n bytes, computed as they
// arrive in order.
type bodyDigests struct {
	h *integrity.Hasher // nil: no digest is expected
	n int64
}

// newBodyDigests prepares the digests a push's checks will need: those its
// response header names or, when it names none (the digests may come in
// trailers), those of the session's digest-algorithm set.
func newBodyDigests(header http.Header, status int, prof Profile) bodyDigests {
	algs := digestAlgorithms(header, status)
	if len(algs) == 0 {
		for _, a := range prof.DigestAlgorithms {
			if c, ok := integrity.CanonicalDigestAlgorithm(a); ok && !slices.Contains(algs, c) {
				algs = append(algs, c)
			}
		}
	}
	if len(algs) == 0 {
		return bodyDigests{}
	}
	h, err := integrity.NewHasher(algs...)
	if err != nil {
		return bodyDigests{} // cannot happen: the names are canonical
	}
	return bodyDigests{h: h}
}

// write adds the body bytes p at body offset off if they continue the bytes
// hashed so far; after a gap the digests stop, to be finished by a pass
// over the rest once the body is whole (checks.finishDigests).
func (d *bodyDigests) write(p []byte, off int64) {
	if d.h != nil && off == d.n {
		d.h.Write(p)
		d.n += int64(len(p))
	}
}

// digestAlgorithms returns the registry names of the supported algorithms
// the Digest and (for a whole representation) Content-Digest fields name.
// Fields that do not parse name none; the checks report why.
func digestAlgorithms(fields http.Header, status int) []string {
	var algs []string
	add := func(vals []integrity.DigestValue, err error) {
		if err != nil {
			return
		}
		for _, v := range vals {
			if c, ok := integrity.CanonicalDigestAlgorithm(v.Algorithm); ok && !slices.Contains(algs, c) {
				algs = append(algs, c)
			}
		}
	}
	if d := fields.Get(integrity.FieldDigest); d != "" {
		add(integrity.ParseDigest(d))
	}
	if d := fields.Get(integrity.FieldContentDigest); d != "" && status != http.StatusPartialContent {
		add(integrity.ParseContentDigest(d))
	}
	return algs
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
	sums   *integrity.Hasher // digests of body[0:hashed]; nil if none
	hashed int64
}

func (r *Resource) checksLocked() checks {
	fields := h3frame.MergeTrailer(r.response.Header, r.trailer)
	return checks{
		req: r.request, status: r.response.Status, fields: fields,
		algs: digestAlgorithms(fields, r.response.Status),
		body: r.body, length: r.length,
		sums: r.digests.h, hashed: r.digests.n,
	}
}

// digestsDone reports whether c.sums cover every algorithm the fields name
// over the whole body, so that the checks need no pass over it.
func (c *checks) digestsDone() bool {
	return len(c.algs) == 0 || (c.sums != nil && c.hashed == c.length && covers(c.sums, c.algs))
}

// finishDigests completes c.sums by reading the body back: from where the
// digests computed on arrival stopped, on a copy of them, or from the start
// when they lack an algorithm the fields name.
func (c *checks) finishDigests() error {
	if c.digestsDone() {
		return nil
	}
	var sums *integrity.Hasher
	from := int64(0)
	if c.sums != nil && c.hashed <= c.length && covers(c.sums, c.algs) {
		var err error
		if sums, err = c.sums.Clone(); err != nil {
			return fmt.Errorf("h3m: resume digests: %w", err)
		}
		from = c.hashed
	} else {
		var err error
		if sums, err = integrity.NewHasher(c.algs...); err != nil {
			return fmt.Errorf("h3m: digests: %w", err)
		}
	}
	if c.body == nil {
		return fmt.Errorf("%w: no body to check", ErrIntegrity)
	}
	if _, err := io.Copy(sums, io.NewSectionReader(c.body, from, c.length-from)); err != nil {
		return fmt.Errorf("h3m: reading the body for its digests: %w", err)
	}
	c.sums, c.hashed = sums, c.length
	return nil
}

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
			return fmt.Errorf("%w: digest: %w", ErrIntegrity, err)
		}
		checked = true
	}
	if d := c.fields.Get(integrity.FieldContentDigest); d != "" && c.status != http.StatusPartialContent {
		if err := checkDigest(c.sums, d, prof, (*integrity.Hasher).CheckContentDigest, integrity.VerifyContentDigest); err != nil {
			return fmt.Errorf("%w: content-digest: %w", ErrIntegrity, err)
		}
		checked = true
	}
	if v.RequireDigest && !checked {
		return fmt.Errorf("%w: no digest", ErrIntegrity)
	}
	req, fields := c.req, c.fields
	msg := &integrity.Message{
		Method: req.Method, Scheme: req.Scheme, Authority: req.Authority, Path: req.Path,
		Status: c.status, RequestHeader: req.Header, ResponseHeader: fields,
	}
	signed := false
	if v.Keys != nil {
		if in := fields.Get(integrity.FieldSignatureInput); in != "" {
			if err := integrity.VerifyMessage(msg, in, fields.Get(integrity.FieldSignature), "", v.Keys); err != nil {
				return fmt.Errorf("%w: message signature: %w", ErrIntegrity, err)
			}
			signed = true
		} else if s := fields.Get(integrity.FieldSignature); s != "" {
			sig, err := integrity.ParseCavageSignature(s)
			if err == nil {
				err = integrity.VerifyCavage(msg, sig, v.Keys, prof.SignatureAlgorithms, v.CavageForm)
			}
			if err != nil {
				return fmt.Errorf("%w: signature: %w", ErrIntegrity, err)
			}
			signed = true
		}
		if s := req.Header.Get(integrity.FieldSignature); s != "" {
			reqMsg := *msg
			reqMsg.Status, reqMsg.ResponseHeader = 0, nil
			sig, err := integrity.ParseCavageSignature(s)
			if err == nil {
				err = integrity.VerifyCavage(&reqMsg, sig, v.Keys, prof.SignatureAlgorithms, v.CavageForm)
			}
			if err != nil {
				return fmt.Errorf("%w: promise signature: %w", ErrIntegrity, err)
			}
			signed = true
		}
	}
	if v.RequireSignature && !signed {
		return fmt.Errorf("%w: no verifiable signature", ErrIntegrity)
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
