package h3m

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/h3m-project/h3m/h3m/integrity"
)

// CavageSigner signs pushes with a draft-cavage-http-signatures-12
// Signature field in the response (draft §6.2; what nghq sends). Fields a
// message does not have (the empty push that ends a session has no
// content-type, say) are left out of its signature rather than failing it;
// the signature's headers parameter says what is covered. A response's
// signature always covers a time, so that a verifier can bound its age
// (Verifier.MaxAge): its Date field (which the Pusher sets) is added to the
// covered names when they list neither "date" nor "(created)".
type CavageSigner struct{ *integrity.CavageSigner }

// Sign implements Signer.
func (s CavageSigner) Sign(m *integrity.Message) (http.Header, error) {
	signer := *s.CavageSigner
	headers := signer.Headers
	if headers == nil {
		headers = integrity.NGHQPromiseHeaders
		if m.Status != 0 {
			headers = integrity.NGHQResponseHeaders
		}
	}
	signer.Headers = make([]string, 0, len(headers))
	for _, h := range headers {
		name := strings.ToLower(h)
		if !strings.HasPrefix(name, "(") && !strings.HasPrefix(name, ":") &&
			!hasField(m.ResponseHeader, name) && !hasField(m.RequestHeader, name) {
			continue
		}
		signer.Headers = append(signer.Headers, h)
	}
	if m.Status != 0 && !slices.ContainsFunc(signer.Headers, func(h string) bool {
		h = strings.ToLower(h)
		return h == "date" || h == "(created)"
	}) && hasField(m.ResponseHeader, "date") {
		signer.Headers = append(signer.Headers, "date")
	}
	v, err := signer.Sign(m)
	if err != nil {
		return nil, err
	}
	return http.Header{"Signature": {v}}, nil
}

// MessageSigner signs pushes with RFC 9421 HTTP Message Signatures
// (Signature-Input and Signature fields in the response). Field components
// a message does not have (a 204 without content-type, say) are left out of
// its signature rather than failing it; Signature-Input says what is covered.
// A response's signature carries created and, unless the signer sets its
// own, an expires parameter DefaultSignatureLifetime later, so that a
// verifier can bound its age (Verifier.MaxAge).
type MessageSigner struct{ *integrity.MessageSigner }

// DefaultSignatureLifetime is how long after it was made a response
// signature of MessageSigner expires, unless the signer says otherwise:
// what Verifier accepts by default.
const DefaultSignatureLifetime = DefaultSignatureMaxAge

// Sign implements Signer.
func (s MessageSigner) Sign(m *integrity.Message) (http.Header, error) {
	signer := *s.MessageSigner
	if signer.Created != nil {
		created := signer.Created()
		signer.Created = func() time.Time { return created }
		if created.IsZero() {
			signer.Created = nil // a signature without a time cannot be bound to an age
		}
	}
	if m.Status != 0 && signer.Expires == 0 {
		signer.Expires = DefaultSignatureLifetime
	}
	signer.Components = nil
	for _, c := range s.MessageSigner.Components {
		comp, err := integrity.ParseComponent(c)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(comp.Name, "@") {
			h := m.ResponseHeader
			if comp.Req || m.Status == 0 {
				h = m.RequestHeader
			}
			if len(h.Values(comp.Name)) == 0 {
				continue
			}
		}
		signer.Components = append(signer.Components, c)
	}
	in, sig, err := signer.Sign(m)
	if err != nil {
		return nil, err
	}
	return http.Header{"Signature-Input": {in}, "Signature": {sig}}, nil
}

// hasField reports whether h has the field name, under its canonical or
// its lower-case key.
func hasField(h http.Header, name string) bool {
	return len(h.Values(name)) > 0 || len(h[name]) > 0
}
