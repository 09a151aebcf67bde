package integrity

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// RFC 9530 Appendix B / RFC 9421 Appendix B.2: the test request body and
// its published digests.
const (
	rfcRequestBody   = `{"hello": "world"}`
	rfcRequestSHA256 = "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
	rfcRequestSHA512 = "WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew=="
	// RFC 9421 B.2 test-response body and its Content-Digest (used in B.2.4).
	rfcResponseBody   = `{"message": "good dog"}`
	rfcResponseSHA512 = "mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ=="
)

func TestHasherRFC9530(t *testing.T) {
	h, err := NewHasher("SHA-256", "sha-512")
	if err != nil {
		t.Fatal(err)
	}
	h.Write([]byte(rfcRequestBody[:5]))
	h.Write([]byte(rfcRequestBody[5:]))
	wantCD := "sha-256=:" + rfcRequestSHA256 + ":, sha-512=:" + rfcRequestSHA512 + ":"
	if got := h.ContentDigest(); got != wantCD {
		t.Errorf("ContentDigest\n got %s\nwant %s", got, wantCD)
	}
	wantD := "SHA-256=" + rfcRequestSHA256 + ",SHA-512=" + rfcRequestSHA512
	if got := h.Digest(); got != wantD {
		t.Errorf("Digest\n got %s\nwant %s", got, wantD)
	}
	if got := base64.StdEncoding.EncodeToString(h.Sum("sha256")); got != rfcRequestSHA256 {
		t.Errorf("Sum(sha256) = %s", got)
	}
	if h.Sum("md5") != nil {
		t.Error("Sum of an unknown algorithm is not nil")
	}
	if err := h.CheckContentDigest(wantCD, nil); err != nil {
		t.Errorf("CheckContentDigest: %v", err)
	}
	if err := h.CheckDigest("sha-512="+rfcRequestSHA512, []string{"SHA-512"}); err != nil {
		t.Errorf("CheckDigest: %v", err)
	}
	h.Reset()
	h.Write([]byte(rfcResponseBody))
	if err := h.CheckContentDigest("sha-512=:"+rfcResponseSHA512+":", nil); err != nil {
		t.Errorf("RFC 9421 B.2 test-response Content-Digest: %v", err)
	}
	if got := h.Algorithms(); len(got) != 2 || got[0] != "SHA-256" || got[1] != "SHA-512" {
		t.Errorf("Algorithms = %q", got)
	}
}

func TestNewHasherErrors(t *testing.T) {
	_, err := NewHasher("SHA-256", "md5")
	if !errors.Is(err, ErrUnsupportedAlgorithm) || !strings.Contains(err.Error(), `"md5"`) {
		t.Errorf("unknown algorithm: %v", err)
	}
	if _, err := NewHasher(); !errors.Is(err, ErrUnsupportedAlgorithm) {
		t.Errorf("no algorithm: %v", err)
	}
	h, err := NewHasher("sha256", "SHA-256", "sha-256")
	if err != nil || len(h.Algorithms()) != 1 {
		t.Errorf("duplicates: %v %v", h, err)
	}
}

func TestHasherWriteAllocs(t *testing.T) {
	h, _ := NewHasher("SHA-256", "SHA-512")
	buf := make([]byte, 1200)
	if n := testing.AllocsPerRun(100, func() { h.Write(buf) }); n != 0 {
		t.Errorf("Hasher.Write allocates %v times", n)
	}
}

