package integrity

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// A minimal RFC 8941 Structured Field Values parser and serializer: exactly
// what Content-Digest, Signature-Input and Signature need (dictionaries,
// inner lists, parameters and every RFC 8941 bare item type).

// sfToken is a bare token (distinct from an sf-string).
type sfToken string

// sfDecimal is an RFC 8941 decimal held as thousandths, so that it
// re-serializes canonically.
type sfDecimal int64

// A bare item is one of: int64, sfDecimal, string, sfToken, []byte, bool.
type sfParam struct {
	key string
	val any
}

type sfParams []sfParam

type sfItem struct {
	val    any
	params sfParams
}

type sfInnerList struct {
	items  []sfItem
	params sfParams
}

// sfMember is a dictionary member: either an item or an inner list.
type sfMember struct {
	key   string
	item  *sfItem
	inner *sfInnerList
}

type sfParser struct {
	s   string
	pos int
}

func (p *sfParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at offset %d", ErrSyntax, fmt.Sprintf(format, args...), p.pos)
}

func (p *sfParser) eof() bool { return p.pos >= len(p.s) }

func (p *sfParser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.pos]
}

func (p *sfParser) skipSP() {
	for !p.eof() && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *sfParser) skipOWS() {
	for !p.eof() && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t') {
		p.pos++
	}
}

// parseSFDictionary parses an RFC 8941 dictionary (§4.2.2). A repeated key
// overwrites the earlier value in place, as the RFC requires.
func parseSFDictionary(s string) ([]sfMember, error) {
	p := &sfParser{s: strings.Trim(s, " ")}
	var out []sfMember
	index := map[string]int{}
	for !p.eof() {
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		m := sfMember{key: key}
		if p.peek() == '=' {
			p.pos++
			if p.peek() == '(' {
				il, err := p.parseInnerList()
				if err != nil {
					return nil, err
				}
				m.inner = il
			} else {
				it, err := p.parseItem()
				if err != nil {
					return nil, err
				}
				m.item = it
			}
		} else {
			params, err := p.parseParams()
			if err != nil {
				return nil, err
			}
			m.item = &sfItem{val: true, params: params}
		}
		if i, ok := index[key]; ok {
			out[i] = m
		} else {
			index[key] = len(out)
			out = append(out, m)
		}
		p.skipOWS()
		if p.eof() {
			return out, nil
		}
		if p.peek() != ',' {
			return nil, p.errorf("expected ',' after dictionary member %q", key)
		}
		p.pos++
		p.skipOWS()
		if p.eof() {
			return nil, p.errorf("trailing ',' in dictionary")
		}
	}
	return out, nil
}

// parseSFItem parses a whole field value that is one item with parameters
// (used for component identifiers given in text form).
func parseSFItem(s string) (*sfItem, error) {
	p := &sfParser{s: strings.Trim(s, " ")}
	it, err := p.parseItem()
	if err != nil {
		return nil, err
	}
	if !p.eof() {
		return nil, p.errorf("trailing characters")
	}
	return it, nil
}

