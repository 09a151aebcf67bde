package h3frame

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// loadHex reads a testdata hex file: '#' lines are comments.
func loadHex(t testing.TB, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "#") {
			sb.WriteString(strings.TrimSpace(line))
		}
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// TestRFC9204AppendixB1 decodes the field section of RFC 9204 Appendix B.1
// ("Literal Field Line with Name Reference", stream 0).
func TestRFC9204AppendixB1(t *testing.T) {
	block := unhexT(t, "0000 510b 2f69 6e64 6578 2e68 746d 6c")
	fields, err := ParseFieldSection(block, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Field{{":path", "/index.html"}}; !reflect.DeepEqual(fields, want) {
		t.Fatalf("got %q, want %q", fields, want)
	}
}

// TestRFC9204DynamicSectionsRejected: the sections of RFC 9204 B.2 and B.4
// refer to the dynamic table, which h3m sessions never use.
func TestRFC9204DynamicSectionsRejected(t *testing.T) {
	for _, tc := range []struct{ name, hex, msg string }{
		{"B.2", "0381 10 11", "Encoded Required Insert Count 3"},
		{"B.4", "0500 80 c1 81", "Encoded Required Insert Count 5"},
	} {
		_, err := ParseFieldSection(unhexT(t, tc.hex), 0)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "dynamic table") {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.msg)
		}
	}
}

