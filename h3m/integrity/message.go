package integrity

import (
	"fmt"
	"net/http"
	"net/textproto"
	"sort"
	"strings"
)

// Message is a pushed exchange as signatures see it: the promised request
// (from the PUSH_PROMISE) and, when Status is non-zero, the response (from
// the push stream's HEADERS).
type Message struct {
	// Request pseudo-header values (:method, :scheme, :authority, :path).
	// Path is the full :path, query included.
	Method, Scheme, Authority, Path string
	// Status is the response status; 0 when the message is the request
	// alone (a PUSH_PROMISE signature).
	Status int
	// Regular fields. Keys are matched case-insensitively, so canonical
	// ("Content-Type") and lower-case ("content-type") keys both work.
	RequestHeader, ResponseHeader http.Header
}

// isResponse reports whether m carries a response.
func (m *Message) isResponse() bool { return m.Status != 0 }

// fieldLines returns the values of every field line named name in h,
// matching the name case-insensitively. Lines under the canonical key come
// first, then the lower-case key, then any other spelling in sorted order,
// so the result does not depend on map iteration.
func fieldLines(h http.Header, name string) []string {
	if h == nil {
		return nil
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	lower := strings.ToLower(name)
	out := append([]string(nil), h[canon]...)
	if lower != canon {
		out = append(out, h[lower]...)
	}
	var others []string
	for k := range h {
		if k != canon && k != lower && strings.EqualFold(k, name) {
			others = append(others, k)
		}
	}
	sort.Strings(others)
	for _, k := range others {
		out = append(out, h[k]...)
	}
	return out
}

// joinFieldLines trims each line's leading and trailing whitespace and joins
// the lines with sep. A line holding CR, LF or NUL is refused: it could
// forge extra lines in a signature base.
func joinFieldLines(name string, lines []string, sep string) (string, error) {
	var b strings.Builder
	for i, l := range lines {
		if strings.ContainsAny(l, "\r\n\x00") {
			return "", fmt.Errorf("%w: field %q holds CR, LF or NUL", ErrBadComponent, name)
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(strings.Trim(l, " \t"))
	}
	return b.String(), nil
}

// checkValue refuses CR, LF and NUL in a derived value.
func checkValue(name, v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return fmt.Errorf("%w: %s holds CR, LF or NUL", ErrBadComponent, name)
	}
	return nil
}

// HasComponent reports whether m can supply a value for the RFC 9421
// component c (field lines looked up case-insensitively, in the request or
// response as c says), so a signer can leave out fields a message lacks.
func (m *Message) HasComponent(c Component) bool {
	_, err := componentValue(m, c)
	return err == nil
}
