package integrity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nghqMessage builds the Message of a captured exchange: the request from
// the PUSH_PROMISE, and the response from HEADERS when withResponse.
func nghqMessage(t testing.TB, e nghqExchange, withResponse bool) *Message {
	t.Helper()
	m := &Message{RequestHeader: http.Header{}, ResponseHeader: http.Header{}}
	for _, f := range e.Request {
		switch f.Name {
		case ":method":
			m.Method = f.Value
		case ":scheme":
			m.Scheme = f.Value
		case ":authority":
			m.Authority = f.Value
		case ":path":
			m.Path = f.Value
		default:
			m.RequestHeader.Add(f.Name, f.Value)
		}
	}
	if withResponse {
		for _, f := range e.Response {
			if f.Name == ":status" {
				n, err := strconv.Atoi(f.Value)
				if err != nil {
					t.Fatal(err)
				}
				m.Status = n
				continue
			}
			m.ResponseHeader.Add(f.Name, f.Value)
		}
	}
	return m
}

func nghqResolver(t testing.TB) KeyResolver {
	t.Helper()
	raw, err := os.ReadFile("../../internal/pcapfile/testdata/nghq/sender-cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ParsePublicKeyPEM(raw)
	if err != nil {
		t.Fatal(err)
	}
	return StaticKeys(map[string]crypto.PublicKey{"sender.pem": pub})
}

// Every signature nghq put in the capture (4 promises, 4 responses)
// verifies in the nghq form, and fails once a covered value changes.
func TestNGHQCaptureSignatures(t *testing.T) {
	resolve := nghqResolver(t)
	exchanges := loadNGHQVectors(t)
	verified := 0
	for _, e := range exchanges {
		for _, withResp := range []bool{false, true} {
			fields := e.Request
			if withResp {
				fields = e.Response
			}
			sigField := fieldValue(fields, "signature")
			sig, err := ParseCavageSignature(sigField)
			if err != nil {
				t.Fatalf("push %d: %v", e.PushID, err)
			}
			if sig.KeyID != "sender.pem" || sig.Algorithm != "rsa-sha256" || len(sig.Signature) != 256 {
				t.Errorf("push %d: parsed %+v", e.PushID, sig)
			}
			wantHeaders := NGHQPromiseHeaders
			if withResp {
				wantHeaders = NGHQResponseHeaders
			}
			if strings.Join(sig.Headers, " ") != strings.Join(wantHeaders, " ") {
				t.Errorf("push %d: headers %q", e.PushID, sig.Headers)
			}
			m := nghqMessage(t, e, withResp)
			if err := VerifyCavage(m, sig, resolve, []string{"rsa-sha256"}, CavageNGHQ); err != nil {
				t.Errorf("push %d (response %v): %v", e.PushID, withResp, err)
				continue
			}
			verified++

			// The cavage-12 text form builds a different string: it must not verify.
			if err := VerifyCavage(m, sig, resolve, nil, CavageStrict); !errors.Is(err, ErrBadSignature) {
				t.Errorf("push %d: strict form: %v", e.PushID, err)
			}
			// Flip one byte of every covered value in turn.
			for _, name := range sig.Headers {
				tm := nghqMessage(t, e, withResp)
				switch name {
				case "(request-target)":
					tm.Path = flipLast(tm.Path)
				case ":scheme":
					tm.Scheme = flipLast(tm.Scheme)
				case ":authority":
					tm.Authority = flipLast(tm.Authority)
				default:
					tm.ResponseHeader.Set(name, flipLast(tm.ResponseHeader.Get(name)))
				}
				if err := VerifyCavage(tm, sig, resolve, nil, CavageNGHQ); !errors.Is(err, ErrBadSignature) {
					t.Errorf("push %d: flipped %s: %v", e.PushID, name, err)
				}
			}
			// Flip one signature byte.
			bad := *sig
			bad.Signature = append([]byte(nil), sig.Signature...)
			bad.Signature[17] ^= 0x01
			if err := VerifyCavage(m, &bad, resolve, nil, CavageNGHQ); !errors.Is(err, ErrBadSignature) {
				t.Errorf("push %d: flipped signature: %v", e.PushID, err)
			}
			// The method is not lower-cased in nghq's form.
			lm := nghqMessage(t, e, withResp)
			lm.Method = "get"
			if err := VerifyCavage(lm, sig, resolve, nil, CavageNGHQ); !errors.Is(err, ErrBadSignature) {
				t.Errorf("push %d: lower-case method: %v", e.PushID, err)
			}
			// Outside the session's signature-algorithm set.
			if err := VerifyCavage(m, sig, resolve, []string{"ed25519"}, CavageNGHQ); !errors.Is(err, ErrAlgorithmNotAllowed) {
				t.Errorf("push %d: not allowed: %v", e.PushID, err)
			}
			// Missing covered field.
			if withResp {
				mm := nghqMessage(t, e, withResp)
				mm.ResponseHeader.Del("digest")
				if err := VerifyCavage(mm, sig, resolve, nil, CavageNGHQ); !errors.Is(err, ErrMissingComponent) {
					t.Errorf("push %d: missing digest: %v", e.PushID, err)
				}
			}
			// Wrong key: another RSA key, then a key of another type.
			other := testRSAKey(t)
			if err := VerifyCavage(m, sig, StaticKeys(map[string]crypto.PublicKey{"sender.pem": &other.PublicKey}), nil, CavageNGHQ); !errors.Is(err, ErrBadSignature) {
				t.Errorf("push %d: wrong key: %v", e.PushID, err)
			}
			edPub, _, _ := ed25519.GenerateKey(rand.Reader)
			if err := VerifyCavage(m, sig, StaticKeys(map[string]crypto.PublicKey{"sender.pem": edPub}), nil, CavageNGHQ); !errors.Is(err, ErrKeyType) {
				t.Errorf("push %d: wrong key type: %v", e.PushID, err)
			}
		}
	}
	if verified != 8 {
		t.Errorf("%d signatures verified, want 8", verified)
	}

	// CavageSigner's defaults write the field exactly as nghq does, up to
	// the signature bytes (nghq's private key is not available; PKCS #1 v1.5
	// is deterministic, so the same key would give the same bytes).
	signer := &CavageSigner{KeyID: "sender.pem", Key: testRSAKey(t)}
	for _, withResp := range []bool{false, true} {
		e := exchanges[0]
		fields := e.Request
		if withResp {
			fields = e.Response
		}
		got, err := signer.Sign(nghqMessage(t, e, withResp))
		if err != nil {
			t.Fatal(err)
		}
		want := fieldValue(fields, "signature")
		cut := func(s string) string { return s[:strings.Index(s, `signature="`)] }
		if cut(got) != cut(want) || len(got) != len(want) {
			t.Errorf("field shape differs from nghq's:\n got %s\nwant %s", got, want)
		}
	}
}

func flipLast(s string) string {
	if s == "" {
		return "x"
	}
	b := []byte(s)
	b[len(b)-1] ^= 0x01
	return string(b)
}

// nghq's Digest fields ("sha256=<base64>") verify against the files the
// capture carried, and fail against a tampered body.
func TestNGHQCaptureDigests(t *testing.T) {
	for _, e := range loadNGHQVectors(t) {
		d := fieldValue(e.Response, "digest")
		if !strings.HasPrefix(d, "sha256=") {
			t.Fatalf("push %d: digest %q", e.PushID, d)
		}
		body, err := os.ReadFile(path.Join(nghqFilesDir, path.Base(fieldValue(e.Request, ":path"))))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyDigest(d, bytes.NewReader(body), []string{"SHA-256"}); err != nil {
			t.Errorf("push %d: %v", e.PushID, err)
		}
		h, _ := NewHasher("SHA-256")
		h.Write(body)
		if err := h.CheckDigest(d, nil); err != nil {
			t.Errorf("push %d: Hasher: %v", e.PushID, err)
		}
		if got := h.Digest(); got != "SHA-256="+strings.TrimPrefix(d, "sha256=") {
			t.Errorf("push %d: Hasher.Digest %q vs nghq %q", e.PushID, got, d)
		}
		body[len(body)/2] ^= 0x80
		var me *MismatchError
		if err := VerifyDigest(d, bytes.NewReader(body), nil); !errors.As(err, &me) {
			t.Errorf("push %d: tampered body: %v", e.PushID, err)
		}
		if err := VerifyDigest(d, bytes.NewReader(body), []string{"SHA-512"}); !errors.Is(err, ErrAlgorithmNotAllowed) {
			t.Errorf("push %d: digest algorithm outside the set: %v", e.PushID, err)
		}
	}
}

func TestCavageSignerRoundTrip(t *testing.T) {
	rsaKey := testRSAKey(t)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, c := range []struct {
		key  crypto.Signer
		alg  string
		form CavageForm
	}{
		{rsaKey, "rsa-sha256", CavageNGHQ},
		{rsaKey, "rsa-sha256", CavageStrict},
		{ecKey, "ecdsa-sha256", CavageNGHQ},
		{edKey, "ed25519", CavageStrict},
	} {
		t.Run(c.alg+"/"+c.form.String(), func(t *testing.T) {
			resolve := StaticKeys(map[string]crypto.PublicKey{"https://example.org/k.pem": c.key.Public()})
			for _, resp := range []bool{false, true} {
				m := pushMessage()
				if !resp {
					m.Status = 0
				}
				s := &CavageSigner{KeyID: "https://example.org/k.pem", Key: c.key, Form: c.form}
				field, err := s.Sign(m)
				if err != nil {
					t.Fatal(err)
				}
				wantAlg := "algorithm=" + c.alg
				if c.form == CavageStrict {
					wantAlg = `algorithm="` + c.alg + `"`
				}
				if !strings.Contains(field, wantAlg) {
					t.Errorf("field %s lacks %s", field, wantAlg)
				}
				sig, err := ParseCavageSignature(field)
				if err != nil {
					t.Fatal(err)
				}
				if err := VerifyCavage(m, sig, resolve, []string{c.alg}, c.form); err != nil {
					t.Errorf("response %v: %v", resp, err)
				}
				other := CavageNGHQ + CavageStrict - c.form
				if err := VerifyCavage(m, sig, resolve, nil, other); !errors.Is(err, ErrBadSignature) {
					t.Errorf("verified in the other form: %v", err)
				}
			}
		})
	}
}

func TestCavageSigningStringForms(t *testing.T) {
	m := &Message{
		Method: "GET", Scheme: "https", Authority: "localhost", Path: "//hello.txt", Status: 200,
		RequestHeader:  http.Header{"Accept": {"a", "b"}},
		ResponseHeader: http.Header{"Date": {" Sun, 22 Nov 2026 10:47:00 GMT "}, "X-Multi": {"1", "2"}},
	}
	sig := &CavageSignature{Algorithm: "hs2019", Created: 1700000000, Headers: []string{"(request-target)", "(created)", ":scheme", ":authority", ":status", "date", "x-multi", "accept"}}
	nghq, err := cavageSigningString(m, sig, CavageNGHQ)
	if err != nil {
		t.Fatal(err)
	}
	const wantNGHQ = "(request-target):GET //hello.txt\n(created):1700000000\n:scheme:https\n:authority:localhost\n:status:200\ndate:Sun, 22 Nov 2026 10:47:00 GMT\nx-multi:1,2\naccept:a,b\n"
	if string(nghq) != wantNGHQ {
		t.Errorf("nghq form\n got %q\nwant %q", nghq, wantNGHQ)
	}
	strict, err := cavageSigningString(m, sig, CavageStrict)
	if err != nil {
		t.Fatal(err)
	}
	const wantStrict = "(request-target): get //hello.txt\n(created): 1700000000\n:scheme: https\n:authority: localhost\n:status: 200\ndate: Sun, 22 Nov 2026 10:47:00 GMT\nx-multi: 1, 2\naccept: a, b"
	if string(strict) != wantStrict {
		t.Errorf("strict form\n got %q\nwant %q", strict, wantStrict)
	}
	// cavage-12 §2.3: (created) with an algorithm-specific name is an error.
	sig.Algorithm = "rsa-sha256"
	if _, err := cavageSigningString(m, sig, CavageStrict); !errors.Is(err, ErrBadComponent) {
		t.Errorf("(created) with rsa-sha256: %v", err)
	}
	for _, h := range []string{"(expires)", ":path2", "(foo)", "x-absent"} {
		sig.Headers = []string{h}
		if _, err := cavageSigningString(m, sig, CavageNGHQ); !errors.Is(err, ErrMissingComponent) && !errors.Is(err, ErrBadComponent) {
			t.Errorf("%s: %v", h, err)
		}
	}
	req := *m
	req.Status = 0
	sig.Headers = []string{":status"}
	if _, err := cavageSigningString(&req, sig, CavageNGHQ); !errors.Is(err, ErrMissingComponent) {
		t.Errorf(":status on a request: %v", err)
	}
	// A request-only field is found in the request of a response message;
	// a field in both comes from the response.
	both := *m
	both.RequestHeader = http.Header{"Date": {"request date"}, "Accept": {"x"}}
	sig.Headers = []string{"date", "accept"}
	s, err := cavageSigningString(&both, sig, CavageNGHQ)
	if err != nil || string(s) != "date:Sun, 22 Nov 2026 10:47:00 GMT\naccept:x\n" {
		t.Errorf("lookup rule: %q %v", s, err)
	}
}

func TestCavageHS2019AndTime(t *testing.T) {
	rsaKey := testRSAKey(t)
	m := pushMessage()
	now := time.Unix(1700000000, 0)
	s := &CavageSigner{KeyID: "k", Key: rsaKey, Form: CavageStrict, Headers: []string{"(request-target)", "date"},
		Created: func() time.Time { return now }, Expires: 30 * time.Second}
	field, err := s.Sign(m)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ParseCavageSignature(field)
	if err != nil {
		t.Fatal(err)
	}
	if sig.Created != now.Unix() || sig.Expires != now.Unix()+30 {
		t.Fatalf("times: %+v", sig)
	}
	resolve := StaticKeys(map[string]crypto.PublicKey{"k": &rsaKey.PublicKey})
	if err := VerifyCavageAt(m, sig, resolve, nil, CavageStrict, now); err != nil {
		t.Fatal(err)
	}
	if err := VerifyCavageAt(m, sig, resolve, nil, CavageStrict, now.Add(31*time.Second)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired: %v", err)
	}
	if err := VerifyCavageAt(m, sig, resolve, nil, CavageStrict, now.Add(-time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("created in the future: %v", err)
	}
	// hs2019 with the key's algorithm: PKCS#1 v1.5 SHA-256 as deployed, and
	// RSASSA-PSS SHA-512 as cavage-12 recommends.
	hs := *sig
	hs.Algorithm = "hs2019"
	if err := VerifyCavageAt(m, &hs, resolve, []string{"hs2019"}, CavageStrict, now); err != nil {
		t.Errorf("hs2019 (PKCS#1 v1.5): %v", err)
	}
	str, _ := cavageSigningString(m, &hs, CavageStrict)
	pss, err := scheme{kind: kindRSA, hash: crypto.SHA512, pss: true}.sign(rsaKey, str)
	if err != nil {
		t.Fatal(err)
	}
	hs.Signature = pss
	if err := VerifyCavageAt(m, &hs, resolve, nil, CavageStrict, now); err != nil {
		t.Errorf("hs2019 (PSS): %v", err)
	}
	hs.Algorithm = ""
	if err := VerifyCavageAt(m, &hs, resolve, []string{"rsa-sha256"}, CavageStrict, now); !errors.Is(err, ErrAlgorithmNotAllowed) {
		t.Errorf("absent algorithm counts as hs2019: %v", err)
	}
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	if err := VerifyCavageAt(m, &hs, StaticKeys(map[string]crypto.PublicKey{"k": edPub}), nil, CavageStrict, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("hs2019 with another key type: %v", err)
	}
	if err := VerifyCavageAt(m, &hs, StaticKeys(map[string]crypto.PublicKey{"k": "not a key"}), nil, CavageStrict, now); !errors.Is(err, ErrKeyType) {
		t.Errorf("hs2019 with an unknown key type: %v", err)
	}
	hs.Algorithm = "dsa-sha256"
	if err := VerifyCavageAt(m, &hs, resolve, nil, CavageStrict, now); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("dsa-sha256: %v", err)
	}
	hs.Algorithm = "rsa-sha256"
	if err := VerifyCavageAt(m, &hs, StaticKeys(nil), nil, CavageStrict, now); err == nil || !strings.Contains(err.Error(), "unknown key ID") {
		t.Errorf("unknown key ID: %v", err)
	}
}

func TestParseCavageSignature(t *testing.T) {
	sig, err := ParseCavageSignature(` KeyId = "https://example.org/a\"b.pem" , algorithm="hs2019",created=1402170695, expires=1402170995.5,headers="(Request-Target) (created) HOST", signature="AQID" , extension="ignored"`)
	if err != nil {
		t.Fatal(err)
	}
	if sig.KeyID != `https://example.org/a"b.pem` || sig.Algorithm != "hs2019" || sig.Created != 1402170695 || sig.Expires != 1402170995 ||
		strings.Join(sig.Headers, " ") != "(request-target) (created) host" || !bytes.Equal(sig.Signature, []byte{1, 2, 3}) {
		t.Errorf("parsed %+v", sig)
	}
	sig, err = ParseCavageSignature(`keyId="k",signature=AQID`)
	if err != nil || len(sig.Headers) != 1 || sig.Headers[0] != "(created)" {
		t.Errorf("default headers: %+v %v", sig, err)
	}
	for _, bad := range []string{
		``,
		`signature="AQID"`,
		`keyId="k"`,
		`keyId="k",keyId="j",signature="AQID"`,
		`keyId="k",signature="!!"`,
		`keyId="k",signature=""`,
		`keyId="k,signature="AQID"`,
		`keyId="k" signature="AQID"`,
		`keyId="k",signature="AQID",headers=""`,
		`keyId="k",signature="AQID",created=-5`,
		`keyId="k",signature="AQID",expires=1.x`,
		`keyId`,
		`keyId=`,
		`=x`,
		"keyId=\"a\x01\",signature=\"AQID\"",
	} {
		if _, err := ParseCavageSignature(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseCavageSignature(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestPEM(t *testing.T) {
	if _, err := ParsePublicKeyPEM([]byte("nope")); err == nil {
		t.Error("no PEM block accepted")
	}
	if _, err := ParsePrivateKeyPEM([]byte(rfcEd25519Public)); err == nil {
		t.Error("public key accepted as private")
	}
	k, err := ParsePublicKeyPEM([]byte(rfcRSAPSSPublic))
	if err != nil {
		t.Fatal(err)
	}
	if k.(*rsa.PublicKey).N.BitLen() != 2048 {
		t.Error("B.1.2 key is not RSA-2048")
	}
}

func BenchmarkCavageSignRSA(b *testing.B) {
	key := testRSAKey(b)
	s := &CavageSigner{KeyID: "sender.pem", Key: key}
	m := pushMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCavageVerifyRSANGHQ(b *testing.B) {
	e := loadNGHQVectors(b)[0]
	m := nghqMessage(b, e, true)
	sig, err := ParseCavageSignature(fieldValue(e.Response, "signature"))
	if err != nil {
		b.Fatal(err)
	}
	resolve := nghqResolver(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := VerifyCavage(m, sig, resolve, nil, CavageNGHQ); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCavageSignEd25519(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := &CavageSigner{KeyID: "k", Key: key}
	m := pushMessage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(m); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCavageMaxAge: VerifyCavageWith bounds a signature's age by its
// signed "(created)", or else its signed Date field, and refuses one that
// signs no time. An unsigned created parameter does not count.
func TestCavageMaxAge(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	resolve := StaticKeys(map[string]crypto.PublicKey{"k": priv.Public()})
	t0 := time.Unix(1_800_000_000, 0)
	m := pushMessage()
	m.ResponseHeader = m.ResponseHeader.Clone()
	m.ResponseHeader.Set("Date", t0.UTC().Format(http.TimeFormat))
	for _, tc := range []struct {
		name    string
		headers []string
		created bool
		signed  bool // a time is signed
	}{
		{"(created)", []string{"(request-target)", "(created)"}, true, true},
		{"date", []string{"(request-target)", "date"}, false, true},
		{"unsigned created", []string{"(request-target)"}, true, false},
		{"none", []string{"(request-target)"}, false, false},
	} {
		s := &CavageSigner{KeyID: "k", Key: priv, Headers: tc.headers}
		if tc.created {
			s.Created = func() time.Time { return t0 }
		}
		field, err := s.Sign(m)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := ParseCavageSignature(field)
		if err != nil {
			t.Fatal(err)
		}
		at := func(d time.Duration) error {
			return VerifyCavageWith(m, sig, resolve, CavageOptions{Now: func() time.Time { return t0.Add(d) }, MaxAge: time.Hour})
		}
		if err := at(time.Minute); (err == nil) != tc.signed {
			t.Errorf("%s, a minute later: %v", tc.name, err)
		}
		if err := at(2 * time.Hour); !errors.Is(err, ErrExpired) {
			t.Errorf("%s, two hours later: %v", tc.name, err)
		}
		if err := VerifyCavageWith(m, sig, resolve, CavageOptions{Now: func() time.Time { return t0.Add(2 * time.Hour) }}); err != nil {
			t.Errorf("%s without MaxAge: %v", tc.name, err)
		}
	}
}