// TestRFC7541HuffmanStrings wraps the Huffman-coded strings of RFC 7541
// Appendix C.4 and C.6 (the same code QPACK uses, RFC 9204 §4.1.2) in QPACK
// field lines and decodes them.
func TestRFC7541HuffmanStrings(t *testing.T) {
	block := unhexT(t, `
		0000
		5f09 82 6402                           -- :status (static 24, name only), H 2: "302" (C.6.1)
		50 8c f1e3c2e5f23a6ba0ab90f4ff         -- :authority (static 0), H 12: "www.example.com" (C.4.1)
		2f01 25a849e95ba97d7f                  -- literal name, H 8: "custom-key" (C.4.3)
		     89 25a849e95bb8e8b4bf             --   H 9: "custom-value" (C.4.3)
		5f15 85 aec3771a4b                     -- cache-control (static 36), H 5: "private" (C.6.1)
		56 96 d07abe941054d444a8200595040b8166e082a62d1bff -- date (static 6) (C.6.1)
		5c 91 9d29ad171863c78f0b97c8e9ae82ae43d3 -- location (static 12) (C.6.1)
		5f1c 83 9bd9ab                         -- content-encoding (static 43), H 3: "gzip" (C.6.3)
	`)
	fields, err := ParseFieldSection(block, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{
		{":status", "302"},
		{":authority", "www.example.com"},
		{"custom-key", "custom-value"},
		{"cache-control", "private"},
		{"date", "Mon, 21 Oct 2013 20:13:21 GMT"},
		{"location", "https://www.example.com"},
		{"content-encoding", "gzip"},
	}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("got  %q\nwant %q", fields, want)
	}
	// Our encoder produces the same Huffman strings: the RFC's C.4.1 bytes
	// appear in the encoding of ":authority www.example.com".
	enc, err := AppendFieldSection(nil, []Field{{":authority", "www.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := unhexT(t, "0000 50 8c f1e3c2e5f23a6ba0ab90f4ff"); !bytes.Equal(enc, want) {
		t.Errorf("encoded %x, want %x", enc, want)
	}
}

// nghqPromise is what nghq's first PUSH_PROMISE (push 0, hello.txt)
// carries, up to the signature's value.
var nghqPromise = []Field{
	{":method", "GET"},
	{":scheme", "https"},
	{":authority", "localhost"},
	{":path", "//hello.txt"},
	{"user-agent", "NGHQ-Example/1.0 (Linux) NGHQ/20180321 NGHQ-Server/1.0"},
}

// TestNGHQFieldSections decodes field sections captured from nghq's sender
// (testdata/nghq, extracted from ref/nghq-capture/capture.pcap) and checks
// them against independent facts: the byte layout annotated in
// ref/nghq-wire.md, the files' SHA-256 in the capture's README (Digest) and
// the RSA signatures under the capture's certificate (cavage-12 Signature).
// A single wrong Huffman symbol would break the signatures.
func TestNGHQFieldSections(t *testing.T) {
	promise := loadHex(t, "testdata/nghq/promise-push0.hex")
	if len(promise) != 432 || !bytes.Equal(promise[:4], []byte{0, 0, 0xd1, 0xd7}) {
		t.Fatalf("promise block: %d bytes starting %x", len(promise), promise[:4])
	}
	pf, err := ParseFieldSection(promise, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pf) != 6 || !reflect.DeepEqual(pf[:5], nghqPromise) || pf[5].Name != "signature" ||
		!strings.HasPrefix(pf[5].Value, `keyId="sender.pem",algorithm=rsa-sha256,headers="(request-target) :scheme :authority",signature="`) {
		t.Fatalf("promise fields: %q", pf)
	}
	req, err := ParseRequest(pf)
	if err != nil {
		t.Fatal(err)
	}
	if req.Method != "GET" || req.Scheme != "https" || req.Authority != "localhost" || req.Path != "//hello.txt" ||
		req.Header.Get("User-Agent") != nghqPromise[4].Value || req.Header.Get("Signature") != pf[5].Value {
		t.Fatalf("request: %+v", req)
	}

	resp := loadHex(t, "testdata/nghq/headers-push0.hex")
	rf, err := ParseFieldSection(resp, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseResponse(rf)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 200 || r.Header.Get("Server") != "NGHQ-Server/1.0 (GNU/Linux)" ||
		r.Header.Get("Content-Type") != "text/plain; charset=UTF-8" || r.Header.Get("Connection") != "" {
		t.Fatalf("response: %+v", r)
	}
	// README: sha256(hello.txt) = 48296fc8...; nghq sends base64 of it.
	checkDigest(t, r.Header.Get("Digest"), "48296fc87b2d54af27492900c91ebba056de38bb50279eaf8f81751b4a06cb10")

	last := loadHex(t, "testdata/nghq/headers-push3-last.hex")
	lf, err := ParseFieldSection(last, 0)
	if err != nil {
		t.Fatal(err)
	}
	lr, err := ParseResponse(lf)
	if err != nil {
		t.Fatal(err)
	}
	if lr.Header.Get("Connection") != "close" || lr.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("last response: %+v", lr)
	}
	checkDigest(t, lr.Header.Get("Digest"), "e346432021b04179518d9614f3560ccd71354a4ee101ddcb893d6959a9d6301c") // x.json

	// The signatures, as ref/nghq-wire.md describes the signed string.
	pub := loadCertKey(t, "testdata/nghq/sender-cert.pem")
	target := req.Method + " " + req.Path
	verifyCavage(t, pub, pf[5].Value, fmt.Sprintf("(request-target):%s\n:scheme:%s\n:authority:%s\n", target, req.Scheme, req.Authority))
	verifyCavage(t, pub, r.Header.Get("Signature"), fmt.Sprintf("(request-target):%s\ndate:%s\ncontent-type:%s\ndigest:%s\n",
		target, r.Header.Get("Date"), r.Header.Get("Content-Type"), r.Header.Get("Digest")))

	// Re-encoding and decoding keeps every field (our encoder makes other
	// choices than ls-qpack, so the bytes differ).
	for _, fields := range [][]Field{pf, rf, lf} {
		enc, err := AppendFieldSection(nil, fields)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseFieldSection(enc, 0)
		if err != nil || !reflect.DeepEqual(again, fields) {
			t.Fatalf("round trip: %v\n%q\n%q", err, again, fields)
		}
	}
}

func checkDigest(t *testing.T, header, sha256Hex string) {
	t.Helper()
	sum, _ := hex.DecodeString(sha256Hex)
	if want := "sha256=" + base64.StdEncoding.EncodeToString(sum); header != want {
		t.Errorf("digest %q, want %q", header, want)
	}
}

func loadCertKey(t *testing.T, path string) *rsa.PublicKey {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(raw)
	if blk == nil {
		t.Fatal("no PEM block")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("certificate key is %T", cert.PublicKey)
	}
	return pub
}

func verifyCavage(t *testing.T, pub *rsa.PublicKey, header, signed string) {
	t.Helper()
	const marker = `signature="`
	i := strings.LastIndex(header, marker)
	if i < 0 || !strings.HasSuffix(header, `"`) {
		t.Fatalf("no signature in %q", header)
	}
	sig, err := base64.StdEncoding.DecodeString(header[i+len(marker) : len(header)-1])
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(signed))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], sig); err != nil {
		t.Errorf("signature over %q: %v", signed, err)
	}
}

