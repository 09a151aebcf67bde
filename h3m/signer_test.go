package h3m

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/h3frame"
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

// TestSignaturesCarryTheirTime: both signers put a signed time on a
// response, and the Verifier refuses it once older than MaxAge (a replay
// of a superseded version) or past its expires, on its own clock.
func TestSignaturesCarryTheirTime(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := integrity.StaticKeys(map[string]crypto.PublicKey{"k": pub})
	t0 := time.Unix(1_800_000_000, 0)
	date := t0.UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		name   string
		signer Signer
	}{
		{"rfc9421", MessageSigner{&integrity.MessageSigner{Label: "h3m", KeyID: "k", Key: priv,
			Components: integrity.DefaultResponseComponents, Created: func() time.Time { return t0 }}}},
		// A cavage list without "date": the signer adds it.
		{"cavage", CavageSigner{&integrity.CavageSigner{KeyID: "k", Key: priv, Headers: []string{"(request-target)", "content-type"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &h3frame.Request{Method: "GET", Scheme: "https", Authority: "a", Path: "/update.bin"}
			resp := &h3frame.Response{Status: 200, Header: http.Header{"Content-Type": {"text/plain"}, "Date": {date}}}
			m := &integrity.Message{Method: req.Method, Scheme: req.Scheme, Authority: req.Authority, Path: req.Path,
				Status: resp.Status, ResponseHeader: resp.Header}
			fields, err := tc.signer.Sign(m)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range fields {
				resp.Header[k] = v
			}
			c := checks{req: req, status: resp.Status, fields: resp.Header}
			for _, at := range []struct {
				d  time.Duration
				ok bool
			}{{0, true}, {59 * time.Minute, true}, {61 * time.Minute, false}, {48 * time.Hour, false}, {-2 * time.Minute, false}} {
				v := &Verifier{RequireSignature: true, Keys: keys, Now: func() time.Time { return t0.Add(at.d) }}
				err := v.check(&c, Profile{})
				if (err == nil) != at.ok || err != nil && !errors.Is(err, integrity.ErrExpired) {
					t.Errorf("verified %v after signing: %v", at.d, err)
				}
			}
			// MaxAge -1: no age limit (the rfc9421 signature's expires still applies).
			v := &Verifier{RequireSignature: true, Keys: keys, MaxAge: -1, Now: func() time.Time { return t0.Add(30 * time.Minute) }}
			if err := v.check(&c, Profile{}); err != nil {
				t.Errorf("no age limit: %v", err)
			}
		})
	}
}
