package integrity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// RFC 9421 Appendix B.1 test keys.
const (
	// B.1.4 test-key-ed25519.
	rfcEd25519Private = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----`
	rfcEd25519Public = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----`
	// B.1.3 test-key-ecc-p256.
	rfcP256Public = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lf
w0EkjqF7xB4FivAxzic30tMM4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END PUBLIC KEY-----`
	rfcP256Private = `-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIFKbhfNZfpDsW43+0+JjUr9K+bTeuxopu653+hBaXGA7oAoGCCqGSM49
AwEHoUQDQgAEqIVYZVLCrPZHGHjP17CTW0/+D9Lfw0EkjqF7xB4FivAxzic30tMM
4GF+hR6Dxh71Z50VGGdldkkDXZCnTNnoXQ==
-----END EC PRIVATE KEY-----`
	// B.1.2 test-key-rsa-pss (public half).
	rfcRSAPSSPublic = `-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAr4tmm3r20Wd/PbqvP1s2
+QEtvpuRaV8Yq40gjUR8y2Rjxa6dpG2GXHbPfvMs8ct+Lh1GH45x28Rw3Ry53mm+
oAXjyQ86OnDkZ5N8lYbggD4O3w6M6pAvLkhk95AndTrifbIFPNU8PPMO7OyrFAHq
gDsznjPFmTOtCEcN2Z1FpWgchwuYLPL+Wokqltd11nqqzi+bJ9cvSKADYdUAAN5W
Utzdpiy6LbTgSxP7ociU4Tn0g5I6aDZJ7A8Lzo0KSyZYoA485mqcO0GVAdVw9lq4
aOT9v6d+nb4bnNkQVklLQ3fVAvJm+xdDOp9LCNCN48V2pnDOkFV6+U9nV5oyc6XI
2wIDAQAB
-----END PUBLIC KEY-----`
)

// rfcTestRequest is the RFC 9421 Appendix B.2 test-request:
//
//	POST /foo?param=Value&Pet=dog HTTP/1.1
//	Host: example.com
//	Date: Tue, 20 Apr 2021 02:07:55 GMT
//	Content-Type: application/json
//	Content-Digest: sha-512=:WZDPaVn/...:
//	Content-Length: 18
func rfcTestRequest() *Message {
	return &Message{
		Method: "POST", Scheme: "https", Authority: "example.com", Path: "/foo?param=Value&Pet=dog",
		RequestHeader: http.Header{
			"Host":           {"example.com"},
			"Date":           {"Tue, 20 Apr 2021 02:07:55 GMT"},
			"Content-Type":   {"application/json"},
			"Content-Digest": {"sha-512=:" + rfcRequestSHA512 + ":"},
			"Content-Length": {"18"},
		},
	}
}

// rfcTestResponse is the RFC 9421 Appendix B.2 test-response.
func rfcTestResponse() *Message {
	return &Message{
		Status: 200,
		ResponseHeader: http.Header{
			"date":           {"Tue, 20 Apr 2021 02:07:56 GMT"},
			"content-type":   {"application/json"},
			"content-digest": {"sha-512=:" + rfcResponseSHA512 + ":"},
			"content-length": {"23"},
		},
	}
}

func mustPublic(t testing.TB, pemText string) crypto.PublicKey {
	t.Helper()
	k, err := ParsePublicKeyPEM([]byte(pemText))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustPrivate(t testing.TB, pemText string) crypto.Signer {
	t.Helper()
	k, err := ParsePrivateKeyPEM([]byte(pemText))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// RFC 9421 B.2.6: Ed25519 is deterministic, so signing must reproduce the
// published fields byte for byte.
func TestRFC9421B26Ed25519(t *testing.T) {
	const (
		wantInput = `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
		wantSig   = `sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`
		wantBase  = `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`
	)
	priv := mustPrivate(t, rfcEd25519Private)
	pub := mustPublic(t, rfcEd25519Public)
	if !pub.(ed25519.PublicKey).Equal(priv.Public()) {
		t.Fatal("B.1.4 public and private keys do not match")
	}
	s := &MessageSigner{
		Label:      "sig-b26",
		KeyID:      "test-key-ed25519",
		Key:        priv,
		Components: []string{"date", "@method", "@path", "@authority", "content-type", "content-length"},
		Created:    func() time.Time { return time.Unix(1618884473, 0) },
	}
	m := rfcTestRequest()
	in, sig, err := s.Sign(m)
	if err != nil {
		t.Fatal(err)
	}
	if in != wantInput {
		t.Errorf("Signature-Input\n got %s\nwant %s", in, wantInput)
	}
	if sig != wantSig {
		t.Errorf("Signature\n got %s\nwant %s", sig, wantSig)
	}
	base, err := SignatureBase(m, wantInput, "sig-b26")
	if err != nil {
		t.Fatal(err)
	}
	if string(base) != wantBase {
		t.Errorf("signature base\n got %q\nwant %q", base, wantBase)
	}
	resolve := StaticKeys(map[string]crypto.PublicKey{"test-key-ed25519": pub})
	if err := VerifyMessage(m, wantInput, wantSig, "sig-b26", resolve); err != nil {
		t.Errorf("verify RFC fields: %v", err)
	}
	if err := VerifyMessage(m, wantInput, wantSig, "", resolve); err != nil {
		t.Errorf("verify all labels: %v", err)
	}
	// Any covered value changed must fail.
	tampered := rfcTestRequest()
	tampered.Path = "/bar?param=Value&Pet=dog"
	if err := VerifyMessage(tampered, wantInput, wantSig, "sig-b26", resolve); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered @path: %v", err)
	}
	// An uncovered value may change.
	tampered = rfcTestRequest()
	tampered.Path = "/foo?param=Other"
	tampered.RequestHeader.Set("Content-Digest", "sha-256=:"+rfcRequestSHA256+":")
	if err := VerifyMessage(tampered, wantInput, wantSig, "sig-b26", resolve); err != nil {
		t.Errorf("uncovered change: %v", err)
	}
}

