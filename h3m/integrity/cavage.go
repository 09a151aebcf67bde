package integrity

import (
	"crypto"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// CavageForm selects how the signing string of a draft-cavage-http-signatures-12
// "Signature" field is built.
//
// The two forms differ in exactly four ways:
//
//	                       CavageNGHQ (what nghq signs)   CavageStrict (cavage-12 §2.3 text)
//	line                   "name:value"                    "name: value"
//	line ends              "\n" after every line,          "\n" between lines,
//	                       the last one included           none after the last
//	(request-target)       method as sent: "GET //a.txt"   method lower-cased: "get //a.txt"
//	repeated field lines   joined with ","                 joined with ", "
//
// and, when formatting the field, CavageNGHQ writes algorithm=rsa-sha256 as a
// token (as nghq does) while CavageStrict quotes it. Parsing accepts both.
// The value rules are common to both forms: see CavageSignature.
type CavageForm int

const (
	// CavageNGHQ is the signing string nghq 0.7.2 builds (and the default).
	CavageNGHQ CavageForm = iota
	// CavageStrict is the signing string as draft-cavage-http-signatures-12
	// §2.3 specifies it.
	CavageStrict
)

// String names the form.
func (f CavageForm) String() string {
	switch f {
	case CavageNGHQ:
		return "cavage-nghq"
	case CavageStrict:
		return "cavage-strict"
	}
	return fmt.Sprintf("CavageForm(%d)", int(f))
}

// Header lists nghq signs (and CavageSigner's defaults): the promise covers
// the request target, scheme and authority; the response covers the request
// target, date, content type and digest.
var (
	NGHQPromiseHeaders  = []string{"(request-target)", ":scheme", ":authority"}
	NGHQResponseHeaders = []string{"(request-target)", "date", "content-type", "digest"}
)

// Cavage algorithm names. CavageSigner picks the name from the key type;
// VerifyCavage also accepts "ec-sha256" (nghq's name for EC keys) and
// "hs2019" (algorithm taken from the key).
const (
	CavageRSASHA256   = "rsa-sha256"   // RSASSA-PKCS1-v1_5 with SHA-256
	CavageECDSASHA256 = "ecdsa-sha256" // ECDSA P-256 with SHA-256, ASN.1 DER signature
	CavageEd25519     = "ed25519"      // pure Ed25519
	CavageHS2019      = "hs2019"       // verify only: derived from the key
	cavageNGHQEC      = "ec-sha256"    // nghq's name for ECDSA with SHA-256
)

func cavageScheme(alg string) (scheme, bool) {
	switch alg {
	case CavageRSASHA256:
		return scheme{kind: kindRSA, hash: crypto.SHA256}, true
	case CavageECDSASHA256, cavageNGHQEC:
		return scheme{kind: kindECDSA, curve: "P-256", hash: crypto.SHA256}, true
	case CavageEd25519:
		return scheme{kind: kindEd25519}, true
	}
	return scheme{}, false
}

// hs2019Schemes are the schemes an hs2019 signature may use with a key of
// the given kind: cavage-12's recommendations (RSASSA-PSS SHA-512, ECDSA
// P-256 SHA-512, Ed25519) followed by the SHA-256 variants deployed
// software sends under that name.
func hs2019Schemes(kind keyKind, curve string) []scheme {
	switch kind {
	case kindRSA:
		return []scheme{{kind: kindRSA, hash: crypto.SHA512, pss: true}, {kind: kindRSA, hash: crypto.SHA256}}
	case kindECDSA:
		if curve == "P-256" {
			return []scheme{{kind: kindECDSA, curve: curve, hash: crypto.SHA512}, {kind: kindECDSA, curve: curve, hash: crypto.SHA256}}
		}
	case kindEd25519:
		return []scheme{{kind: kindEd25519}}
	}
	return nil
}

// CavageSignature is a parsed draft-cavage-http-signatures-12 Signature
// field.
//
// The signing string has one entry per name in Headers (lower-cased):
//   - "(request-target)": :method, a space, :path (method lower-cased in
//     CavageStrict only);
//   - "(created)", "(expires)": the Created / Expires parameters;
//   - ":method", ":scheme", ":authority", ":path": the request's pseudo-header
//     values; ":status": the response status;
//   - any other name: a regular field. When the message is a response
//     (Status != 0) and the response has the field, its lines are used;
//     otherwise the request's lines. So a pushed response's signature over
//     "date content-type digest" reads the response fields, and a promise's
//     signature reads the request fields. Each line is trimmed of leading and
//     trailing whitespace.
//
// A listed name the message lacks fails with ErrMissingComponent.
type CavageSignature struct {
	KeyID     string
	Algorithm string // as sent; empty if absent (then treated as hs2019)
	Headers   []string
	Signature []byte
	// Created and Expires are Unix times; 0 when absent. A decimal expires
	// is truncated to whole seconds.
	Created, Expires int64
}

// CavageSigner signs messages with a draft-cavage-http-signatures-12
// Signature field. The algorithm follows from the key: RSA -> "rsa-sha256"
// (PKCS #1 v1.5, SHA-256), ECDSA P-256 -> "ecdsa-sha256" (ASN.1 DER
// signature), Ed25519 -> "ed25519".
type CavageSigner struct {
	KeyID string
	Key   crypto.Signer
	// Headers lists the covered names. Nil means nghq's choice:
	// NGHQPromiseHeaders for a request, NGHQResponseHeaders for a response.
	Headers []string
	Form    CavageForm
	// Created, if set, gives the created parameter. Expires > 0 adds an
	// expires parameter that far after created (time.Now if Created is nil).
	Created func() time.Time
	Expires time.Duration
}

// Sign returns the Signature field value for m, e.g.
// keyId="sender.pem",algorithm=rsa-sha256,headers="(request-target) :scheme :authority",signature="...".
func (s *CavageSigner) Sign(m *Message) (string, error) {
	if s.Key == nil {
		return "", fmt.Errorf("%w: cavage signer has no key", ErrKeyType)
	}
	if err := checkQuotable("keyId", s.KeyID); err != nil {
		return "", err
	}
	sig := &CavageSignature{KeyID: s.KeyID}
	_, kind, curve, _ := normalizeKey(s.Key.Public())
	switch {
	case kind == kindRSA:
		sig.Algorithm = CavageRSASHA256
	case kind == kindECDSA && curve == "P-256":
		sig.Algorithm = CavageECDSASHA256
	case kind == kindEd25519:
		sig.Algorithm = CavageEd25519
	default:
		return "", fmt.Errorf("%w: no cavage algorithm for %T (curve %q)", ErrKeyType, s.Key.Public(), curve)
	}
	headers := s.Headers
	if headers == nil {
		headers = NGHQPromiseHeaders
		if m.isResponse() {
			headers = NGHQResponseHeaders
		}
	}
	if len(headers) == 0 {
		return "", fmt.Errorf("%w: empty cavage header list", ErrBadComponent)
	}
	for _, h := range headers {
		h = strings.ToLower(h)
		if h == "" || strings.ContainsAny(h, " \"\\") || !validSFString(h) {
			return "", fmt.Errorf("%w: cavage header name %q", ErrBadComponent, h)
		}
		sig.Headers = append(sig.Headers, h)
	}
	if s.Created != nil || s.Expires > 0 || containsString(sig.Headers, "(created)") || containsString(sig.Headers, "(expires)") {
		now := time.Now()
		if s.Created != nil {
			now = s.Created()
		}
		sig.Created = now.Unix()
		if s.Expires > 0 {
			sig.Expires = now.Add(s.Expires).Unix()
		}
	}
	sc, _ := cavageScheme(sig.Algorithm)
	str, err := cavageSigningString(m, sig, s.Form)
	if err != nil {
		return "", err
	}
	if sig.Signature, err = sc.sign(s.Key, str); err != nil {
		return "", err
	}
	return sig.format(s.Form), nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func checkQuotable(name, v string) error {
	if !validSFString(v) {
		return fmt.Errorf("%w: %s %q holds a control or non-ASCII character", ErrBadComponent, name, v)
	}
	return nil
}

func quote(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// format serializes sig as a Signature field value in the parameter order
// cavage-12's examples use.
func (sig *CavageSignature) format(form CavageForm) string {
	b := []byte("keyId=")
	b = quote(b, sig.KeyID)
	if sig.Algorithm != "" {
		b = append(b, ",algorithm="...)
		if form == CavageStrict {
			b = quote(b, sig.Algorithm)
		} else {
			b = append(b, sig.Algorithm...)
		}
	}
	if sig.Created != 0 {
		b = append(b, ",created="...)
		b = strconv.AppendInt(b, sig.Created, 10)
	}
	if sig.Expires != 0 {
		b = append(b, ",expires="...)
		b = strconv.AppendInt(b, sig.Expires, 10)
	}
	b = append(b, ",headers="...)
	b = quote(b, strings.Join(sig.Headers, " "))
	b = append(b, ",signature="...)
	b = quote(b, base64.StdEncoding.EncodeToString(sig.Signature))
	return string(b)
}

// ParseCavageSignature parses a Signature field value: comma-separated
// name=value parameters, each value a quoted string or a token. Parameter
// names are matched case-insensitively; unknown ones are ignored, repeated
// ones are an error. keyId and signature are required; headers defaults to
// "(created)" as cavage-12 says.
func ParseCavageSignature(fieldValue string) (*CavageSignature, error) {
	sig := &CavageSignature{}
	seen := map[string]bool{}
	s := fieldValue
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		i := 0
		for i < len(s) && isTChar(s[i]) {
			i++
		}
		if i == 0 {
			return nil, fmt.Errorf("%w: Signature: expected parameter name at %q", ErrSyntax, truncate(s))
		}
		name := strings.ToLower(s[:i])
		s = strings.TrimLeft(s[i:], " \t")
		if s == "" || s[0] != '=' {
			return nil, fmt.Errorf("%w: Signature: parameter %q has no value", ErrSyntax, name)
		}
		s = strings.TrimLeft(s[1:], " \t")
		var val string
		if s != "" && s[0] == '"' {
			v, rest, err := unquote(s)
			if err != nil {
				return nil, fmt.Errorf("integrity: Signature parameter %q: %w", name, err)
			}
			val, s = v, rest
		} else {
			j := 0
			for j < len(s) && (isTChar(s[j]) || s[j] == '/' || s[j] == '=') {
				j++
			}
			if j == 0 {
				return nil, fmt.Errorf("%w: Signature parameter %q has an empty value", ErrSyntax, name)
			}
			val, s = s[:j], s[j:]
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: Signature parameter %q repeated", ErrSyntax, name)
		}
		seen[name] = true
		if err := sig.setParam(name, val); err != nil {
			return nil, err
		}
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, fmt.Errorf("%w: Signature: expected ',' at %q", ErrSyntax, truncate(s))
		}
		s = s[1:]
	}
	if !seen["keyid"] {
		return nil, fmt.Errorf("%w: Signature has no keyId", ErrSyntax)
	}
	if !seen["signature"] {
		return nil, fmt.Errorf("%w: Signature has no signature parameter", ErrSyntax)
	}
	if !seen["headers"] {
		sig.Headers = []string{"(created)"}
	}
	return sig, nil
}

func (sig *CavageSignature) setParam(name, val string) error {
	switch name {
	case "keyid":
		sig.KeyID = val
	case "algorithm":
		sig.Algorithm = val
	case "headers":
		sig.Headers = strings.Fields(strings.ToLower(val))
		if len(sig.Headers) == 0 {
			return fmt.Errorf("%w: Signature headers parameter is empty", ErrSyntax)
		}
	case "signature":
		b, err := decodeBase64(val)
		if err != nil {
			return fmt.Errorf("integrity: Signature's signature parameter: %w", err)
		}
		if len(b) == 0 {
			return fmt.Errorf("%w: Signature signature parameter is empty", ErrSyntax)
		}
		sig.Signature = b
	case "created":
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: Signature created %q is not a positive integer", ErrSyntax, val)
		}
		sig.Created = n
	case "expires":
		ip, frac, _ := strings.Cut(val, ".")
		n, err := strconv.ParseInt(ip, 10, 64)
		if err != nil || n <= 0 || strings.TrimLeft(frac, "0123456789") != "" {
			return fmt.Errorf("%w: Signature expires %q is not a positive number", ErrSyntax, val)
		}
		sig.Expires = n
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

// unquote reads an RFC 9110 quoted-string at the start of s.
func unquote(s string) (val, rest string, err error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", "", fmt.Errorf("%w: quoted string ends in '\\'", ErrSyntax)
			}
			i++
			// quoted-pair (RFC 9110 §5.6.4): HTAB, SP, VCHAR or obs-text.
			if q := s[i]; q < 0x20 && q != '\t' || q == 0x7f {
				return "", "", fmt.Errorf("%w: escaped control character in quoted string", ErrSyntax)
			}
			b.WriteByte(s[i])
		case c < 0x20 && c != '\t' || c == 0x7f:
			return "", "", fmt.Errorf("%w: control character in quoted string", ErrSyntax)
		default:
			b.WriteByte(c)
		}
	}
	return "", "", fmt.Errorf("%w: unterminated quoted string", ErrSyntax)
}

