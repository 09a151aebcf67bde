package wellknown

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrTarget is wrapped by the errors of ParseTarget: a request target that
// h3m neither fetches nor stores.
var ErrTarget = errors.New("wellknown: not an origin-form request target")

// Target is a request target in origin form (RFC 9110 §7.1, RFC 9112
// §3.2.1: an absolute path and an optional query, no scheme, no authority,
// no fragment), as a push promises it (:path) and the catalogue lists it.
// A client resolves it against its origin only (URL), and a receiver stores
// it under Name.
type Target struct {
	// Path is the decoded path ("/a b.txt"), RawPath the path as sent
	// ("/a%20b.txt") and RawQuery the query without its "?" ("" for none).
	Path, RawPath, RawQuery string
}

// ParseTarget checks a request target and returns it parsed. It accepts the
// origin form in its normal form only:
//
//   - it starts with "/" and holds only the characters RFC 3986 allows in a
//     path (unreserved, sub-delims, ":", "@", "/" and %-escapes) and, after
//     a "?", in a query; so no scheme, no authority, no fragment, no space;
//   - runs of "/" count as one ("//hello.txt" is "/hello.txt": nghq's sender
//     promises such paths); the target is kept, fetched and stored in that
//     collapsed form, so it can never read as an authority;
//   - no segment, once decoded, is "." or "..", holds "/", "\\" or a control character, or
//     starts with "." (a hidden file: origins neither push nor serve them,
//     and receivers do not store them).
//
// It is the one rule for promised and listed paths: what it refuses is
// never fetched (a target such as "@evil:443/../update.bin" would otherwise
// name another host once appended to an origin) and never written. Errors
// wrap ErrTarget.
func ParseTarget(s string) (Target, error) {
	if s == "" || s[0] != '/' {
		return Target{}, fmt.Errorf("%w: %q does not start with /", ErrTarget, Truncate(s))
	}
	if len(s) > maxPathLen {
		return Target{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTarget, len(s), maxPathLen)
	}
	rawPath, rawQuery, _ := strings.Cut(s, "?")
	rawPath = collapseSlashes(rawPath)
	if err := checkChars(rawPath, false); err != nil {
		return Target{}, fmt.Errorf("%w: %q: %v", ErrTarget, Truncate(s), err)
	}
	if err := checkChars(rawQuery, true); err != nil {
		return Target{}, fmt.Errorf("%w: %q: query: %v", ErrTarget, Truncate(s), err)
	}
	segs := strings.Split(rawPath[1:], "/")
	var path strings.Builder
	path.Grow(len(rawPath))
	for i, seg := range segs {
		last := i == len(segs)-1
		if seg == "" && !last {
			return Target{}, fmt.Errorf("%w: %q: empty segment", ErrTarget, Truncate(s)) // collapsed above: cannot happen
		}
		dec, err := url.PathUnescape(seg)
		if err != nil {
			return Target{}, fmt.Errorf("%w: %q: %v", ErrTarget, Truncate(s), err)
		}
		if err := checkSegment(dec); err != nil {
			return Target{}, fmt.Errorf("%w: %q: segment %d: %v", ErrTarget, Truncate(s), i+1, err)
		}
		path.WriteByte('/')
		path.WriteString(dec)
	}
	return Target{Path: path.String(), RawPath: rawPath, RawQuery: rawQuery}, nil
}

// collapseSlashes replaces each run of "/" in p by one.
func collapseSlashes(p string) string {
	if !strings.Contains(p, "//") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}

// checkChars accepts the characters of an RFC 3986 path (pchar and "/") or,
// with query, of a query (also "?"); a "%" must start an escape.
func checkChars(s string, query bool) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '?' && query:
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return fmt.Errorf("%%-escape at %d is not two hex digits", i)
			}
			i += 2
		default:
			return fmt.Errorf("byte %#x at %d is not allowed", c, i)
		}
	}
	return nil
}

// checkSegment refuses decoded segments that a file system would not take
// as one plain name.
func checkSegment(seg string) error {
	if seg == "." || seg == ".." {
		return fmt.Errorf("dot segment %q", seg)
	}
	if strings.HasPrefix(seg, ".") {
		return fmt.Errorf("%q names a hidden file", Truncate(seg))
	}
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return fmt.Errorf("decoded byte %#x is not allowed in a name", c)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// URL returns the target on origin: the scheme and host are origin's, and
// nothing of the target can change them.
func (t Target) URL(origin *url.URL) *url.URL {
	return &url.URL{Scheme: origin.Scheme, Host: origin.Host, Path: t.Path, RawPath: t.RawPath, RawQuery: t.RawQuery}
}

// Name is the slash-separated name under which a receiver stores the
// resource in its output folder: the decoded path without its leading "/",
// and "index.html" in a folder for a path that ends with "/". The query
// does not take part: the origin's file server ignores it too.
func (t Target) Name() string {
	name := t.Path[1:]
	if name == "" || strings.HasSuffix(name, "/") {
		name += "index.html"
	}
	return name
}

// String returns the target as sent (without a "?" that no query follows,
// runs of "/" collapsed).
func (t Target) String() string {
	if t.RawQuery == "" {
		return t.RawPath
	}
	return t.RawPath + "?" + t.RawQuery
}

// EscapeTarget returns the origin-form target of a decoded path (a file's
// request path, "/a b.txt"): each segment %-escaped as a path needs
// ("/a%20b.txt").
func EscapeTarget(path string) string {
	return (&url.URL{Path: path}).EscapedPath()
}