// RFC 9421 B.2.4: ECDSA P-256 over the test response (non-deterministic,
// so verify only), with the B.2.4 signature base checked too.
func TestRFC9421B24ECDSA(t *testing.T) {
	const (
		input    = `sig-b24=("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`
		sig      = `sig-b24=:wNmSUAhwb5LxtOtOpNa6W5xj067m5hFrj0XQ4fvpaCLx0NKocgPquLgyahnzDnDAUy5eCdlYUEkLIj+32oiasw==:`
		wantBase = `"@status": 200
"content-type": application/json
"content-digest": sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:
"content-length": 23
"@signature-params": ("@status" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-ecc-p256"`
	)
	m := rfcTestResponse()
	base, err := SignatureBase(m, input, "sig-b24")
	if err != nil {
		t.Fatal(err)
	}
	if string(base) != wantBase {
		t.Errorf("signature base\n got %q\nwant %q", base, wantBase)
	}
	pub := mustPublic(t, rfcP256Public)
	resolve := StaticKeys(map[string]crypto.PublicKey{"test-key-ecc-p256": pub})
	if err := VerifyMessage(m, input, sig, "sig-b24", resolve); err != nil {
		t.Fatalf("verify RFC B.2.4: %v", err)
	}
	m.Status = 201
	if err := VerifyMessage(m, input, sig, "sig-b24", resolve); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered status: %v", err)
	}
	// The B.1.3 private key signs something the public key verifies.
	priv := mustPrivate(t, rfcP256Private)
	s := &MessageSigner{Label: "h3m", KeyID: "test-key-ecc-p256", Key: priv, Components: []string{"@status", "content-digest"}}
	in2, sig2, err := s.Sign(rfcTestResponse())
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyMessage(rfcTestResponse(), in2, sig2, "h3m", resolve); err != nil {
		t.Errorf("round trip with B.1.3 key: %v", err)
	}
}