func TestParseDigest(t *testing.T) {
	vals, err := ParseDigest(" sha256=" + rfcRequestSHA256 + " , ,SHA-512=" + strings.TrimRight(rfcRequestSHA512, "=") + ",UNIXsum=30637,MD5=HUXZLQLMuI/KZ5KDcJPcOA==")
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 4 || vals[0].Algorithm != "sha256" || vals[1].Algorithm != "SHA-512" {
		t.Fatalf("got %+v", vals)
	}
	if base64.StdEncoding.EncodeToString(vals[0].Value) != rfcRequestSHA256 || base64.StdEncoding.EncodeToString(vals[1].Value) != rfcRequestSHA512 {
		t.Errorf("values decoded wrongly: %+v", vals)
	}
	if vals[2].Value != nil || len(vals[3].Value) != 16 {
		t.Errorf("unsupported values: %+v", vals[2:])
	}
	for _, bad := range []string{"", " , ", "SHA-256", "SHA-256=!!!!", "SHA-256=" + rfcRequestSHA512, "sha 256=abc", "=abc"} {
		if _, err := ParseDigest(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseDigest(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestParseContentDigest(t *testing.T) {
	vals, err := ParseContentDigest("unixsum=26869, md5=:+thA//8pGVGk2VYuJkFNvA==:, sha-256=:" + rfcRequestSHA256 + ":;p=1")
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 2 || vals[0].Algorithm != "md5" || vals[1].Algorithm != "sha-256" {
		t.Fatalf("got %+v", vals)
	}
	for _, bad := range []string{
		"",
		"sha-256=" + rfcRequestSHA256,              // not a byte sequence
		"sha-256=:" + rfcRequestSHA512 + ":",       // wrong length
		"SHA-256=:" + rfcRequestSHA256 + ":",       // keys are lower-case
		"sha-256=:" + rfcRequestSHA256,             // unterminated
		"sha-256=:" + rfcRequestSHA256 + ":,",      // trailing comma
		"sha-256=(:" + rfcRequestSHA256 + ":)",     // inner list
		"sha-256=:" + rfcRequestSHA256 + ": x=:a:", // missing comma
		"sha-256=:a*b:",
	} {
		if _, err := ParseContentDigest(bad); !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseContentDigest(%q) = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestVerifyDigestErrors(t *testing.T) {
	body := func() *strings.Reader { return strings.NewReader(rfcRequestBody) }
	both := "sha-256=:" + rfcRequestSHA256 + ":, sha-512=:" + rfcRequestSHA512 + ":"
	if err := VerifyContentDigest(both, body(), nil); err != nil {
		t.Fatalf("good body: %v", err)
	}
	if err := VerifyDigest("SHA-256="+rfcRequestSHA256, body(), []string{"sha-256"}); err != nil {
		t.Fatalf("good body, allowed set: %v", err)
	}

	// Tampered body: a *MismatchError naming field and algorithm.
	err := VerifyContentDigest(both, strings.NewReader(`{"hello": "World"}`), nil)
	var me *MismatchError
	if !errors.As(err, &me) || !errors.Is(err, ErrDigestMismatch) || me.Field != "Content-Digest" || me.Algorithm != "SHA-256" {
		t.Errorf("tampered body: %v", err)
	}
	err = VerifyDigest("SHA-512="+rfcRequestSHA512, strings.NewReader(rfcRequestBody+" "), nil)
	if !errors.As(err, &me) || me.Field != "Digest" || me.Algorithm != "SHA-512" || bytes.Equal(me.Got, me.Want) {
		t.Errorf("tampered body (Digest): %v", err)
	}
	// Only unsupported algorithms.
	if err := VerifyDigest("MD5=HUXZLQLMuI/KZ5KDcJPcOA==,UNIXsum=30637", body(), nil); !errors.Is(err, ErrNoSupportedDigest) {
		t.Errorf("unsupported only: %v", err)
	}
	if err := VerifyContentDigest("unixsum=26869", body(), nil); !errors.Is(err, ErrNoSupportedDigest) {
		t.Errorf("unsupported only (Content-Digest): %v", err)
	}
	// Unsupported ones are ignored next to a supported one.
	if err := VerifyDigest("MD5=HUXZLQLMuI/KZ5KDcJPcOA==,SHA-256="+rfcRequestSHA256, body(), nil); err != nil {
		t.Errorf("mixed: %v", err)
	}
	// Outside the session's digest-algorithm set.
	if err := VerifyContentDigest(both, body(), []string{"SHA-256"}); !errors.Is(err, ErrAlgorithmNotAllowed) {
		t.Errorf("not allowed: %v", err)
	}
	if err := VerifyDigest("MD5=HUXZLQLMuI/KZ5KDcJPcOA==,SHA-256="+rfcRequestSHA256, body(), []string{"SHA-256"}); !errors.Is(err, ErrAlgorithmNotAllowed) {
		t.Errorf("unsupported and not allowed: %v", err)
	}
	// A Hasher lacking the field's algorithm cannot check it.
	h, _ := NewHasher("SHA-512")
	h.Write([]byte(rfcRequestBody))
	if err := h.CheckDigest("SHA-256="+rfcRequestSHA256, nil); !errors.Is(err, ErrNoSupportedDigest) {
		t.Errorf("hasher without the algorithm: %v", err)
	}
	// Malformed field.
	if err := VerifyContentDigest("sha-256=:", body(), nil); !errors.Is(err, ErrSyntax) {
		t.Errorf("malformed: %v", err)
	}
}

func BenchmarkHasherSHA256(b *testing.B) {
	buf := make([]byte, 1<<20)
	h, _ := NewHasher("SHA-256")
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.Write(buf)
	}
}

func BenchmarkHasherSHA256SHA512(b *testing.B) {
	buf := make([]byte, 1<<20)
	h, _ := NewHasher("SHA-256", "SHA-512")
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.Write(buf)
	}
}

// TestHasherClone resumes the RFC 9530 example body's digests from a copy
// taken midway.
func TestHasherClone(t *testing.T) {
	h, err := NewHasher(DigestSHA256, DigestSHA512)
	if err != nil {
		t.Fatal(err)
	}
	half := len(rfcRequestBody) / 2
	h.Write([]byte(rfcRequestBody[:half]))
	c, err := h.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(rfcRequestBody[half:]))
	if got := base64.StdEncoding.EncodeToString(c.Sum(DigestSHA256)); got != rfcRequestSHA256 {
		t.Errorf("SHA-256 %s, want %s", got, rfcRequestSHA256)
	}
	if got := base64.StdEncoding.EncodeToString(c.Sum(DigestSHA512)); got != rfcRequestSHA512 {
		t.Errorf("SHA-512 %s, want %s", got, rfcRequestSHA512)
	}
	prefix, _ := NewHasher(DigestSHA256, DigestSHA512)
	prefix.Write([]byte(rfcRequestBody[:half]))
	if h.Digest() != prefix.Digest() {
		t.Error("writing to the copy changed the original")
	}
}
