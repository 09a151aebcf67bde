// Package altsvc parses and renders the HTTP Alt-Svc advertisement of h3m
// sessions (draft-pardue-quic-http-mcast §2.2 and §10): an alternative whose
// protocol-id is h3m-NN names a multicast QUIC session by its group and port
// (the alt-authority) and carries every session parameter as an Alt-Svc
// parameter.
//
// The field syntax is RFC 7838 §3:
//
//	Alt-Svc       = clear / 1#alt-value
//	alt-value     = alternative *( OWS ";" OWS parameter )
//	alternative   = protocol-id "=" alt-authority
//	parameter     = token "=" ( token / quoted-string )
//
// Parse reads whole field values, skips alternatives of other protocols (h3,
// h2, ...) and returns the h3m ones; Advertisement.String and Header render
// them back.
//
// Where the draft is silent or contradicts itself (recorded in spec/):
//   - Every parameter value may be a token or a quoted-string (RFC 7838); the
//     draft's examples quote source-address.
//   - Of single-valued parameters only the first instance counts; later ones
//     are ignored without being checked. The draft says so for four
//     parameters; this package does it for every parameter that cannot repeat.
//   - session-id is the byte string its hex digits spell, with a 0 nibble in
//     front of an odd count: "65" is 0x65, "BADBEEF" is 0x0BADBEEF, "000A" is
//     00 0A (leading zero digits count). At most 20 bytes.
//   - session-idle-timeout is in milliseconds, as the ABNF says, although the
//     draft's example calls session-idle-timeout=60 a minute.
//   - source-address accepts IPv6 with and without brackets and renders it
//     without, as the draft's example does.
//   - extensions and its singular spelling extension (the IANA section's)
//     are both read; odd-length values get a 0 nibble in front.
//   - secret is this project's experiment parameter: the key form in which
//     packet keys are derived from one secret as QUIC derives 1-RTT keys
//     (spec/transport.md, "Keys and packet protection").
//   - Experiment labels may contain dashes: known labels (data-offset) are
//     taken whole and runs of other words form one label.
package altsvc

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
)

// Clear is the Alt-Svc field value that invalidates every alternative the
// origin advertised before (RFC 7838 §3).
const Clear = "clear"

// ExperimentDataOffset is the experiment label of sessions that carry
// DATA_WITH_OFFSET frames (draft -08 and later, §9.1): h3m-NN-data-offset.
const ExperimentDataOffset = "data-offset"

// knownLabels are experiment labels that contain a dash themselves, so a
// protocol-id suffix like "data-offset-foo" splits into "data-offset", "foo".
var knownLabels = [...]string{ExperimentDataOffset}

// MaxAgeLimit is the largest max-age kept: RFC 9111 §1.2.2 lets a recipient
// treat any larger delta-seconds as 2^31 seconds.
const MaxAgeLimit = (1 << 31) * time.Second

// Names of the parameters this package interprets.
const (
	ParamSourceAddress          = "source-address"
	ParamSessionID              = "session-id"
	ParamCipherSuite            = "cipher-suite"
	ParamKey                    = "key"
	ParamIV                     = "iv"
	ParamSecret                 = "secret" // this project's experiment (spec/transport.md)
	ParamSessionIdleTimeout     = "session-idle-timeout"
	ParamMaxConcurrentResources = "max-concurrent-resources"
	ParamPeakFlowRate           = "peak-flow-rate"
	ParamExtensions             = "extensions"
	ParamDigestAlgorithm        = "digest-algorithm"
	ParamSignatureAlgorithm     = "signature-algorithm"
	ParamMaxAge                 = "ma"
	ParamPersist                = "persist"

	// paramExtensionAlias is the singular spelling the draft's IANA section
	// registers; it is read like extensions.
	paramExtensionAlias = "extension"
)

// Param is one Alt-Svc parameter as received: Value is the token or the
// content of the quoted-string with its escapes removed.
type Param struct{ Name, Value string }