// RFC 9421 B.2.3: full coverage with rsa-pss-sha512 (verify only). The
// signature has no alg parameter, so the resolver binds the algorithm.
func TestRFC9421B23RSAPSS(t *testing.T) {
	const (
		input = `sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"`
		sig   = `sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+qRpRRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8Eim5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:`
	)
	pub := mustPublic(t, rfcRSAPSSPublic)
	m := rfcTestRequest()
	base, err := SignatureBase(m, input, "sig-b23")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(base), "\n\"@query\": ?param=Value&Pet=dog\n") {
		t.Errorf("base lacks the @query line: %s", base)
	}
	bound := StaticKeys(map[string]crypto.PublicKey{"test-key-rsa-pss": AlgorithmKey{AlgRSAPSSSHA512, pub}})
	if err := VerifyMessage(m, input, sig, "sig-b23", bound); err != nil {
		t.Fatalf("verify RFC B.2.3: %v", err)
	}
	// A bare RSA key does not say which RSA algorithm: refuse to guess.
	bare := StaticKeys(map[string]crypto.PublicKey{"test-key-rsa-pss": pub})
	if err := VerifyMessage(m, input, sig, "sig-b23", bare); !errors.Is(err, ErrKeyType) {
		t.Errorf("bare RSA key: %v", err)
	}
	// Bound to the other RSA algorithm: fails.
	wrong := StaticKeys(map[string]crypto.PublicKey{"test-key-rsa-pss": &AlgorithmKey{AlgRSAV15SHA256, pub}})
	if err := VerifyMessage(m, input, sig, "sig-b23", wrong); !errors.Is(err, ErrBadSignature) {
		t.Errorf("key bound to rsa-v1_5-sha256: %v", err)
	}
	m.RequestHeader.Set("Content-Length", "19")
	if err := VerifyMessage(m, input, sig, "sig-b23", bound); !errors.Is(err, ErrBadSignature) {
		t.Errorf("tampered content-length: %v", err)
	}
}

// pushMessage is a pushed exchange as the pusher would sign it.
func pushMessage() *Message {
	return &Message{
		Method: "GET", Scheme: "https", Authority: "media.example:443", Path: "/live/seg-42.m4s",
		Status: 200,
		RequestHeader: http.Header{
			"user-agent": {"h3m"},
		},
		ResponseHeader: http.Header{
			"Content-Type":   {"video/iso.segment"},
			"Content-Digest": {"sha-256=:" + rfcRequestSHA256 + ":"},
			"Date":           {"Sun, 22 Nov 2026 10:47:00 GMT"},
			"Digest":         {"SHA-256=" + rfcRequestSHA256},
		},
	}
}

func TestMessageSignerRoundTrip(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaPriv := testRSAKey(t)
	cases := []struct {
		name string
		key  crypto.Signer
		pub  crypto.PublicKey
		alg  string
	}{
		{"ed25519", edPriv, edPub, ""},
		{"ecdsa-p256", ecPriv, &ecPriv.PublicKey, ""},
		{"ecdsa-p384", ec384, &ec384.PublicKey, ""},
		{"rsa-pss", rsaPriv, &rsaPriv.PublicKey, ""},
		{"rsa-v1_5", rsaPriv, &rsaPriv.PublicKey, AlgRSAV15SHA256},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &MessageSigner{Label: "h3m", KeyID: "k1", Key: c.key, Components: DefaultResponseComponents, Tag: "h3m-push", Alg: c.alg}
			m := pushMessage()
			in, sig, err := s.Sign(m)
			if err != nil {
				t.Fatal(err)
			}
			resolve := StaticKeys(map[string]crypto.PublicKey{"k1": c.pub})
			opts := VerifyOptions{Required: DefaultResponseComponents, Tag: "h3m-push", MaxAge: time.Minute}
			if err := VerifyMessageWith(m, in, sig, "h3m", resolve, opts); err != nil {
				t.Fatalf("%s\n%s\n%v", in, sig, err)
			}
			// The request part is covered through ;req.
			m.Path = "/live/seg-43.m4s"
			if err := VerifyMessage(m, in, sig, "h3m", resolve); !errors.Is(err, ErrBadSignature) {
				t.Errorf("tampered request path: %v", err)
			}
		})
	}
}

