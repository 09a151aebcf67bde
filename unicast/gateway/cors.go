package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// AnyOrigin in Config.CORSOrigins lets pages of every origin read the
// gateway's responses.
const AnyOrigin = "*"

// corsExposed are the response fields a player page on another origin may
// read beyond the CORS-safelisted ones: ranges, validators, digests, the
// Date a UTCTiming http-head source reads, and how the gateway got the
// resource.
const corsExposed = "Content-Length, Content-Range, Content-Digest, Repr-Digest, Digest, ETag, Last-Modified, Date, Age, " + ViaHeader

// corsMaxAge is how long a browser may cache a preflight answer (seconds).
const corsMaxAge = "600"

// cors is the gateway's cross-origin policy.
type cors struct {
	any     bool
	origins map[string]bool // serialized origins, lower case
}

func newCORS(origins []string) (cors, error) {
	c := cors{origins: map[string]bool{}}
	for _, o := range origins {
		if o == AnyOrigin {
			c.any = true
			continue
		}
		n, err := normalizeOrigin(o)
		if err != nil {
			return c, err
		}
		c.origins[n] = true
	}
	return c, nil
}

// normalizeOrigin checks that o is a serialized origin (scheme://host
// [:port], no path) and returns it in lower case.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("CORS origin %q: want %s or scheme://host[:port], e.g. http://localhost:3000", o, AnyOrigin)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// allowed reports whether a page of origin may read responses.
func (c cors) allowed(origin string) bool {
	if origin == "" {
		return false
	}
	return c.any || c.origins[strings.ToLower(origin)]
}

// apply adds the CORS fields of an actual (not preflight) response to h;
// it reports whether the request came from an allowed origin.
func (c cors) apply(h http.Header, r *http.Request) bool {
	if !c.any && len(c.origins) > 0 {
		h.Add("Vary", "Origin")
	}
	origin := r.Header.Get("Origin")
	if !c.allowed(origin) {
		return false
	}
	if c.any {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	h.Set("Access-Control-Expose-Headers", corsExposed)
	return true
}

// preflight answers an OPTIONS request: a CORS preflight from an allowed
// origin gets the methods and fields it asked for (the gateway holds
// nothing a page could abuse: no credentials are allowed, and session keys
// are never served); a plain OPTIONS gets Allow.
func (c cors) preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	method := r.Header.Get("Access-Control-Request-Method")
	origin := r.Header.Get("Origin")
	if origin == "" || method == "" {
		h.Set("Allow", "GET, HEAD, OPTIONS")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	if !c.allowed(origin) {
		http.Error(w, "h3m gateway: origin "+origin+" is not allowed (see h3m gateway --cors)", http.StatusForbidden)
		return
	}
	if method != http.MethodGet && method != http.MethodHead {
		h.Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "h3m gateway: only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	h.Set("Access-Control-Allow-Methods", "GET, HEAD")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	}
	// Private Network Access: a page of a public site may ask a gateway on
	// this machine or the local network.
	if r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
}

// ParseCORS parses the --cors value: "*" (any origin), "none" or "" (no
// cross-origin access), or a comma-separated list of origins.
func ParseCORS(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []string
	for _, o := range strings.Split(s, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != AnyOrigin {
			if _, err := normalizeOrigin(o); err != nil {
				return nil, err
			}
		}
		out = append(out, o)
	}
	return out, nil
}

// DefaultCORS is the policy for a gateway listening on addr (host:port):
// any origin when it listens on loopback only, where just this machine's
// pages reach it; none otherwise.
func DefaultCORS(addr string) []string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if strings.EqualFold(host, "localhost") {
		return []string{AnyOrigin}
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return []string{AnyOrigin}
	}
	return nil
}