// Advertisement is one h3m alternative service: a multicast session and its
// HTTP-level parameters.
type Advertisement struct {
	// ProtocolID is the alternative's protocol-id (percent-decoded), e.g.
	// "h3m-11", "h3m-07" or "h3m-11-data-offset". When empty, String renders
	// it from Draft and Experiments.
	ProtocolID string
	// Draft is the draft number of "h3m-NN"; the bare "h3m" of the draft's
	// own examples gives 0 and is accepted.
	Draft int
	// Experiments are the labels after the draft number, e.g. ["data-offset"].
	Experiments []string

	// Session is the transport part: Group (alt-authority), Source
	// (source-address), SessionID, CipherSuite, Key, IV, Secret, IdleTimeout
	// (session-idle-timeout, milliseconds on the wire),
	// MaxConcurrentResources, PeakFlowRate and Extensions. PacketNumberLen is
	// not advertised and stays 0.
	Session mquic.Params

	// DigestAlgorithms is the set of digest-algorithm values, in the order
	// first seen, without duplicates (compared case-insensitively).
	DigestAlgorithms []string
	// SignatureAlgorithms is the set of signature-algorithm values.
	SignatureAlgorithms []string

	// MaxAge is ma. When absent it is 0 and HasMaxAge is false; RFC 7838's
	// default of 24 hours is then the caller's to apply.
	MaxAge    time.Duration
	HasMaxAge bool
	// Persist is persist=1 (RFC 7838 §3.1).
	Persist bool

	// Params are every parameter as received, in order, including repeated
	// and unknown ones (for logging and for round-tripping unknown ones).
	Params []Param
}

// HasExperiment reports whether the protocol-id carries the experiment label.
func (a *Advertisement) HasExperiment(label string) bool {
	for _, e := range a.Experiments {
		if e == label {
			return true
		}
	}
	return false
}

// FormatProtocolID returns the protocol-id of the given draft and experiment
// labels: "h3m-11", "h3m-07-data-offset"; draft 0 gives the bare "h3m".
func FormatProtocolID(draft int, experiments ...string) string {
	s := "h3m"
	if draft > 0 {
		s = fmt.Sprintf("h3m-%02d", draft)
	}
	for _, e := range experiments {
		s += "-" + e
	}
	return s
}

// protocolID is the protocol-id String renders.
func (a *Advertisement) protocolID() string {
	if a.ProtocolID != "" {
		return a.ProtocolID
	}
	return FormatProtocolID(a.Draft, a.Experiments...)
}