func TestMessageSignatureBasePush(t *testing.T) {
	s := &MessageSigner{Label: "h3m", KeyID: "k", Key: mustPrivate(t, rfcEd25519Private),
		Components: DefaultResponseComponents, Created: func() time.Time { return time.Unix(1700000000, 0) }}
	m := pushMessage()
	in, _, err := s.Sign(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `"@method";req: GET
"@scheme";req: https
"@authority";req: media.example
"@path";req: /live/seg-42.m4s
"@status": 200
"content-type": video/iso.segment
"content-digest": sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:
"@signature-params": ("@method";req "@scheme";req "@authority";req "@path";req "@status" "content-type" "content-digest");created=1700000000;keyid="k"`
	base, err := SignatureBase(m, in, "h3m")
	if err != nil {
		t.Fatal(err)
	}
	if string(base) != want {
		t.Errorf("base\n got %s\nwant %s", base, want)
	}
}

func TestVerifyMessageErrors(t *testing.T) {
	priv := mustPrivate(t, rfcEd25519Private)
	pub := mustPublic(t, rfcEd25519Public)
	resolve := StaticKeys(map[string]crypto.PublicKey{"k": pub})
	now := time.Unix(1700000000, 0)
	sign := func(s MessageSigner, m *Message) (string, string) {
		t.Helper()
		s.Label, s.KeyID, s.Key = "h3m", "k", priv
		if s.Created == nil {
			s.Created = func() time.Time { return now }
		}
		in, sig, err := s.Sign(m)
		if err != nil {
			t.Fatal(err)
		}
		return in, sig
	}
	at := VerifyOptions{Now: func() time.Time { return now }}

	in, sig := sign(MessageSigner{Components: DefaultResponseComponents}, pushMessage())

	// Wrong key.
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := VerifyMessage(pushMessage(), in, sig, "h3m", StaticKeys(map[string]crypto.PublicKey{"k": otherPub})); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong key: %v", err)
	}
	// Wrong key type.
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := VerifyMessage(pushMessage(), in, sig, "h3m", StaticKeys(map[string]crypto.PublicKey{"k": &ecPriv.PublicKey})); !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrKeyType) {
		t.Errorf("ECDSA key for an Ed25519 signature: %v", err)
	}
	inAlg, sigAlg := sign(MessageSigner{Components: DefaultResponseComponents, IncludeAlg: true}, pushMessage())
	if !strings.Contains(inAlg, `alg="ed25519"`) {
		t.Fatalf("IncludeAlg: %s", inAlg)
	}
	if err := VerifyMessage(pushMessage(), inAlg, sigAlg, "h3m", StaticKeys(map[string]crypto.PublicKey{"k": &ecPriv.PublicKey})); !errors.Is(err, ErrKeyType) {
		t.Errorf("alg=ed25519 with ECDSA key: %v", err)
	}
	// Missing covered field.
	m := pushMessage()
	m.ResponseHeader.Del("Content-Digest")
	if err := VerifyMessage(m, in, sig, "h3m", resolve); !errors.Is(err, ErrMissingComponent) {
		t.Errorf("missing covered field: %v", err)
	}
	// Required component not covered.
	inSmall, sigSmall := sign(MessageSigner{Components: []string{"@status"}}, pushMessage())
	if err := VerifyMessageWith(pushMessage(), inSmall, sigSmall, "h3m", resolve, VerifyOptions{Required: []string{"content-digest"}}); !errors.Is(err, ErrMissingComponent) {
		t.Errorf("required not covered: %v", err)
	}
	// Algorithm outside the allowed set.
	if err := VerifyMessageWith(pushMessage(), in, sig, "h3m", resolve, VerifyOptions{Allowed: []string{AlgECDSAP256SHA256}}); !errors.Is(err, ErrAlgorithmNotAllowed) {
		t.Errorf("not allowed: %v", err)
	}
	if err := VerifyMessageWith(pushMessage(), in, sig, "h3m", resolve, VerifyOptions{Allowed: []string{"ED25519"}}); err != nil {
		t.Errorf("allowed: %v", err)
	}
	// Expired.
	inExp, sigExp := sign(MessageSigner{Components: []string{"@status"}, Expires: 10 * time.Second}, pushMessage())
	if err := VerifyMessageWith(pushMessage(), inExp, sigExp, "h3m", resolve, at); err != nil {
		t.Errorf("not yet expired: %v", err)
	}
	late := VerifyOptions{Now: func() time.Time { return now.Add(11 * time.Second) }}
	if err := VerifyMessageWith(pushMessage(), inExp, sigExp, "h3m", resolve, late); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	old := VerifyOptions{Now: func() time.Time { return now.Add(time.Hour) }, MaxAge: time.Minute}
	if err := VerifyMessageWith(pushMessage(), in, sig, "h3m", resolve, old); !errors.Is(err, ErrExpired) {
		t.Errorf("too old: %v", err)
	}
	early := VerifyOptions{Now: func() time.Time { return now.Add(-time.Hour) }}
	if err := VerifyMessageWith(pushMessage(), in, sig, "h3m", resolve, early); !errors.Is(err, ErrExpired) {
		t.Errorf("created in the future: %v", err)
	}
	// Tag mismatch.
	if err := VerifyMessageWith(pushMessage(), in, sig, "h3m", resolve, VerifyOptions{Tag: "other"}); !errors.Is(err, ErrBadComponent) {
		t.Errorf("tag: %v", err)
	}
	// Label absent.
	if err := VerifyMessage(pushMessage(), in, sig, "nope", resolve); !errors.Is(err, ErrNoSignature) {
		t.Errorf("absent label: %v", err)
	}
	if err := VerifyMessage(pushMessage(), in, "other=:AAAA:", "", resolve); !errors.Is(err, ErrNoSignature) {
		t.Errorf("Signature without the label: %v", err)
	}
	// Bad params.
	for _, bad := range []string{
		`h3m=("@status");created="1"`,
		`h3m=("@status");keyid=k`,
		`h3m=("@status");expires=-1`,
		`h3m="@status"`,
		`h3m=(@status)`,
	} {
		if err := VerifyMessage(pushMessage(), bad, sig, "h3m", resolve); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	for _, bad := range []string{
		`h3m=("@status" "@status");keyid="k"`,
		`h3m=("@query-param";name="a");keyid="k"`,
		`h3m=("Content-Type");keyid="k"`,
		`h3m=("content-type";sf);keyid="k"`,
		`h3m=("@method");keyid="k"`,     // request component in a response without req
		`h3m=("@status";req);keyid="k"`, // @status from the request
		`h3m=("@signature-params");keyid="k"`,
	} {
		if err := VerifyMessage(pushMessage(), bad, sig, "h3m", resolve); !errors.Is(err, ErrBadComponent) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	// ;req and @status on a request.
	req := pushMessage()
	req.Status = 0
	for _, bad := range []string{`h3m=("@method";req);keyid="k"`, `h3m=("@status");keyid="k"`} {
		if err := VerifyMessage(req, bad, sig, "h3m", resolve); !errors.Is(err, ErrBadComponent) {
			t.Errorf("request %s: %v", bad, err)
		}
	}
	// A value that would inject a line into the base.
	inj := pushMessage()
	inj.ResponseHeader.Set("Content-Type", "text/plain\n\"@status\": 200")
	if _, _, err := (&MessageSigner{Label: "h3m", Key: priv, Components: []string{"content-type"}}).Sign(inj); !errors.Is(err, ErrBadComponent) {
		t.Errorf("CR/LF in value: %v", err)
	}
	// Signer errors.
	if _, _, err := (&MessageSigner{Label: "H3M", Key: priv}).Sign(pushMessage()); !errors.Is(err, ErrBadComponent) {
		t.Errorf("bad label: %v", err)
	}
	if _, _, err := (&MessageSigner{Label: "h3m", Key: priv, Alg: AlgRSAPSSSHA512}).Sign(pushMessage()); !errors.Is(err, ErrKeyType) {
		t.Errorf("alg/key mismatch: %v", err)
	}
}

func TestComponentValues(t *testing.T) {
	m := &Message{
		Method: "GET", Scheme: "HTTPS", Authority: "WWW.Example.com:443", Path: "/a/b?x=1&y",
		RequestHeader: http.Header{"X-Multi": {" a ", "b\t"}, "x-multi": {"c"}, "X-Empty": {""}},
	}
	want := map[string]string{
		`"@method"`:         "GET",
		`"@scheme"`:         "https",
		`"@authority"`:      "www.example.com",
		`"@target-uri"`:     "https://www.example.com/a/b?x=1&y",
		`"@request-target"`: "/a/b?x=1&y",
		`"@path"`:           "/a/b",
		`"@query"`:          "?x=1&y",
		`"x-multi"`:         "a, b, c",
		`"x-multi";bs`:      ":YQ==:, :Yg==:, :Yw==:",
		`"x-empty"`:         "",
	}
	for id, w := range want {
		c, err := ParseComponent(id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := componentValue(m, c)
		if err != nil || got != w {
			t.Errorf("%s = %q, %v; want %q", id, got, err, w)
		}
	}
	m.Path = "/"
	if c, _ := ParseComponent("@query"); true {
		if got, _ := componentValue(m, c); got != "?" {
			t.Errorf("@query without query = %q", got)
		}
	}
	pm := pushMessage()
	for id, want := range map[string]bool{`"content-type"`: true, `"x-none"`: false, `"user-agent";req`: true, `"user-agent"`: false, `"@path";req`: true, `"@path"`: false, `"@status"`: true} {
		c, _ := ParseComponent(id)
		if pm.HasComponent(c) != want {
			t.Errorf("HasComponent(%s) = %v", id, !want)
		}
	}
	if got := (Component{Name: "@path", Req: true}).String(); got != `"@path";req` {
		t.Errorf("hand-built component: %s", got)
	}
	if c, err := ParseComponent("Content-Type"); err != nil || c.String() != `"content-type"` {
		t.Errorf("bare component: %v %v", c, err)
	}
}

// testRSAKey is a fresh 2048-bit key (generated once per test binary use).
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func benchSign(b *testing.B, key crypto.Signer) {
	s := &MessageSigner{Label: "h3m", KeyID: "k", Key: key, Components: DefaultResponseComponents}
	m := pushMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Sign(m); err != nil {
			b.Fatal(err)
		}
	}
}

func benchVerify(b *testing.B, key crypto.Signer) {
	s := &MessageSigner{Label: "h3m", KeyID: "k", Key: key, Components: DefaultResponseComponents}
	m := pushMessage()
	in, sig, err := s.Sign(m)
	if err != nil {
		b.Fatal(err)
	}
	resolve := StaticKeys(map[string]crypto.PublicKey{"k": key.Public()})
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyMessage(m, in, sig, "h3m", resolve); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMessageSignEd25519(b *testing.B) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	benchSign(b, k)
}

func BenchmarkMessageVerifyEd25519(b *testing.B) {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	benchVerify(b, k)
}

func BenchmarkMessageSignRSAPSS(b *testing.B)   { benchSign(b, testRSAKey(b)) }
func BenchmarkMessageVerifyRSAPSS(b *testing.B) { benchVerify(b, testRSAKey(b)) }