func TestFieldSectionEncoding(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []Field
		wire   string
	}{
		// Static exact matches are one byte each (nghq's d1 d7 d9).
		{"indexed", []Field{{":method", "GET"}, {":scheme", "https"}}, "0000 d1 d7"},
		{"status", []Field{{":status", "200"}}, "0000 d9"},
		// An empty section still has its prefix.
		{"empty", nil, "0000"},
	} {
		got, err := AppendFieldSection([]byte{0xee}, tc.fields)
		if err != nil {
			t.Fatal(err)
		}
		if want := append([]byte{0xee}, unhexT(t, tc.wire)...); !bytes.Equal(got, want) {
			t.Errorf("%s: %x, want %x", tc.name, got, want)
		}
		back, err := ParseFieldSection(got[1:], 0)
		if err != nil || len(back) != len(tc.fields) {
			t.Errorf("%s: decoded %q %v", tc.name, back, err)
		}
	}
}

func TestFieldSectionRoundTrip(t *testing.T) {
	long := strings.Repeat("x", 5000)
	fields := []Field{
		{":method", "GET"}, {":scheme", "https"}, {":authority", "media.example.com"}, {":path", "/live/seg-000123.m4s"},
		{"range", "bytes=0-"}, {"x-empty", ""}, {"x-binary", "\x01\x7f\xff\t "}, {"x-long", long},
		{"content-type", "application/json"}, {"content-length", "0"},
	}
	enc, err := AppendFieldSection(nil, fields)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseFieldSection(enc, 0)
	if err != nil || !reflect.DeepEqual(got, fields) {
		t.Fatalf("%v\n%q", err, got)
	}
}

func TestAppendFieldSectionErrors(t *testing.T) {
	for _, tc := range []struct {
		fields []Field
		msg    string
	}{
		{[]Field{{"Content-Type", "x"}}, "upper-case character in field name \"Content-Type\""},
		{[]Field{{":Path", "/"}}, "upper-case"},
		{[]Field{{"a", "b"}, {":path", "/"}}, "pseudo-header \":path\" after regular fields"},
		{[]Field{{"", "b"}}, "empty field name"},
		{[]Field{{":", "b"}}, "empty field name"},
		{[]Field{{"a b", "c"}}, "not allowed in field name"},
		{[]Field{{"a", "x\r\ny: z"}}, "not allowed in the value"},
		{[]Field{{"a", "\x00"}}, "not allowed in the value"},
	} {
		b, err := AppendFieldSection([]byte{1}, tc.fields)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: err %v, want %q", tc.fields, err, tc.msg)
		}
		if !bytes.Equal(b, []byte{1}) {
			t.Errorf("%q: buffer changed on error: %x", tc.fields, b)
		}
	}
}

func TestParseFieldSectionErrors(t *testing.T) {
	for _, tc := range []struct {
		name, hex, msg string
	}{
		{"empty", "", "truncated"},
		{"no base", "00", "missing Base"},
		{"prefix int truncated", "ff", "truncated"},
		{"RIC", "0100", "Encoded Required Insert Count 1"},
		{"RIC multi-byte", "ff 01 00", "Encoded Required Insert Count 256"},
		{"delta base", "0001", "Base is not 0"},
		{"sign", "0080", "Base is not 0 (sign true"},
		{"dynamic indexed", "0000 80", "field line 0"},
		{"post-base", "0000 10", "field line 0"},
		{"dynamic name ref", "0000 40 01 61", "field line 0"},
		{"static index out of range", "0000 ff 3f", "field line 0"},
		{"truncated literal", "0000 51 05 61", "field line 0"},
		{"bad huffman (EOS padding of 0s)", "0000 51 81 00", "field line 0"},
		{"upper-case literal name", "0000 21 41 01 61", "upper-case"},
		{"bad name char", "0000 21 20 01 61", "not allowed in field name"},
		{"CR in value", "0000 51 01 0d", "not allowed in the value"},
		{"pseudo after regular", "0000 5f1d 01 61 d1", "pseudo-header \":method\" after regular"},
		{"second line bad", "0000 d1 80", "field line 1"},
	} {
		_, err := ParseFieldSection(unhexT(t, tc.hex), 0)
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.msg)
		}
	}
}