// ParseError reports a malformed field value or an invalid h3m parameter.
type ParseError struct {
	// Alternative is the 0-based index of the alternative in the field value.
	Alternative int
	// ProtocolID is that alternative's protocol-id, when it was read.
	ProtocolID string
	// Param names the parameter at fault; "protocol-id" and "alt-authority"
	// name those parts of the alternative; empty for plain syntax errors.
	Param string
	// Offset is the byte offset in the field value where the problem starts.
	Offset int
	Err    error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("alt-svc")
	if e.ProtocolID != "" {
		b.WriteString(" ")
		b.WriteString(e.ProtocolID)
	}
	b.WriteString(": ")
	switch e.Param {
	case "":
		fmt.Fprintf(&b, "offset %d: ", e.Offset)
	case "protocol-id", "alt-authority":
		b.WriteString(e.Param)
		b.WriteString(": ")
	default:
		fmt.Fprintf(&b, "parameter %q: ", e.Param)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// Parse parses an Alt-Svc field value and returns its h3m alternatives
// (protocol-ids "h3m", "h3m-NN" and "h3m-NN-<experiment>..."), in order;
// clear reports the value "clear". Alternatives of other protocols are
// skipped, but the whole value must be well-formed.
//
// Errors are *ParseError. A syntax error stops parsing; an invalid h3m
// alternative is left out and parsing goes on, so ads holds every valid h3m
// alternative and err reports the first invalid one.
func Parse(value string) (ads []Advertisement, clear bool, err error) {
	p := parser{s: value}
	p.ows()
	if rest := strings.TrimRight(p.s[p.i:], " \t"); rest == Clear {
		return nil, true, nil
	}
	var firstErr *ParseError
	for alt := 0; ; alt++ {
		// RFC 9110 §5.6.1: recipients accept empty list elements.
		for {
			p.ows()
			if p.i < len(p.s) && p.s[p.i] == ',' {
				p.i++
				continue
			}
			break
		}
		if p.eof() {
			break
		}
		ad, isH3M, perr := p.alternative(alt)
		if perr != nil {
			if perr.Param == "" { // syntax: boundaries are lost
				return ads, false, perr
			}
			if firstErr == nil {
				firstErr = perr
			}
		} else if isH3M {
			ads = append(ads, ad)
		}
		p.ows()
		if p.eof() {
			break
		}
		if p.s[p.i] != ',' {
			return ads, false, p.syntaxErr(alt, "expected \",\" or \";\" after %s", describe(p.s, p.i))
		}
	}
	if firstErr != nil {
		return ads, false, firstErr
	}
	return ads, false, nil
}

// Header renders a whole Alt-Svc field value from several advertisements;
// with none it returns "" (send Clear to withdraw earlier advertisements).
func Header(ads ...Advertisement) string {
	parts := make([]string, len(ads))
	for i := range ads {
		parts[i] = ads[i].String()
	}
	return strings.Join(parts, ", ")
}

// parser walks a field value.
type parser struct {
	s string
	i int
}

func (p *parser) eof() bool { return p.i >= len(p.s) }

func (p *parser) ows() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *parser) syntaxErr(alt int, format string, args ...any) *ParseError {
	return &ParseError{Alternative: alt, Offset: p.i, Err: fmt.Errorf(format, args...)}
}

// describe names what sits at s[i] for a syntax error.
func describe(s string, i int) string {
	if i >= len(s) {
		return "end of value"
	}
	return fmt.Sprintf("%q", s[i])
}

func (p *parser) token() string {
	start := p.i
	for p.i < len(p.s) && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a quoted-string at p.i and returns its content unescaped.
func (p *parser) quoted() (string, error) {
	if p.eof() || p.s[p.i] != '"' {
		return "", fmt.Errorf("expected quoted-string, found %s", describe(p.s, p.i))
	}
	p.i++
	var b []byte // nil while no escape was seen
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			v := p.s[start:p.i]
			if b != nil {
				v = string(b)
			}
			p.i++
			return v, nil
		case c == '\\':
			if b == nil {
				b = append([]byte{}, p.s[start:p.i]...)
			}
			p.i++
			if p.eof() || !isQuotedPairChar(p.s[p.i]) {
				return "", fmt.Errorf("bad escape in quoted-string")
			}
			b = append(b, p.s[p.i])
		case isQdtext(c):
			if b != nil {
				b = append(b, c)
			}
		default:
			return "", fmt.Errorf("control character %q in quoted-string", c)
		}
		p.i++
	}
	return "", errors.New("unterminated quoted-string")
}

// value reads token / quoted-string.
func (p *parser) value() (string, error) {
	if !p.eof() && p.s[p.i] == '"' {
		return p.quoted()
	}
	if v := p.token(); v != "" {
		return v, nil
	}
	return "", fmt.Errorf("expected token or quoted-string, found %s", describe(p.s, p.i))
}

