package h3m

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
)

// ErrIntegrity is wrapped by every verification failure.
var ErrIntegrity = errors.New("h3m: integrity check failed")

// Verifier checks the integrity of completed resources: Digest (RFC 3230)
// and Content-Digest (RFC 9530) fields, cavage-12 Signature fields and
// RFC 9421 HTTP Message Signatures. A resource that fails is discarded and
// reported failed, to be fetched over unicast.
type Verifier struct {
	// RequireDigest fails resources that carry no digest we can check.
	RequireDigest bool
	// RequireSignature fails resources that carry no signature.
	RequireSignature bool
	// Keys resolves signature key IDs to public keys (from the unicast
	// server, over TLS). Without it, signatures are not checked.
	Keys integrity.KeyResolver
	// CavageForm is the signed-string form of cavage-12 signatures.
	CavageForm integrity.CavageForm
}

// verify runs the checks on res. A nil Verifier checks digests when present.
func (v *Verifier) verify(res *Resource, prof Profile) error {
	if v == nil {
		v = &Verifier{}
	}
	res.mu.Lock()
	req, resp, trailer, body, length := res.request, res.response, res.trailer, res.body, res.length
	res.mu.Unlock()
	fields := h3frame.MergeTrailer(resp.Header, trailer)
	content := func() io.Reader { return io.NewSectionReader(body, 0, length) }
	checked := false
	if d := fields.Get("Digest"); d != "" {
		if err := integrity.VerifyDigest(d, content(), prof.DigestAlgorithms); err != nil {
			return fmt.Errorf("%w: digest: %w", ErrIntegrity, err)
		}
		checked = true
	}
	if d := fields.Get("Content-Digest"); d != "" && resp.Status != http.StatusPartialContent {
		if err := integrity.VerifyContentDigest(d, content(), prof.DigestAlgorithms); err != nil {
			return fmt.Errorf("%w: content-digest: %w", ErrIntegrity, err)
		}
		checked = true
	}
	if v.RequireDigest && !checked {
		return fmt.Errorf("%w: no digest", ErrIntegrity)
	}
	msg := &integrity.Message{
		Method: req.Method, Scheme: req.Scheme, Authority: req.Authority, Path: req.Path,
		Status: resp.Status, RequestHeader: req.Header, ResponseHeader: fields,
	}
	signed := false
	if v.Keys != nil {
		if in := fields.Get("Signature-Input"); in != "" {
			if err := integrity.VerifyMessage(msg, in, fields.Get("Signature"), "", v.Keys); err != nil {
				return fmt.Errorf("%w: message signature: %w", ErrIntegrity, err)
			}
			signed = true
		} else if s := fields.Get("Signature"); s != "" {
			sig, err := integrity.ParseCavageSignature(s)
			if err == nil {
				err = integrity.VerifyCavage(msg, sig, v.Keys, prof.SignatureAlgorithms, v.CavageForm)
			}
			if err != nil {
				return fmt.Errorf("%w: signature: %w", ErrIntegrity, err)
			}
			signed = true
		}
		if s := req.Header.Get("Signature"); s != "" {
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
