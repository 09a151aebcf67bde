package integrity

import (
	"crypto"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RFC 9421 signature algorithm names (HTTP Signature Algorithms registry).
const (
	AlgEd25519         = "ed25519"
	AlgECDSAP256SHA256 = "ecdsa-p256-sha256"
	AlgECDSAP384SHA384 = "ecdsa-p384-sha384"
	AlgRSAPSSSHA512    = "rsa-pss-sha512"
	AlgRSAV15SHA256    = "rsa-v1_5-sha256"
)

func httpsigScheme(alg string) (scheme, bool) {
	switch alg {
	case AlgEd25519:
		return scheme{kind: kindEd25519}, true
	case AlgECDSAP256SHA256:
		return scheme{kind: kindECDSA, curve: "P-256", hash: crypto.SHA256, raw: true}, true
	case AlgECDSAP384SHA384:
		return scheme{kind: kindECDSA, curve: "P-384", hash: crypto.SHA384, raw: true}, true
	case AlgRSAPSSSHA512:
		return scheme{kind: kindRSA, hash: crypto.SHA512, pss: true}, true
	case AlgRSAV15SHA256:
		return scheme{kind: kindRSA, hash: crypto.SHA256}, true
	}
	return scheme{}, false
}

// keyAlgorithm is the RFC 9421 algorithm a key implies on its own; "" for
// RSA (two algorithms are possible) and unknown keys.
func keyAlgorithm(kind keyKind, curve string) string {
	switch {
	case kind == kindEd25519:
		return AlgEd25519
	case kind == kindECDSA && curve == "P-256":
		return AlgECDSAP256SHA256
	case kind == kindECDSA && curve == "P-384":
		return AlgECDSAP384SHA384
	}
	return ""
}

// Component identifiers are written as RFC 8941 sf-strings with parameters,
// exactly as they appear in Signature-Input: `"@status"`, `"content-type"`,
// `"@method";req`. MessageSigner.Components and VerifyOptions.Required also
// accept a bare name without quotes or parameters ("content-type",
// "@status"); a bare field name is lower-cased.
var (
	// DefaultRequestComponents covers a promised request: what a
	// PUSH_PROMISE signature should cover.
	DefaultRequestComponents = []string{`"@method"`, `"@scheme"`, `"@authority"`, `"@path"`}
	// DefaultResponseComponents covers a pushed response together with its
	// promised request (RFC 9421 §2.4 ";req"), and the body through
	// Content-Digest.
	DefaultResponseComponents = []string{`"@method";req`, `"@scheme";req`, `"@authority";req`, `"@path";req`, `"@status"`, `"content-type"`, `"content-digest"`}
)

// Component is one covered component identifier.
type Component struct {
	// Name is a derived component ("@method", ...) or a lower-case field name.
	Name string
	// Req takes the component from the request when the message is a
	// response (RFC 9421 §2.4).
	Req bool
	// BS wraps each field line as a byte sequence (RFC 9421 §2.1.3).
	BS bool

	item sfItem // as parsed, for byte-exact re-serialization
}

// String returns the component identifier as Signature-Input writes it.
func (c Component) String() string {
	it := c.item
	if it.val == nil { // built by hand rather than parsed
		it = sfItem{val: c.Name}
		if c.Req {
			it.params = append(it.params, sfParam{"req", true})
		}
		if c.BS {
			it.params = append(it.params, sfParam{"bs", true})
		}
	}
	return string(appendSFItem(nil, &it))
}

var derivedComponents = map[string]bool{
	"@method": true, "@target-uri": true, "@authority": true, "@scheme": true,
	"@request-target": true, "@path": true, "@query": true, "@status": true,
}

// ParseComponent parses one component identifier: an sf-string with
// parameters (`"@method";req`) or a bare name ("content-type").
// Supported parameters are req and bs; sf, key, name and tr, and the
// derived components @query-param and @signature-params, are refused.
func ParseComponent(s string) (Component, error) {
	if strings.HasPrefix(strings.TrimSpace(s), `"`) {
		it, err := parseSFItem(s)
		if err != nil {
			return Component{}, fmt.Errorf("component %q: %w", s, err)
		}
		return componentFromItem(*it)
	}
	name := strings.TrimSpace(s)
	if !strings.HasPrefix(name, "@") {
		name = strings.ToLower(name)
	}
	return componentFromItem(sfItem{val: name})
}

func componentFromItem(it sfItem) (Component, error) {
	name, ok := it.val.(string)
	if !ok {
		return Component{}, fmt.Errorf("%w: component identifier is not a string", ErrSyntax)
	}
	c := Component{Name: name, item: it}
	for _, p := range it.params {
		if v, ok := p.val.(bool); !ok || !v {
			return Component{}, fmt.Errorf("%w: component %q parameter %q must be a true flag", ErrBadComponent, name, p.key)
		}
		switch p.key {
		case "req":
			c.Req = true
		case "bs":
			c.BS = true
		default:
			return Component{}, fmt.Errorf("%w: component %q parameter %q is not supported", ErrBadComponent, name, p.key)
		}
	}
	switch {
	case name == "":
		return Component{}, fmt.Errorf("%w: empty component name", ErrBadComponent)
	case strings.HasPrefix(name, "@"):
		if !derivedComponents[name] {
			return Component{}, fmt.Errorf("%w: derived component %q is not supported", ErrBadComponent, name)
		}
		if c.BS {
			return Component{}, fmt.Errorf("%w: bs on derived component %q", ErrBadComponent, name)
		}
	default:
		for i := 0; i < len(name); i++ {
			if !isTChar(name[i]) || (name[i] >= 'A' && name[i] <= 'Z') {
				return Component{}, fmt.Errorf("%w: field component %q is not a lower-case field name", ErrBadComponent, name)
			}
		}
	}
	return c, nil
}

// SignatureInput is one member of a Signature-Input field.
type SignatureInput struct {
	Label      string
	Components []Component
	// Created and Expires are Unix times; HasCreated/HasExpires tell
	// whether the parameters are present.
	Created, Expires       int64
	HasCreated, HasExpires bool
	KeyID, Alg, Nonce, Tag string

	inner sfInnerList // as parsed, for the @signature-params line
}

// ParseSignatureInput parses a Signature-Input field value (an RFC 8941
// dictionary of inner lists). Parameters of the wrong type, unsupported
// components and repeated components are errors; unknown parameters are
// kept (they are signed) but otherwise ignored.
func ParseSignatureInput(fieldValue string) ([]SignatureInput, error) {
	dict, err := parseSFDictionary(fieldValue)
	if err != nil {
		return nil, fmt.Errorf("Signature-Input: %w", err)
	}
	out := make([]SignatureInput, 0, len(dict))
	for _, m := range dict {
		if m.inner == nil {
			return nil, fmt.Errorf("%w: Signature-Input %q is not an inner list", ErrSyntax, m.key)
		}
		in, err := signatureInputFromList(m.key, *m.inner)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

func signatureInputFromList(label string, il sfInnerList) (SignatureInput, error) {
	in := SignatureInput{Label: label, inner: il}
	seen := map[string]bool{}
	for _, it := range il.items {
		c, err := componentFromItem(it)
		if err != nil {
			return SignatureInput{}, fmt.Errorf("Signature-Input %q: %w", label, err)
		}
		id := c.String()
		if seen[id] {
			return SignatureInput{}, fmt.Errorf("%w: Signature-Input %q covers %s twice", ErrBadComponent, label, id)
		}
		seen[id] = true
		in.Components = append(in.Components, c)
	}
	for _, p := range il.params {
		bad := func(want string) error {
			return fmt.Errorf("%w: Signature-Input %q parameter %q must be %s", ErrSyntax, label, p.key, want)
		}
		switch p.key {
		case "created", "expires":
			n, ok := p.val.(int64)
			if !ok || n < 0 {
				return SignatureInput{}, bad("a non-negative integer")
			}
			if p.key == "created" {
				in.Created, in.HasCreated = n, true
			} else {
				in.Expires, in.HasExpires = n, true
			}
		case "keyid", "alg", "nonce", "tag":
			s, ok := p.val.(string)
			if !ok {
				return SignatureInput{}, bad("a string")
			}
			switch p.key {
			case "keyid":
				in.KeyID = s
			case "alg":
				in.Alg = s
			case "nonce":
				in.Nonce = s
			case "tag":
				in.Tag = s
			}
		}
	}
	return in, nil
}

// parseSignatureField parses a Signature field value: a dictionary of byte
// sequences.
func parseSignatureField(fieldValue string) (map[string][]byte, error) {
	dict, err := parseSFDictionary(fieldValue)
	if err != nil {
		return nil, fmt.Errorf("integrity: Signature field: %w", err)
	}
	out := make(map[string][]byte, len(dict))
	for _, m := range dict {
		var b []byte
		if m.item != nil {
			b, _ = m.item.val.([]byte)
		}
		if b == nil {
			return nil, fmt.Errorf("%w: Signature %q is not a byte sequence", ErrSyntax, m.key)
		}
		out[m.key] = b
	}
	return out, nil
}

// signatureBase builds the RFC 9421 §2.5 signature base of in over m.
func signatureBase(m *Message, in *SignatureInput) ([]byte, error) {
	var b []byte
	for _, c := range in.Components {
		v, err := componentValue(m, c)
		if err != nil {
			return nil, err
		}
		if err := checkValue(c.String(), v); err != nil {
			return nil, err
		}
		b = appendSFItem(b, &c.item)
		b = append(b, ": "...)
		b = append(b, v...)
		b = append(b, '\n')
	}
	b = append(b, `"@signature-params": `...)
	return appendSFInnerList(b, &in.inner), nil
}

// SignatureBase returns the RFC 9421 signature base that the signature
// labelled label in signatureInput covers over m.
func SignatureBase(m *Message, signatureInput, label string) ([]byte, error) {
	ins, err := ParseSignatureInput(signatureInput)
	if err != nil {
		return nil, err
	}
	for i := range ins {
		if ins[i].Label == label {
			return signatureBase(m, &ins[i])
		}
	}
	return nil, fmt.Errorf("%w: no Signature-Input %q", ErrNoSignature, label)
}

func componentValue(m *Message, c Component) (string, error) {
	resp := m.isResponse()
	if c.Req && !resp {
		return "", fmt.Errorf("%w: %s: req on a request", ErrBadComponent, c)
	}
	missing := func() (string, error) {
		return "", fmt.Errorf("%w: %s", ErrMissingComponent, c)
	}
	if !strings.HasPrefix(c.Name, "@") {
		h := m.RequestHeader
		if resp && !c.Req {
			h = m.ResponseHeader
		}
		lines := fieldLines(h, c.Name)
		if len(lines) == 0 {
			return missing()
		}
		if !c.BS {
			return joinFieldLines(c.Name, lines, ", ")
		}
		var b []byte
		for i, l := range lines {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendSFBare(b, []byte(strings.Trim(l, " \t")))
		}
		return string(b), nil
	}
	if c.Name == "@status" {
		if c.Req || !resp {
			return "", fmt.Errorf("%w: %s needs a response", ErrBadComponent, c)
		}
		if m.Status < 100 || m.Status > 999 {
			return "", fmt.Errorf("%w: status %d", ErrBadComponent, m.Status)
		}
		return strconv.Itoa(m.Status), nil
	}
	// Request-derived components: in a response they must carry req.
	if resp && !c.Req {
		return "", fmt.Errorf("%w: %s in a response needs ;req", ErrBadComponent, c)
	}
	path, query, hasQuery := strings.Cut(m.Path, "?")
	switch c.Name {
	case "@method":
		if m.Method == "" {
			return missing()
		}
		return m.Method, nil
	case "@scheme":
		if m.Scheme == "" {
			return missing()
		}
		return strings.ToLower(m.Scheme), nil
	case "@authority":
		if m.Authority == "" {
			return missing()
		}
		return normalizeAuthority(m.Scheme, m.Authority), nil
	case "@target-uri":
		if m.Scheme == "" || m.Authority == "" || m.Path == "" {
			return missing()
		}
		return strings.ToLower(m.Scheme) + "://" + normalizeAuthority(m.Scheme, m.Authority) + m.Path, nil
	case "@request-target":
		if m.Path == "" {
			return missing()
		}
		return m.Path, nil
	case "@path":
		if m.Path == "" {
			return missing()
		}
		if path == "" {
			path = "/"
		}
		return path, nil
	case "@query":
		if m.Path == "" {
			return missing()
		}
		if !hasQuery {
			return "?", nil
		}
		return "?" + query, nil
	}
	return "", fmt.Errorf("%w: %s", ErrBadComponent, c)
}

// normalizeAuthority lower-cases the host and drops the scheme's default
// port (RFC 9421 §2.2.3).
func normalizeAuthority(scheme, authority string) string {
	a := strings.ToLower(authority)
	switch strings.ToLower(scheme) {
	case "https":
		a = strings.TrimSuffix(a, ":443")
	case "http":
		a = strings.TrimSuffix(a, ":80")
	}
	return a
}

// MessageSigner signs messages with RFC 9421 HTTP Message Signatures.
type MessageSigner struct {
	// Label names the signature in both fields, e.g. "h3m".
	Label string
	// KeyID is sent as the keyid parameter (omitted when empty).
	KeyID string
	Key   crypto.Signer
	// Components lists the covered components in order (see
	// DefaultResponseComponents for the syntax).
	Components []string
	// Created gives the created parameter; nil means time.Now, and a zero
	// time omits the parameter.
	Created func() time.Time
	// Tag is sent as the tag parameter (omitted when empty).
	Tag string

	// Alg chooses the algorithm; "" derives it from the key: Ed25519 ->
	// ed25519, ECDSA P-256 -> ecdsa-p256-sha256, P-384 -> ecdsa-p384-sha384,
	// RSA -> rsa-pss-sha512.
	Alg string
	// IncludeAlg sends the alg parameter. It is always sent for RSA keys,
	// whose type alone does not name the algorithm.
	IncludeAlg bool
	// Expires > 0 sends an expires parameter that far after created.
	Expires time.Duration
	// Nonce is sent as the nonce parameter (omitted when empty).
	Nonce string
}

// Sign returns the Signature-Input and Signature field values (each a
// one-member dictionary named Label) for m.
func (s *MessageSigner) Sign(m *Message) (signatureInput, signature string, err error) {
	if !validSFKey(s.Label) {
		return "", "", fmt.Errorf("%w: signature label %q is not an RFC 8941 key", ErrBadComponent, s.Label)
	}
	if s.Key == nil {
		return "", "", fmt.Errorf("%w: message signer has no key", ErrKeyType)
	}
	_, kind, curve, _ := normalizeKey(s.Key.Public())
	alg := s.Alg
	if alg == "" {
		if alg = keyAlgorithm(kind, curve); alg == "" && kind == kindRSA {
			alg = AlgRSAPSSSHA512
		}
	}
	sc, ok := httpsigScheme(alg)
	if !ok {
		return "", "", fmt.Errorf("%w: %q for %T", ErrUnsupportedAlgorithm, alg, s.Key.Public())
	}
	if !sc.fits(kind, curve) {
		return "", "", fmt.Errorf("%w: %s with %T (curve %q)", ErrKeyType, alg, s.Key.Public(), curve)
	}
	in := SignatureInput{Label: s.Label}
	seen := map[string]bool{}
	for _, cs := range s.Components {
		c, err := ParseComponent(cs)
		if err != nil {
			return "", "", err
		}
		if seen[c.String()] {
			return "", "", fmt.Errorf("%w: %s listed twice", ErrBadComponent, c)
		}
		seen[c.String()] = true
		in.Components = append(in.Components, c)
		in.inner.items = append(in.inner.items, c.item)
	}
	created := time.Now()
	if s.Created != nil {
		created = s.Created()
	}
	if !created.IsZero() {
		in.inner.params = append(in.inner.params, sfParam{"created", created.Unix()})
	}
	if s.Expires > 0 {
		base := created
		if base.IsZero() {
			base = time.Now()
		}
		in.inner.params = append(in.inner.params, sfParam{"expires", base.Add(s.Expires).Unix()})
	}
	for _, p := range []struct{ key, val string }{{"keyid", s.KeyID}, {"nonce", s.Nonce}} {
		if p.val == "" {
			continue
		}
		if err := checkQuotable(p.key, p.val); err != nil {
			return "", "", err
		}
		in.inner.params = append(in.inner.params, sfParam{p.key, p.val})
	}
	if s.IncludeAlg || kind == kindRSA {
		in.inner.params = append(in.inner.params, sfParam{"alg", alg})
	}
	if s.Tag != "" {
		if err := checkQuotable("tag", s.Tag); err != nil {
			return "", "", err
		}
		in.inner.params = append(in.inner.params, sfParam{"tag", s.Tag})
	}
	base, err := signatureBase(m, &in)
	if err != nil {
		return "", "", err
	}
	sig, err := sc.sign(s.Key, base)
	if err != nil {
		return "", "", err
	}
	si := appendSFInnerList([]byte(s.Label+"="), &in.inner)
	sv := appendSFBare([]byte(s.Label+"="), sig)
	return string(si), string(sv), nil
}

// VerifyOptions tunes VerifyMessageWith.
type VerifyOptions struct {
	// Now is the verification time; nil means time.Now.
	Now func() time.Time
	// Allowed is the session's signature-algorithm set in RFC 9421 names;
	// nil or empty means any.
	Allowed []string
	// Required lists components every verified signature must cover (same
	// syntax as MessageSigner.Components).
	Required []string
	// MaxAge > 0 requires a created parameter no older than MaxAge.
	MaxAge time.Duration
	// Tag, if set, must equal the signature's tag parameter.
	Tag string
}

// VerifyMessage verifies the signature labelled label (or every signature
// when label is "") of m, given its Signature-Input and Signature field
// values, with default options: see VerifyMessageWith.
func VerifyMessage(m *Message, signatureInput, signature string, label string, resolve KeyResolver) error {
	return VerifyMessageWith(m, signatureInput, signature, label, resolve, VerifyOptions{})
}

// VerifyMessageWith verifies like VerifyMessage under opts. It fails with
// ErrSyntax (malformed fields or parameters of the wrong type),
// ErrNoSignature (label absent from either field), ErrExpired (expires
// passed, created in the future beyond a minute, or older than MaxAge),
// ErrMissingComponent (a covered component absent from m, or a required
// one not covered), ErrBadComponent, ErrUnsupportedAlgorithm,
// ErrAlgorithmNotAllowed, ErrKeyType (key does not fit alg, or an RSA key
// with no algorithm) or ErrBadSignature.
func VerifyMessageWith(m *Message, signatureInput, signature string, label string, resolve KeyResolver, opts VerifyOptions) error {
	if m == nil || resolve == nil {
		return fmt.Errorf("%w: nil message or resolver", ErrBadSignature)
	}
	ins, err := ParseSignatureInput(signatureInput)
	if err != nil {
		return err
	}
	sigs, err := parseSignatureField(signature)
	if err != nil {
		return err
	}
	var required []Component
	for _, r := range opts.Required {
		c, err := ParseComponent(r)
		if err != nil {
			return err
		}
		required = append(required, c)
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	verified := 0
	for i := range ins {
		in := &ins[i]
		if label != "" && in.Label != label {
			continue
		}
		sig, ok := sigs[in.Label]
		if !ok {
			return fmt.Errorf("%w: Signature has no member %q", ErrNoSignature, in.Label)
		}
		if err := verifyOne(m, in, sig, resolve, &opts, required, now); err != nil {
			return fmt.Errorf("signature %q: %w", in.Label, err)
		}
		verified++
	}
	if verified == 0 {
		if label == "" {
			return fmt.Errorf("%w: empty Signature-Input", ErrNoSignature)
		}
		return fmt.Errorf("%w: no Signature-Input %q", ErrNoSignature, label)
	}
	return nil
}

func verifyOne(m *Message, in *SignatureInput, sig []byte, resolve KeyResolver, opts *VerifyOptions, required []Component, now time.Time) error {
	if in.HasExpires && now.Unix() > in.Expires {
		return fmt.Errorf("%w: expires %d, now %d", ErrExpired, in.Expires, now.Unix())
	}
	if in.HasCreated && in.Created > now.Add(maxClockSkew).Unix() {
		return fmt.Errorf("%w: created %d is in the future (now %d)", ErrExpired, in.Created, now.Unix())
	}
	if opts.MaxAge > 0 && (!in.HasCreated || now.Unix()-in.Created > int64(opts.MaxAge/time.Second)) {
		return fmt.Errorf("%w: created %d older than %v (now %d)", ErrExpired, in.Created, opts.MaxAge, now.Unix())
	}
	if opts.Tag != "" && in.Tag != opts.Tag {
		return fmt.Errorf("%w: tag %q, want %q", ErrBadComponent, in.Tag, opts.Tag)
	}
	for _, r := range required {
		covered := false
		for _, c := range in.Components {
			if c.Name == r.Name && c.Req == r.Req && c.BS == r.BS {
				covered = true
				break
			}
		}
		if !covered {
			return fmt.Errorf("%w: required %s not covered", ErrMissingComponent, r)
		}
	}
	base, err := signatureBase(m, in)
	if err != nil {
		return err
	}
	key, err := resolve(in.KeyID)
	if err != nil {
		return fmt.Errorf("integrity: resolving keyid %q: %w", in.KeyID, err)
	}
	_, kind, curve, bound := normalizeKey(key)
	alg := in.Alg
	switch {
	case alg != "" && bound != "" && alg != bound:
		return fmt.Errorf("%w: alg %q, key is bound to %q", ErrKeyType, alg, bound)
	case alg == "" && bound != "":
		alg = bound
	case alg == "":
		if alg = keyAlgorithm(kind, curve); alg == "" {
			return fmt.Errorf("%w: no alg parameter and %T does not determine the algorithm", ErrKeyType, key)
		}
	}
	sc, ok := httpsigScheme(alg)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, alg)
	}
	if len(opts.Allowed) > 0 && !containsFold(opts.Allowed, alg) {
		return fmt.Errorf("%w: %q, session allows %q", ErrAlgorithmNotAllowed, alg, opts.Allowed)
	}
	return sc.verify(key, base, sig)
}
