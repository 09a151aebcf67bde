package h3m

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"

	"github.com/h3m-project/h3m/h3m/integrity"
)

// TestCavageSignerLeavesOutAbsentFields: the empty push that ends a session
// has no content-type; its signature covers the other fields and verifies.
func TestCavageSignerLeavesOutAbsentFields(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	s := CavageSigner{&integrity.CavageSigner{KeyID: "k", Key: priv, Headers: []string{"(request-target)", "content-type", "digest"}}}
	m := &integrity.Message{Method: "GET", Scheme: "https", Authority: "a", Path: EndPath, Status: 204,
		ResponseHeader: http.Header{"digest": {"SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}}
	h, err := s.Sign(m)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := integrity.ParseCavageSignature(h.Get("Signature"))
	if err != nil {
		t.Fatal(err)
	}
	if len(sig.Headers) != 2 || sig.Headers[0] != "(request-target)" || sig.Headers[1] != "digest" {
		t.Fatalf("covered %v, want (request-target) digest", sig.Headers)
	}
	keys := integrity.StaticKeys(map[string]crypto.PublicKey{"k": pub})
	if err := integrity.VerifyCavage(m, sig, keys, nil, integrity.CavageNGHQ); err != nil {
		t.Fatal(err)
	}
	// The configured list is left as it was.
	if len(s.Headers) != 3 {
		t.Fatalf("signer's headers changed: %v", s.Headers)
	}
}