// alternative parses one alt-value. For h3m protocol-ids it also interprets
// the parameters; for others it only checks the syntax.
func (p *parser) alternative(alt int) (Advertisement, bool, *ParseError) {
	var ad Advertisement
	start := p.i
	rawID := p.token()
	if rawID == "" {
		return ad, false, p.syntaxErr(alt, "expected protocol-id, found %s", describe(p.s, p.i))
	}
	id, idErr := percentDecode(rawID)
	if p.eof() || p.s[p.i] != '=' {
		return ad, false, p.syntaxErr(alt, "expected \"=\" after protocol-id %q, found %s", rawID, describe(p.s, p.i))
	}
	p.i++
	authStart := p.i
	authority, err := p.quoted()
	if err != nil {
		return ad, false, &ParseError{Alternative: alt, Offset: p.i, Err: fmt.Errorf("alt-authority: %w", err)}
	}
	isH3M := idErr == nil && (id == "h3m" || strings.HasPrefix(id, "h3m-"))
	var bad *ParseError // first semantic problem; syntax is still checked to the end
	fail := func(param string, off int, err error) {
		if bad == nil && isH3M {
			bad = &ParseError{Alternative: alt, ProtocolID: id, Param: param, Offset: off, Err: err}
		}
	}
	if isH3M {
		ad.ProtocolID = id
		if ad.Draft, ad.Experiments, err = parseProtocolID(id); err != nil {
			fail("protocol-id", start, err)
		}
		if ad.Session.Group, err = parseAuthority(authority); err != nil {
			fail("alt-authority", authStart, err)
		}
	}
	seen := make(map[string]bool)
	for {
		save := p.i
		p.ows()
		if p.eof() || p.s[p.i] != ';' {
			p.i = save
			break
		}
		p.i++
		p.ows()
		if p.eof() || p.s[p.i] == ',' || p.s[p.i] == ';' {
			continue // empty parameter: tolerated
		}
		paramStart := p.i
		name := p.token()
		if name == "" {
			return ad, false, p.syntaxErr(alt, "expected parameter name, found %s", describe(p.s, p.i))
		}
		if p.eof() || p.s[p.i] != '=' {
			return ad, false, p.syntaxErr(alt, "expected \"=\" after parameter %q, found %s", name, describe(p.s, p.i))
		}
		p.i++
		v, err := p.value()
		if err != nil {
			return ad, false, &ParseError{Alternative: alt, Offset: p.i, Err: fmt.Errorf("parameter %q: %w", name, err)}
		}
		if !isH3M {
			continue
		}
		ad.Params = append(ad.Params, Param{Name: name, Value: v})
		if err := ad.setParam(strings.ToLower(name), v, seen); err != nil {
			fail(strings.ToLower(name), paramStart, err)
		}
	}
	if bad != nil {
		return Advertisement{}, false, bad
	}
	return ad, isH3M, nil
}

// singleValued are the parameters of which only the first instance counts.
// The draft says so for source-address, session-idle-timeout,
// max-concurrent-resources and peak-flow-rate; this package applies the same
// rule to every other parameter that cannot sensibly repeat.
func singleValued(name string) bool {
	switch name {
	case ParamSourceAddress, ParamSessionID, ParamCipherSuite, ParamKey, ParamIV, ParamSecret,
		ParamSessionIdleTimeout, ParamMaxConcurrentResources, ParamPeakFlowRate, ParamMaxAge:
		return true
	}
	return false
}

func knownParam(name string) bool {
	switch strings.ToLower(name) {
	case ParamExtensions, paramExtensionAlias, ParamDigestAlgorithm, ParamSignatureAlgorithm, ParamPersist:
		return true
	}
	return singleValued(strings.ToLower(name))
}