func TestParseFieldSectionSizeLimit(t *testing.T) {
	fields := []Field{{":path", "/index.html"}, {"a", strings.Repeat("b", 100)}}
	enc, err := AppendFieldSection(nil, fields)
	if err != nil {
		t.Fatal(err)
	}
	size := fields[0].Size() + fields[1].Size() // RFC 9114 §4.2.2
	if size != 5+11+32+1+100+32 {
		t.Fatalf("size %d", size)
	}
	if _, err := ParseFieldSection(enc, size); err != nil {
		t.Errorf("exact limit: %v", err)
	}
	_, err = ParseFieldSection(enc, size-1)
	if !errors.Is(err, ErrFieldSectionTooLarge) || !strings.Contains(err.Error(), "field line 1") {
		t.Errorf("over limit: %v", err)
	}
	big, _ := AppendFieldSection(nil, []Field{{"a", strings.Repeat("b", DefaultMaxFieldSectionSize)}})
	if _, err := ParseFieldSection(big, 0); !errors.Is(err, ErrFieldSectionTooLarge) {
		t.Errorf("default limit: %v", err)
	}
}

// typicalPush is a push's request and response fields as this project's
// sender writes them.
var typicalRequest = []Field{
	{":method", "GET"}, {":scheme", "https"}, {":authority", "media.example.com"}, {":path", "/live/seg-000123.m4s"},
}

var typicalResponse = []Field{
	{":status", "200"}, {"cache-control", "max-age=2"}, {"content-length", "1048576"},
	{"content-type", "video/mp4"}, {"digest", "sha-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="},
	{"last-modified", "Sun, 22 Nov 2026 10:47:00 GMT"},
}

func BenchmarkAppendFieldSection(b *testing.B) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = AppendFieldSection(buf[:0], typicalRequest)
		if err != nil {
			b.Fatal(err)
		}
		buf, err = AppendFieldSection(buf, typicalResponse)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFieldEncoder(b *testing.B) {
	buf := make([]byte, 0, 512)
	var enc FieldEncoder
	b.ReportAllocs()
	for b.Loop() {
		var err error
		buf, err = enc.Append(buf[:0], typicalRequest)
		if err != nil {
			b.Fatal(err)
		}
		buf, err = enc.Append(buf, typicalResponse)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func TestFieldEncoderAllocs(t *testing.T) {
	buf := make([]byte, 0, 512)
	var enc FieldEncoder
	want, _ := AppendFieldSection(nil, typicalResponse)
	n := testing.AllocsPerRun(50, func() {
		var err error
		if buf, err = enc.Append(buf[:0], typicalResponse); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("FieldEncoder.Append allocates %v times", n)
	}
	if !bytes.Equal(buf, want) {
		t.Errorf("FieldEncoder output %x differs from AppendFieldSection %x", buf, want)
	}
	// An error leaves the encoder usable.
	if _, err := enc.Append(nil, []Field{{"a", "b"}, {":path", "/"}}); err == nil {
		t.Fatal("expected error")
	}
	if b, err := enc.Append(nil, typicalResponse); err != nil || !bytes.Equal(b, want) {
		t.Errorf("after error: %x %v", b, err)
	}
}

func BenchmarkParseFieldSection(b *testing.B) {
	req, _ := AppendFieldSection(nil, typicalRequest)
	resp, _ := AppendFieldSection(nil, typicalResponse)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseFieldSection(req, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := ParseFieldSection(resp, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParseFieldSection(f *testing.F) {
	for _, name := range []string{"promise-push0.hex", "headers-push0.hex", "headers-push3-last.hex"} {
		f.Add(loadHex(f, filepath.Join("testdata", "nghq", name)))
	}
	f.Add(unhexT(f, "0000 510b 2f69 6e64 6578 2e68 746d 6c"))
	f.Add(unhexT(f, "0381 10 11"))
	f.Add(unhexT(f, "0000 2f01 25a849e95ba97d7f 89 25a849e95bb8e8b4bf"))
	f.Add([]byte{0, 0})
	f.Fuzz(func(t *testing.T, block []byte) {
		fields, err := ParseFieldSection(block, 4096)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to a section that decodes the same.
		enc, err := AppendFieldSection(nil, fields)
		if err != nil {
			t.Fatalf("decoded fields do not encode: %v (%q)", err, fields)
		}
		again, err := ParseFieldSection(enc, 4096)
		if err != nil || len(again) != len(fields) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range fields {
			if fields[i] != again[i] {
				t.Fatalf("field %d: %q became %q", i, fields[i], again[i])
			}
		}
		if fields != nil {
			_, _ = ParseRequest(fields)
			_, _ = ParseResponse(fields)
			_, _ = ParseTrailers(fields)
		}
	})
}
