package integrity

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
)

// Seed corpora are also committed under testdata/fuzz/<FuzzName>/.

func FuzzParseDigest(f *testing.F) {
	for _, s := range []string{
		"sha256=SClvyHstVK8nSSkAyR67oFbeOLtQJ56vj4F1G0oGyxA=",
		"SHA-256=" + rfcRequestSHA256 + ",SHA-512=" + rfcRequestSHA512,
		"MD5=HUXZLQLMuI/KZ5KDcJPcOA==, UNIXsum=30637",
		"SHA-256=DieQ9zfRaDdyAilTVCvmBePuxMm+B6cNocP+QCrNSqo=",
		" , ,sha-512=abc",
		"=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals, err := ParseDigest(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error not ErrSyntax: %v", err)
			}
			return
		}
		if len(vals) == 0 {
			t.Fatal("success with no values")
		}
		for _, v := range vals {
			if a := lookupDigestAlg(v.Algorithm); a != nil && len(v.Value) != a.size {
				t.Fatalf("%s value of %d bytes", v.Algorithm, len(v.Value))
			}
		}
		// Verification never panics either.
		_ = VerifyDigest(s, strings.NewReader(s), []string{"SHA-256"})
	})
}

func FuzzParseContentDigest(f *testing.F) {
	for _, s := range []string{
		"sha-256=:" + rfcRequestSHA256 + ":, sha-512=:" + rfcRequestSHA512 + ":",
		"sha-512=:" + rfcResponseSHA512 + ":",
		"unixsum=26869, md5=:+thA//8pGVGk2VYuJkFNvA==:",
		"a=(1 2.5 \"x\" tok ?0 :AA==:);p=1, b, c=?1;q",
		"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE",
		"x=-999999999999999, y=123456789012.123",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		vals, err := ParseContentDigest(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error not ErrSyntax: %v", err)
			}
			return
		}
		for _, v := range vals {
			if a := lookupContentDigestAlg(v.Algorithm); a != nil && len(v.Value) != a.size {
				t.Fatalf("%s value of %d bytes", v.Algorithm, len(v.Value))
			}
		}
		// Any dictionary that parses re-serializes to a fixed point.
		dict, err := parseSFDictionary(s)
		if err != nil {
			t.Fatalf("ParseContentDigest accepted what the dictionary parser refuses: %v", err)
		}
		ser := serializeDict(dict)
		again, err := parseSFDictionary(ser)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", ser, err)
		}
		if ser2 := serializeDict(again); ser2 != ser {
			t.Fatalf("not a fixed point:\n%q\n%q", ser, ser2)
		}
	})
}

func serializeDict(d []sfMember) string {
	var b []byte
	for i, m := range d {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, m.key...)
		if m.inner != nil {
			b = append(b, '=')
			b = appendSFInnerList(b, m.inner)
			continue
		}
		if v, ok := m.item.val.(bool); ok && v {
			b = appendSFParams(b, m.item.params)
			continue
		}
		b = append(b, '=')
		b = appendSFItem(b, m.item)
	}
	return string(b)
}

func FuzzParseCavageSignature(f *testing.F) {
	for _, e := range []string{
		`keyId="sender.pem",algorithm=rsa-sha256,headers="(request-target) :scheme :authority",signature="dIxaVKo9Ka5ycpTVeLFqdgOBoBeSwqDnsjXsYa9NZr/pSGmn2qJAisMZ1G8S4Ey7pt1yLlgenWP7sB8dgxi+M69g4vjieAMmljoGizYDBBgC3lpi6YNShuhvWFjdIFYe+2+5sBAQWf+xK3FEhjBsDYEQsNxDhoQ/7ijDgUt9kHnWnTH/T36fXSVAzU4ngx+7vh67HmBZ72R68cNNrLKsw0lvLUJ7aPO5n1h/HeP9bBqciXV2AiS6Ljs1PM944N4z9+E54XtY9jU+PLynG9/bbHY0rRViMpJ4ST4DTNzjA5RNKaeXOv2Yt9djRnrrVygQlVeVAwT5WUXikvF+9sbjJw=="`,
		`keyId="rsa-key-1",algorithm="hs2019",created=1402170695,expires=1402170995.5,headers="(request-target) (created) (expires) host date digest content-length",signature="AQID"`,
		`keyId="a\"b",signature=AQID,extra="x"`,
		`keyId="k" , signature="AQID" ,`,
		`keyId=`,
	} {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseCavageSignature(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error not ErrSyntax: %v", err)
			}
			return
		}
		if len(sig.Headers) == 0 || len(sig.Signature) == 0 {
			t.Fatalf("accepted without headers or signature: %+v", sig)
		}
		// Formatting and re-parsing gives the same signature, in both forms.
		for _, form := range []CavageForm{CavageNGHQ, CavageStrict} {
			if form == CavageNGHQ && strings.IndexFunc(sig.Algorithm, func(r rune) bool {
				return r > 0x7f || !isTChar(byte(r)) && r != '/' && r != '='
			}) >= 0 {
				continue // only the strict form quotes the algorithm
			}
			again, err := ParseCavageSignature(sig.format(form))
			if err != nil {
				t.Fatalf("re-parse of %q: %v", sig.format(form), err)
			}
			if again.KeyID != sig.KeyID || again.Algorithm != sig.Algorithm || again.Created != sig.Created ||
				again.Expires != sig.Expires || !slices.Equal(again.Headers, sig.Headers) || !bytes.Equal(again.Signature, sig.Signature) {
				t.Fatalf("round trip changed %+v into %+v", sig, again)
			}
		}
		// Building the signing string never panics.
		_, _ = cavageSigningString(pushMessage(), sig, CavageNGHQ)
	})
}

func FuzzParseSignatureInput(f *testing.F) {
	for _, s := range []string{
		`sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`,
		`sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"`,
		`h3m=("@method";req "@scheme";req "@authority";req "@path";req "@status" "content-type" "content-digest");created=1700000000;keyid="k";alg="ed25519";tag="h3m"`,
		`a=("x";bs), b=("@query");expires=5;x=1.5;y=?0;z=tok;w=:AA==:`,
		`sig=("@query-param";name="Pet")`,
		`sig=("date" "date")`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ins, err := ParseSignatureInput(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrBadComponent) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		// Serializing each input and parsing again gives the same inputs.
		var parts []string
		for i := range ins {
			parts = append(parts, ins[i].Label+"="+string(appendSFInnerList(nil, &ins[i].inner)))
		}
		ser := strings.Join(parts, ", ")
		again, err := ParseSignatureInput(ser)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", ser, err)
		}
		if len(again) != len(ins) {
			t.Fatalf("%d inputs became %d", len(ins), len(again))
		}
		for i := range ins {
			a, b := ins[i], again[i]
			if a.Label != b.Label || a.Created != b.Created || a.Expires != b.Expires || a.KeyID != b.KeyID ||
				a.Alg != b.Alg || a.Nonce != b.Nonce || a.Tag != b.Tag || len(a.Components) != len(b.Components) {
				t.Fatalf("round trip changed %+v into %+v", a, b)
			}
			for j := range a.Components {
				if a.Components[j].String() != b.Components[j].String() {
					t.Fatalf("component %s became %s", a.Components[j], b.Components[j])
				}
			}
			// The signature base of a push message never panics.
			_, _ = signatureBase(pushMessage(), &ins[i])
		}
	})
}