// setParam interprets one parameter (name lower-cased).
func (a *Advertisement) setParam(name, v string, seen map[string]bool) error {
	if singleValued(name) {
		if seen[name] {
			return nil // first instance wins; later ones are ignored
		}
		seen[name] = true
	}
	s := &a.Session
	var err error
	switch name {
	case ParamSourceAddress:
		s.Source, err = parseHostAddr(v)
	case ParamSessionID:
		var id []byte
		if id, err = parseHex(v, true); err == nil {
			if len(id) > mquic.MaxSessionIDLen {
				return fmt.Errorf("%q is %d bytes, at most %d allowed", v, len(id), mquic.MaxSessionIDLen)
			}
			s.SessionID = id
		}
	case ParamCipherSuite:
		if len(v) != 4 || !isHex(v) {
			return fmt.Errorf("%q is not 4 hex digits", v)
		}
		n, _ := strconv.ParseUint(v, 16, 16)
		s.CipherSuite = protect.Suite(n)
	case ParamKey:
		s.Key, err = parseHex(v, false)
	case ParamIV:
		s.IV, err = parseHex(v, false)
	case ParamSecret:
		s.Secret, err = parseHex(v, false)
	case ParamSessionIdleTimeout:
		var ms uint64
		if ms, err = parseDecimal(v, 64); err == nil {
			if ms > uint64(1<<63-1)/uint64(time.Millisecond) {
				return fmt.Errorf("%q milliseconds is too long", v)
			}
			s.IdleTimeout = time.Duration(ms) * time.Millisecond
		}
	case ParamMaxConcurrentResources:
		var n uint64
		if n, err = parseDecimal(v, 32); err == nil {
			s.MaxConcurrentResources = uint32(n)
		}
	case ParamPeakFlowRate:
		s.PeakFlowRate, err = parseDecimal(v, 64)
	case ParamExtensions, paramExtensionAlias:
		var exts []mquic.Extension
		if exts, err = parseExtensions(v); err == nil {
			s.Extensions = append(s.Extensions, exts...)
		}
	case ParamDigestAlgorithm:
		a.DigestAlgorithms, err = addAlgorithm(a.DigestAlgorithms, v)
	case ParamSignatureAlgorithm:
		a.SignatureAlgorithms, err = addAlgorithm(a.SignatureAlgorithms, v)
	case ParamMaxAge:
		if !isDigits(v) {
			return fmt.Errorf("%q is not a decimal number", v)
		}
		// Digits that overflow are clamped like any value above the limit.
		secs, perr := strconv.ParseUint(v, 10, 64)
		if limit := uint64(MaxAgeLimit / time.Second); perr != nil || secs > limit {
			secs = limit
		}
		a.MaxAge = time.Duration(secs) * time.Second
		a.HasMaxAge = true
	case ParamPersist:
		// RFC 7838 §3.1: values other than "1" are ignored.
		if v == "1" {
			a.Persist = true
		}
	}
	return err
}

// parseProtocolID splits h3m[-NN[-label...]].
func parseProtocolID(id string) (draft int, exps []string, err error) {
	if id == "h3m" {
		return 0, nil, nil
	}
	rest := strings.TrimPrefix(id, "h3m-")
	num, labels, hasLabels := strings.Cut(rest, "-")
	if num == "" || !isDigits(num) {
		return 0, nil, fmt.Errorf("%q has no draft number after \"h3m-\"", id)
	}
	if len(num) > 4 {
		return 0, nil, fmt.Errorf("%q: draft number %s out of range", id, num)
	}
	draft, _ = strconv.Atoi(num)
	if !hasLabels {
		return draft, nil, nil
	}
	// Labels may contain dashes themselves, so the split is ambiguous: known
	// labels are taken whole, and a run of other words forms one label
	// ("extension-foo", the draft's example).
	words := strings.Split(labels, "-")
	var unknown []string
	flush := func() {
		if len(unknown) > 0 {
			exps = append(exps, strings.Join(unknown, "-"))
			unknown = nil
		}
	}
	for i := 0; i < len(words); {
		if !isToken(words[i]) {
			return 0, nil, fmt.Errorf("%q has an empty or invalid experiment label", id)
		}
		n := 0
		for _, k := range knownLabels {
			kw := strings.Count(k, "-") + 1
			if kw <= len(words)-i && strings.Join(words[i:i+kw], "-") == k {
				n = kw
				break
			}
		}
		if n == 0 {
			unknown = append(unknown, words[i])
			i++
			continue
		}
		flush()
		exps = append(exps, strings.Join(words[i:i+n], "-"))
		i += n
	}
	flush()
	return draft, exps, nil
}

