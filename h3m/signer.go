package h3m

import (
	"net/http"
	"strings"

	"github.com/h3m-project/h3m/h3m/integrity"
)

// CavageSigner signs pushes with a draft-cavage-http-signatures-12
// Signature field in the response (draft §6.2; what nghq sends).
type CavageSigner struct{ *integrity.CavageSigner }

// Sign implements Signer.
func (s CavageSigner) Sign(m *integrity.Message) (http.Header, error) {
	v, err := s.CavageSigner.Sign(m)
	if err != nil {
		return nil, err
	}
	return http.Header{"Signature": {v}}, nil
}

// MessageSigner signs pushes with RFC 9421 HTTP Message Signatures
// (Signature-Input and Signature fields in the response). Field components
// a message does not have (a 204 without content-type, say) are left out of
// its signature rather than failing it; Signature-Input says what is covered.
type MessageSigner struct{ *integrity.MessageSigner }

// Sign implements Signer.
func (s MessageSigner) Sign(m *integrity.Message) (http.Header, error) {
	signer := *s.MessageSigner
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