func isLCAlpha(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool   { return isLCAlpha(c) || (c >= 'A' && c <= 'Z') }
func isDigit(c byte) bool   { return c >= '0' && c <= '9' }

func isTChar(c byte) bool {
	if isAlpha(c) || isDigit(c) {
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func (p *sfParser) parseKey() (string, error) {
	start := p.pos
	if c := p.peek(); !isLCAlpha(c) && c != '*' {
		return "", p.errorf("key must start with a lower-case letter or '*'")
	}
	p.pos++
	for !p.eof() {
		c := p.s[p.pos]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos], nil
}

func (p *sfParser) parseParams() (sfParams, error) {
	var out sfParams
	var index map[string]int
	for p.peek() == ';' {
		p.pos++
		p.skipSP()
		key, err := p.parseKey()
		if err != nil {
			return nil, err
		}
		var val any = true
		if p.peek() == '=' {
			p.pos++
			if val, err = p.parseBareItem(); err != nil {
				return nil, err
			}
		}
		if i, ok := index[key]; ok {
			out[i].val = val
		} else {
			if index == nil {
				index = map[string]int{}
			}
			index[key] = len(out)
			out = append(out, sfParam{key, val})
		}
	}
	return out, nil
}

func (p *sfParser) parseInnerList() (*sfInnerList, error) {
	if p.peek() != '(' {
		return nil, p.errorf("expected '('")
	}
	p.pos++
	il := &sfInnerList{}
	for !p.eof() {
		p.skipSP()
		if p.peek() == ')' {
			p.pos++
			params, err := p.parseParams()
			if err != nil {
				return nil, err
			}
			il.params = params
			return il, nil
		}
		it, err := p.parseItem()
		if err != nil {
			return nil, err
		}
		il.items = append(il.items, *it)
		if c := p.peek(); c != ' ' && c != ')' {
			return nil, p.errorf("expected ' ' or ')' in inner list")
		}
	}
	return nil, p.errorf("unterminated inner list")
}

func (p *sfParser) parseItem() (*sfItem, error) {
	v, err := p.parseBareItem()
	if err != nil {
		return nil, err
	}
	params, err := p.parseParams()
	if err != nil {
		return nil, err
	}
	return &sfItem{val: v, params: params}, nil
}

func (p *sfParser) parseBareItem() (any, error) {
	c := p.peek()
	switch {
	case c == '-' || isDigit(c):
		return p.parseNumber()
	case c == '"':
		return p.parseString()
	case c == '*' || isAlpha(c):
		return p.parseToken(), nil
	case c == ':':
		return p.parseBytes()
	case c == '?':
		return p.parseBool()
	case p.eof():
		return nil, p.errorf("missing item")
	default:
		return nil, p.errorf("unexpected character %q", c)
	}
}

func (p *sfParser) parseNumber() (any, error) {
	start := p.pos
	neg := false
	if p.peek() == '-' {
		neg = true
		p.pos++
	}
	if !isDigit(p.peek()) {
		return nil, p.errorf("expected digit")
	}
	intStart := p.pos
	dot := -1
	for !p.eof() {
		c := p.s[p.pos]
		if isDigit(c) {
			p.pos++
		} else if c == '.' && dot < 0 {
			if p.pos-intStart > 12 {
				return nil, p.errorf("decimal integer part too long")
			}
			dot = p.pos
			p.pos++
		} else {
			break
		}
		if dot < 0 && p.pos-intStart > 15 {
			return nil, p.errorf("integer too long")
		}
		if dot >= 0 && p.pos-intStart > 16 {
			return nil, p.errorf("decimal too long")
		}
	}
	if dot < 0 {
		n, err := strconv.ParseInt(p.s[intStart:p.pos], 10, 64)
		if err != nil {
			return nil, p.errorf("bad integer %q", p.s[start:p.pos])
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	frac := p.s[dot+1 : p.pos]
	if len(frac) == 0 {
		return nil, p.errorf("decimal ends with '.'")
	}
	if len(frac) > 3 {
		return nil, p.errorf("decimal has more than 3 fractional digits")
	}
	ip, err := strconv.ParseInt(p.s[intStart:dot], 10, 64)
	if err != nil {
		return nil, p.errorf("bad decimal %q", p.s[start:p.pos])
	}
	fp, _ := strconv.ParseInt(frac+strings.Repeat("0", 3-len(frac)), 10, 64)
	d := ip*1000 + fp
	if neg {
		d = -d
	}
	return sfDecimal(d), nil
}

func (p *sfParser) parseString() (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for !p.eof() {
		c := p.s[p.pos]
		p.pos++
		switch {
		case c == '\\':
			if p.eof() {
				return "", p.errorf("string ends in escape")
			}
			n := p.s[p.pos]
			if n != '"' && n != '\\' {
				return "", p.errorf("bad escape %q in string", n)
			}
			b.WriteByte(n)
			p.pos++
		case c == '"':
			return b.String(), nil
		case c < 0x20 || c > 0x7e:
			return "", p.errorf("invalid character %#x in string", c)
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf("unterminated string")
}

func (p *sfParser) parseToken() sfToken {
	start := p.pos
	p.pos++
	for !p.eof() {
		c := p.s[p.pos]
		if !isTChar(c) && c != ':' && c != '/' {
			break
		}
		p.pos++
	}
	return sfToken(p.s[start:p.pos])
}

func (p *sfParser) parseBytes() ([]byte, error) {
	p.pos++ // opening colon
	end := strings.IndexByte(p.s[p.pos:], ':')
	if end < 0 {
		return nil, p.errorf("unterminated byte sequence")
	}
	enc := p.s[p.pos : p.pos+end]
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '/' && c != '=' {
			return nil, p.errorf("invalid character %q in byte sequence", c)
		}
	}
	p.pos += end + 1
	return decodeBase64(enc)
}

// decodeBase64 decodes standard base64, padded or not (RFC 8941 §4.2.7 asks
// parsers not to fail on missing padding).
func decodeBase64(s string) ([]byte, error) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad base64: %v", ErrSyntax, err)
	}
	return b, nil
}

func (p *sfParser) parseBool() (bool, error) {
	p.pos++
	switch p.peek() {
	case '1':
		p.pos++
		return true, nil
	case '0':
		p.pos++
		return false, nil
	}
	return false, p.errorf("bad boolean")
}

// Serialization (RFC 8941 §4.1).

func appendSFBare(b []byte, v any) []byte {
	switch v := v.(type) {
	case int64:
		return strconv.AppendInt(b, v, 10)
	case sfDecimal:
		d := int64(v)
		if d < 0 {
			b = append(b, '-')
			d = -d
		}
		b = strconv.AppendInt(b, d/1000, 10)
		b = append(b, '.')
		frac := strconv.FormatInt(1000+d%1000, 10)[1:]
		frac = strings.TrimRight(frac, "0")
		if frac == "" {
			frac = "0"
		}
		return append(b, frac...)
	case string:
		b = append(b, '"')
		for i := 0; i < len(v); i++ {
			if v[i] == '"' || v[i] == '\\' {
				b = append(b, '\\')
			}
			b = append(b, v[i])
		}
		return append(b, '"')
	case sfToken:
		return append(b, v...)
	case []byte:
		b = append(b, ':')
		b = base64.StdEncoding.AppendEncode(b, v)
		return append(b, ':')
	case bool:
		if v {
			return append(b, "?1"...)
		}
		return append(b, "?0"...)
	}
	panic(fmt.Sprintf("integrity: unknown structured field type %T", v))
}

func appendSFParams(b []byte, ps sfParams) []byte {
	for _, p := range ps {
		b = append(b, ';')
		b = append(b, p.key...)
		if v, ok := p.val.(bool); ok && v {
			continue
		}
		b = append(b, '=')
		b = appendSFBare(b, p.val)
	}
	return b
}

func appendSFItem(b []byte, it *sfItem) []byte {
	return appendSFParams(appendSFBare(b, it.val), it.params)
}

func appendSFInnerList(b []byte, il *sfInnerList) []byte {
	b = append(b, '(')
	for i := range il.items {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendSFItem(b, &il.items[i])
	}
	b = append(b, ')')
	return appendSFParams(b, il.params)
}

// validSFString reports whether s can be serialized as an sf-string.
func validSFString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// validSFKey reports whether s is a valid dictionary or parameter key.
func validSFKey(s string) bool {
	if s == "" || (!isLCAlpha(s[0]) && s[0] != '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isLCAlpha(c) && !isDigit(c) && c != '_' && c != '-' && c != '.' && c != '*' {
			return false
		}
	}
	return true
}
