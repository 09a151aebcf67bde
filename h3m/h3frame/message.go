package h3frame

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Request is the request half of a push: the promised request of a
// PUSH_PROMISE.
type Request struct {
	Method, Scheme, Authority, Path string
	Header                          http.Header
}

// Response is the pushed response's HEADERS (or trailers, with Status 0).
type Response struct {
	Status int
	Header http.Header
}

// RequestFields returns the fields of r: :method, :scheme, :authority (when
// set) and :path, then the header fields with lower-cased names, sorted by
// name (values of one name in their order), so equal requests encode to
// equal bytes.
func RequestFields(r *Request) []Field {
	fields := make([]Field, 0, 4+headerLines(r.Header))
	fields = append(fields, Field{":method", r.Method}, Field{":scheme", r.Scheme})
	if r.Authority != "" {
		fields = append(fields, Field{":authority", r.Authority})
	}
	fields = append(fields, Field{":path", r.Path})
	return appendHeaderFields(fields, r.Header)
}

// ResponseFields returns the fields of r: :status as three digits, then the
// header fields as RequestFields orders them.
func ResponseFields(r *Response) []Field {
	fields := make([]Field, 0, 1+headerLines(r.Header))
	fields = append(fields, Field{":status", fmt.Sprintf("%03d", r.Status)})
	return appendHeaderFields(fields, r.Header)
}

// HeaderFields returns the regular fields of h alone, as for a trailer
// section.
func HeaderFields(h http.Header) []Field {
	return appendHeaderFields(make([]Field, 0, headerLines(h)), h)
}

func headerLines(h http.Header) int {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	return n
}

func appendHeaderFields(fields []Field, h http.Header) []Field {
	type key struct{ lower, orig string }
	keys := make([]key, 0, len(h))
	for k := range h {
		keys = append(keys, key{strings.ToLower(k), k})
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := strings.Compare(a.lower, b.lower); c != 0 {
			return c
		}
		return strings.Compare(a.orig, b.orig)
	})
	for _, k := range keys {
		for _, v := range h[k.orig] {
			fields = append(fields, Field{k.lower, v})
		}
	}
	return fields
}

// ParseRequest builds a request from the fields of a PUSH_PROMISE. It
// requires :method, :scheme and :path (non-empty), takes :authority when
// present, and rejects duplicate or unknown pseudo-headers (RFC 9114
// §4.3.1). Header keys are canonicalised as net/http does.
func ParseRequest(fields []Field) (*Request, error) {
	r := &Request{Header: make(http.Header)}
	var seen [4]bool
	for _, f := range fields {
		if !f.IsPseudo() {
			r.Header.Add(f.Name, f.Value)
			continue
		}
		var i int
		var dst *string
		switch f.Name {
		case ":method":
			i, dst = 0, &r.Method
		case ":scheme":
			i, dst = 1, &r.Scheme
		case ":authority":
			i, dst = 2, &r.Authority
		case ":path":
			i, dst = 3, &r.Path
		default:
			return nil, fmt.Errorf("h3frame: request pseudo-header %q is not allowed", f.Name)
		}
		if seen[i] {
			return nil, fmt.Errorf("h3frame: request pseudo-header %s appears twice", f.Name)
		}
		seen[i] = true
		*dst = f.Value
	}
	for _, req := range []struct {
		name string
		v    string
	}{{":method", r.Method}, {":scheme", r.Scheme}, {":path", r.Path}} {
		if req.v == "" {
			return nil, fmt.Errorf("h3frame: request without %s", req.name)
		}
	}
	return r, nil
}

// ParseResponse builds a response from the fields of a HEADERS frame. It
// requires exactly one :status of three digits from 100 to 599 and rejects
// every other pseudo-header (RFC 9114 §4.3.2).
func ParseResponse(fields []Field) (*Response, error) {
	r := &Response{Header: make(http.Header)}
	status := ""
	for _, f := range fields {
		switch {
		case !f.IsPseudo():
			r.Header.Add(f.Name, f.Value)
		case f.Name != ":status":
			return nil, fmt.Errorf("h3frame: response pseudo-header %q is not allowed", f.Name)
		case status != "":
			return nil, fmt.Errorf("h3frame: response pseudo-header :status appears twice")
		default:
			status = f.Value
			if status == "" {
				return nil, fmt.Errorf("h3frame: empty :status")
			}
		}
	}
	if status == "" {
		return nil, fmt.Errorf("h3frame: response without :status")
	}
	if len(status) != 3 || status[0] < '1' || status[0] > '5' || !isDigit(status[1]) || !isDigit(status[2]) {
		return nil, fmt.Errorf("h3frame: :status %q is not a three-digit code from 100 to 599", status)
	}
	r.Status, _ = strconv.Atoi(status)
	return r, nil
}

// ParseTrailers builds the header of a trailer section, which must not carry
// pseudo-headers (RFC 9114 §4.3).
func ParseTrailers(fields []Field) (http.Header, error) {
	h := make(http.Header)
	for _, f := range fields {
		if f.IsPseudo() {
			return nil, fmt.Errorf("h3frame: pseudo-header %q in trailers", f.Name)
		}
		h.Add(f.Name, f.Value)
	}
	return h, nil
}

// MergeTrailer returns the fields of a message as one header, as checks of
// digests and signatures read them: a copy of header in which each trailer
// field replaces the header field of the same name. Neither argument is
// modified; either may be nil.
func MergeTrailer(header, trailer http.Header) http.Header {
	h := header.Clone()
	if h == nil {
		h = make(http.Header, len(trailer))
	}
	for k, vs := range trailer {
		h[k] = slices.Clone(vs)
	}
	return h
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