// cavageSigningString builds the string that sig's signature covers.
func cavageSigningString(m *Message, sig *CavageSignature, form CavageForm) ([]byte, error) {
	var b []byte
	for i, name := range sig.Headers {
		v, err := cavageValue(m, sig, name, form)
		if err != nil {
			return nil, err
		}
		if err := checkValue(name, v); err != nil {
			return nil, err
		}
		switch form {
		case CavageStrict:
			if i > 0 {
				b = append(b, '\n')
			}
			b = append(b, name...)
			b = append(b, ": "...)
			b = append(b, v...)
		default:
			b = append(b, name...)
			b = append(b, ':')
			b = append(b, v...)
			b = append(b, '\n')
		}
	}
	return b, nil
}

func cavageValue(m *Message, sig *CavageSignature, name string, form CavageForm) (string, error) {
	missing := func() (string, error) {
		return "", fmt.Errorf("%w: %q", ErrMissingComponent, name)
	}
	switch name {
	case "(request-target)":
		if m.Method == "" || m.Path == "" {
			return missing()
		}
		method := m.Method
		if form == CavageStrict {
			method = strings.ToLower(method)
		}
		return method + " " + m.Path, nil
	case "(created)", "(expires)":
		v := sig.Created
		if name == "(expires)" {
			v = sig.Expires
		}
		if v == 0 {
			return missing()
		}
		// cavage-12 §2.3: these pseudo-headers are an error with the
		// algorithm-specific names, which bind a fixed hash.
		alg := strings.ToLower(sig.Algorithm)
		if form == CavageStrict && (strings.HasPrefix(alg, "rsa") || strings.HasPrefix(alg, "hmac") || strings.HasPrefix(alg, "ecdsa")) {
			return "", fmt.Errorf("%w: %s with algorithm %q (cavage-12 §2.3)", ErrBadComponent, name, sig.Algorithm)
		}
		return strconv.FormatInt(v, 10), nil
	case ":method":
		if m.Method == "" {
			return missing()
		}
		return m.Method, nil
	case ":scheme":
		if m.Scheme == "" {
			return missing()
		}
		return m.Scheme, nil
	case ":authority":
		if m.Authority == "" {
			return missing()
		}
		return m.Authority, nil
	case ":path":
		if m.Path == "" {
			return missing()
		}
		return m.Path, nil
	case ":status":
		if m.Status == 0 {
			return missing()
		}
		return strconv.Itoa(m.Status), nil
	}
	if strings.HasPrefix(name, ":") || strings.HasPrefix(name, "(") {
		return "", fmt.Errorf("%w: unknown cavage pseudo-header %q", ErrBadComponent, name)
	}
	var lines []string
	if m.isResponse() {
		lines = fieldLines(m.ResponseHeader, name)
	}
	if len(lines) == 0 {
		lines = fieldLines(m.RequestHeader, name)
	}
	if len(lines) == 0 {
		return missing()
	}
	sep := ","
	if form == CavageStrict {
		sep = ", "
	}
	return joinFieldLines(name, lines, sep)
}

