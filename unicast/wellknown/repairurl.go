package wellknown

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrRepairURL is wrapped by the errors of ParseRepairURL.
var ErrRepairURL = errors.New("wellknown: not a repair base URL")

// ParseRepairURL checks a repair base URL (Description.RepairURLs, the
// --repair-url flags) and returns it normalised: an absolute https URL
// with a host, no user information, query or fragment, and a path that is
// empty or an absolute path; the scheme and host are lower-cased and a
// trailing "/" is dropped, so that "https://Cache.example/h3m/" and
// "https://cache.example/h3m" name the same base.
func ParseRepairURL(s string) (*url.URL, error) {
	if len(s) > maxPathLen {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrRepairURL, len(s), maxPathLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v", ErrRepairURL, Truncate(s), err)
	}
	switch {
	case !strings.EqualFold(u.Scheme, "https"):
		return nil, fmt.Errorf("%w: %q: scheme %q, want https (the bytes are checked, but the URLs requested are not for the network to see)", ErrRepairURL, Truncate(s), u.Scheme)
	case u.Host == "" || u.Opaque != "":
		return nil, fmt.Errorf("%w: %q: no host", ErrRepairURL, Truncate(s))
	case u.User != nil:
		return nil, fmt.Errorf("%w: %q: user information is not allowed", ErrRepairURL, Truncate(s))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(s, "?#"):
		return nil, fmt.Errorf("%w: %q: a base URL has no query or fragment", ErrRepairURL, Truncate(s))
	case !hostChars(u.Host):
		return nil, fmt.Errorf("%w: %q: the host holds bytes other than letters, digits, \"-._:[]\"", ErrRepairURL, Truncate(s))
	case u.Port() != "" && !allDigits(u.Port()):
		return nil, fmt.Errorf("%w: %q: port %q", ErrRepairURL, Truncate(s), u.Port())
	}
	base := &url.URL{Scheme: "https", Host: strings.ToLower(u.Host)}
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
		t, err := ParseTarget(p)
		if err == nil && strings.HasSuffix(t.RawPath, "/") {
			err = errors.New("empty segment")
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %q: path: %v", ErrRepairURL, Truncate(s), err)
		}
		base.Path, base.RawPath = t.Path, t.RawPath
	}
	return base, nil
}

// hostChars accepts a DNS name or an IP literal with a port: no
// %-escapes, no bytes beyond ASCII.
func hostChars(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._:[]", c) >= 0) {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// On returns the URL of t under the repair base URL base (as
// ParseRepairURL returns it): base's scheme and host, base's path followed
// by t's.
func (t Target) On(base *url.URL) *url.URL {
	u := &url.URL{Scheme: base.Scheme, Host: base.Host, Path: base.Path + t.Path, RawQuery: t.RawQuery}
	if base.RawPath != "" || t.RawPath != t.Path {
		u.RawPath = base.EscapedPath() + t.RawPath
	}
	return u
}