// parseAuthority reads the h3m alt-authority "group:port".
func parseAuthority(s string) (netip.AddrPort, error) {
	host, portStr, ok := cutLast(s, ':')
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q has no port", s)
	}
	if host == "" {
		return netip.AddrPort{}, fmt.Errorf("%q has no group address", s)
	}
	addr, err := parseHostAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %w", s, err)
	}
	if addr.Is6() && !strings.HasPrefix(host, "[") {
		return netip.AddrPort{}, fmt.Errorf("%q: IPv6 group must be in brackets", s)
	}
	port, err := parseDecimal(portStr, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port %w", s, err)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// cutLast splits s around the last sep.
func cutLast(s string, sep byte) (before, after string, found bool) {
	if i := strings.LastIndexByte(s, sep); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}

// parseHostAddr reads an IP literal: IPv4, bracketed IPv6 (RFC 3986
// IP-literal) or, as the draft's own source-address example writes it,
// unbracketed IPv6. Zones and host names are refused.
func parseHostAddr(s string) (netip.Addr, error) {
	bracketed := strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]")
	h := s
	if bracketed {
		h = s[1 : len(s)-1]
	}
	addr, err := netip.ParseAddr(h)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if addr.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	if bracketed && !addr.Is6() {
		return netip.Addr{}, fmt.Errorf("%q: brackets around an IPv4 address", s)
	}
	return addr, nil
}

// parseExtensions reads ext-transport-param *( "," ext-transport-param ).
func parseExtensions(v string) ([]mquic.Extension, error) {
	var exts []mquic.Extension
	for item := range strings.SplitSeq(v, ",") {
		item = strings.Trim(item, " \t")
		if item == "" {
			continue
		}
		key, val, hasVal := strings.Cut(item, "=")
		if len(key) != 4 || !isHex(key) {
			return nil, fmt.Errorf("%q: transport parameter ID %q is not 4 hex digits", v, key)
		}
		id, _ := strconv.ParseUint(key, 16, 16)
		e := mquic.Extension{ID: uint16(id)}
		if hasVal && val != "" {
			b, err := parseHex(val, true)
			if err != nil {
				return nil, fmt.Errorf("%q: value of %s: %w", v, key, err)
			}
			e.Value = b
		}
		exts = append(exts, e)
	}
	return exts, nil
}

// addAlgorithm adds a token to a set, keeping the first spelling of values
// that differ only in case.
func addAlgorithm(set []string, v string) ([]string, error) {
	if v == "" || !isToken(v) {
		return set, fmt.Errorf("%q is not a token", v)
	}
	for _, s := range set {
		if strings.EqualFold(s, v) {
			return set, nil
		}
	}
	return append(set, v), nil
}

// parseHex decodes hex digits; an odd count is an error unless padOdd, when
// a 0 nibble is put in front.
func parseHex(s string, padOdd bool) ([]byte, error) {
	if !isHex(s) {
		return nil, fmt.Errorf("%q is not hex digits", s)
	}
	if len(s)%2 == 1 {
		if !padOdd {
			return nil, fmt.Errorf("%q has an odd number of hex digits", s)
		}
		s = "0" + s
	}
	if s == "" {
		return nil, nil
	}
	b := make([]byte, len(s)/2)
	for i := range b {
		b[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return b, nil
}

// parseDecimal reads 1*DIGIT into an unsigned integer of the given bit size.
func parseDecimal(s string, bits int) (uint64, error) {
	if !isDigits(s) {
		return 0, fmt.Errorf("%q is not a decimal number", s)
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%q does not fit in %d bits: %w", s, bits, strconv.ErrRange)
	}
	return n, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// isHex reports whether s is *HEXDIG (empty allowed; ABNF is case-insensitive).
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if unhex(s[i]) == 0xff {
			return false
		}
	}
	return true
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0xff
}

// isTchar reports whether c is an RFC 9110 tchar.
func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// isQdtext: HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text.
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (0x23 <= c && c <= 0x5b) || (0x5d <= c && c <= 0x7e) || c >= 0x80
}

// isQuotedPairChar: HTAB / SP / VCHAR / obs-text.
func isQuotedPairChar(c byte) bool {
	return c == '\t' || c == ' ' || (0x21 <= c && c <= 0x7e) || c >= 0x80
}

// percentDecode undoes the protocol-id percent-encoding (RFC 7838 §3).
func percentDecode(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || unhex(s[i+1]) == 0xff || unhex(s[i+2]) == 0xff {
			return "", fmt.Errorf("bad percent-encoding in %q", s)
		}
		b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
		i += 2
	}
	return b.String(), nil
}