// CavageOptions tunes VerifyCavageWith.
type CavageOptions struct {
	// Allowed is the session's signature-algorithm set (nil or empty
	// means any); an absent algorithm parameter counts as "hs2019".
	Allowed []string
	// Form is the signed-string form.
	Form CavageForm
	// Now is the verification time; nil means time.Now.
	Now func() time.Time
	// MaxAge > 0 requires a signed time no older than MaxAge: the created
	// parameter when the signature covers "(created)", otherwise the Date
	// field when it covers "date". A signature that covers neither fails.
	MaxAge time.Duration
}

// VerifyCavageWith verifies sig over m like VerifyCavageAt, under opts.
func VerifyCavageWith(m *Message, sig *CavageSignature, resolve KeyResolver, opts CavageOptions) error {
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	if opts.MaxAge > 0 && sig != nil && m != nil {
		signed, err := cavageSignedTime(m, sig)
		if err != nil {
			return err
		}
		if signed.After(now.Add(maxClockSkew)) {
			return fmt.Errorf("%w: signed at %s, in the future (now %s)", ErrExpired, signed.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.Sub(signed) > opts.MaxAge {
			return fmt.Errorf("%w: signed at %s, older than %v (now %s)", ErrExpired, signed.UTC().Format(time.RFC3339), opts.MaxAge, now.UTC().Format(time.RFC3339))
		}
	}
	return VerifyCavageAt(m, sig, resolve, opts.Allowed, opts.Form, now)
}

// cavageSignedTime returns the time sig says m was signed at, from a
// covered "(created)" or, failing that, a covered Date field.
func cavageSignedTime(m *Message, sig *CavageSignature) (time.Time, error) {
	if sig.Created != 0 && containsString(sig.Headers, "(created)") {
		return time.Unix(sig.Created, 0), nil
	}
	if containsString(sig.Headers, "date") {
		v, err := cavageValue(m, sig, "date", CavageNGHQ)
		if err != nil {
			return time.Time{}, err
		}
		t, err := http.ParseTime(strings.TrimSpace(v))
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: Date %q: %v", ErrSyntax, truncate(v), err)
		}
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: the signature covers neither (created) nor date: its age is unknown", ErrExpired)
}

// VerifyCavage verifies sig over m with the key resolve returns for
// sig.KeyID, building the signing string in the given form. allowed is the
// session's signature-algorithm set (nil or empty means any); an absent
// algorithm parameter counts as "hs2019". See VerifyCavageAt for the checks.
func VerifyCavage(m *Message, sig *CavageSignature, resolve KeyResolver, allowed []string, form CavageForm) error {
	return VerifyCavageAt(m, sig, resolve, allowed, form, time.Now())
}

// VerifyCavageAt is VerifyCavage at the given time. It fails with
// ErrAlgorithmNotAllowed, ErrUnsupportedAlgorithm, ErrExpired (expires
// passed, or created more than a minute in the future), ErrMissingComponent,
// ErrBadComponent, ErrKeyType (the key does not fit the algorithm) or
// ErrBadSignature.
func VerifyCavageAt(m *Message, sig *CavageSignature, resolve KeyResolver, allowed []string, form CavageForm, now time.Time) error {
	if sig == nil || m == nil || resolve == nil {
		return fmt.Errorf("%w: nil message, signature or resolver", ErrBadSignature)
	}
	alg := strings.ToLower(sig.Algorithm)
	if alg == "" {
		alg = CavageHS2019
	}
	if len(allowed) > 0 && !containsFold(allowed, alg) {
		return fmt.Errorf("%w: cavage algorithm %q, session allows %q", ErrAlgorithmNotAllowed, alg, allowed)
	}
	sc, known := cavageScheme(alg)
	if !known && alg != CavageHS2019 {
		return fmt.Errorf("%w: cavage algorithm %q", ErrUnsupportedAlgorithm, sig.Algorithm)
	}
	if sig.Expires != 0 && now.Unix() > sig.Expires {
		return fmt.Errorf("%w: expires %d, now %d", ErrExpired, sig.Expires, now.Unix())
	}
	if sig.Created != 0 && sig.Created > now.Add(maxClockSkew).Unix() {
		return fmt.Errorf("%w: created %d is in the future (now %d)", ErrExpired, sig.Created, now.Unix())
	}
	str, err := cavageSigningString(m, sig, form)
	if err != nil {
		return err
	}
	key, err := resolve(sig.KeyID)
	if err != nil {
		return fmt.Errorf("integrity: resolving cavage keyId %q: %w", sig.KeyID, err)
	}
	if known {
		if err := sc.verify(key, str, sig.Signature); err != nil {
			return fmt.Errorf("cavage signature (keyId %q, %s, %s): %w", sig.KeyID, alg, form, err)
		}
		return nil
	}
	_, kind, curve, _ := normalizeKey(key)
	cands := hs2019Schemes(kind, curve)
	if len(cands) == 0 {
		return fmt.Errorf("%w: hs2019 with %T (curve %q)", ErrKeyType, key, curve)
	}
	for _, c := range cands {
		if c.verify(key, str, sig.Signature) == nil {
			return nil
		}
	}
	return fmt.Errorf("cavage signature (keyId %q, hs2019, %s): %w", sig.KeyID, form, ErrBadSignature)
}

// maxClockSkew is how far in the future a created time may lie.
const maxClockSkew = time.Minute

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
