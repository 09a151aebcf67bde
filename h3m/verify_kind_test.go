package h3m_test

import (
	"bytes"
	"crypto"
	"errors"
	"testing"

	"github.com/h3m-project/h3m/h3m"
)

// TestVerificationFailuresByKind: a push whose body does not match its
// digest fails as IntegrityDigest, one whose signature does not verify as
// IntegritySignature, each counted under its kind; and a received push
// knows when its promise arrived.
func TestVerificationFailuresByKind(t *testing.T) {
	body := randomBody(50_000)
	wrong := bytesPush("/wrong", body)
	signed := bytesPush("/signed", randomBody(1_000))
	signed.Header.Set("Signature", `keyId="k",algorithm="ed25519",headers="(request-target)",signature="AAAA"`)
	c := capture(t, h3m.Profile{}, h3m.PusherConfig{Digests: []string{"SHA-256"}}, wrong, signed)
	flipped := 0
	for _, p := range c.pkts { // NULL suite: the body is in the clear
		if i := bytes.Index(p, body[20_000:20_032]); i >= 0 {
			p[i] ^= 1
			flipped++
		}
	}
	if flipped != 1 {
		t.Fatalf("found the bytes in %d packets", flipped)
	}
	keys := func(string) (crypto.PublicKey, error) { return nil, errors.New("no such key") }
	r := c.receiver(t, h3m.ReceiverConfig{Storage: newReadCounting(), Verifier: &h3m.Verifier{Keys: keys, MaxAge: -1}}, nil)
	c.feed(r, c.pkts, nil)
	want := map[string]string{"/wrong": h3m.IntegrityDigest, "/signed": h3m.IntegritySignature}
	for _, res := range r.Resources() {
		st, err := res.State()
		if st != h3m.StateFailed || h3m.IntegrityKind(err) != want[res.Path()] || !errors.Is(err, h3m.ErrIntegrity) {
			t.Errorf("%s: %v %v (kind %q), want failed as %q", res.Path(), st, err, h3m.IntegrityKind(err), want[res.Path()])
		}
		if res.Promised().IsZero() {
			t.Errorf("%s: no promise time", res.Path())
		}
	}
	if st := r.Stats(); st.DigestFailed != 1 || st.SignatureFailed != 1 || st.Failed != 2 {
		t.Errorf("stats: %d digest, %d signature failures of %d failed; want 1, 1 of 2", st.DigestFailed, st.SignatureFailed, st.Failed)
	}
	if h3m.IntegrityKind(errors.New("other")) != "" || h3m.IntegrityKind(nil) != "" {
		t.Error("IntegrityKind names a kind for an error that is no integrity failure")
	}
}
