package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// DefaultRepairBlock is Config.RepairBlock's default.
const DefaultRepairBlock = 64 << 10

// ErrUnproven is wrapped by the error of a cache's answer the client could
// not check against what the session proves (no digest from the origin,
// the catalogue or the push applies to it): a cache is not trusted for
// content, so the resource is fetched from the next URL, at last the
// origin.
var ErrUnproven = errors.New("client: a cache's answer cannot be checked against the session")

// The repair tier (spec/unicast.md, "Repair through caches"): the base URLs
// of the HTTP caches a CDN runs near its receivers, tried nearest first for
// every repair and fallback request whose bytes the session proves, with
// the origin last. A cache is not trusted for content: every byte it
// serves is checked against the digests the origin gave (the push, the
// catalogue), and a cache whose bytes fail is skipped for that resource,
// counted and logged. A cache that does not answer is skipped by every job
// for a while (cacheDownFor), so that it costs one retry, not one per
// resource.

// cacheDownFor is how long a cache that failed at the network, or with a
// server error, is skipped by every job: the next answers meanwhile.
const cacheDownFor = 10 * time.Second

// cacheDialTimeout bounds the connection to a cache.
const cacheDialTimeout = 3 * time.Second

// repairBase is one cache of the tier.
type repairBase struct {
	url *url.URL // normalised (wellknown.ParseRepairURL)
	// downUntil: skipped until then after a failure.
	downUntil time.Time
	// h3 is the UDP address of the HTTP/3 endpoint the cache advertised
	// in Alt-Svc ("" none): requests go there while it answers.
	h3 string
}

// repairTier holds the client's caches and the transports that reach them:
// HTTP/3 where a cache advertises it, else HTTP/2 or HTTP/1.1 over TLS
// (ALPN), the standard library's client.
type repairTier struct {
	log   *slog.Logger
	tcp   *http.Transport
	h3    *http3.Transport
	fixed bool // Config.RepairURLs given: the description does not change them
	block int64

	mu    sync.Mutex
	bases []*repairBase
}

func newRepairTier(cfg *Config, tlsConf *tls.Config, qc *quic.Config) (*repairTier, error) {
	t := &repairTier{log: cfg.Logger, block: cfg.RepairBlock}
	tc := tlsConf.Clone()
	t.tcp = &http.Transport{
		// A cache host that is down may not even refuse: do not wait for
		// the whole RequestTimeout before trying the next URL.
		DialContext:       (&net.Dialer{Timeout: min(cacheDialTimeout, cfg.RequestTimeout)}).DialContext,
		TLSClientConfig:   tc,
		ForceAttemptHTTP2: true, // ALPN: h2 where the cache offers it, else HTTP/1.1
		// No Accept-Encoding: a coding would change the bytes (and the
		// ranges) the digests cover, and a field the cache varies on would
		// split its key.
		DisableCompression:    true,
		MaxIdleConnsPerHost:   cfg.RepairConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: cfg.RequestTimeout,
		Proxy:                 nil, // the tier is the proxy
	}
	t.h3 = &http3.Transport{TLSClientConfig: tlsConf.Clone(), QUICConfig: qc, DisableCompression: true, Logger: cfg.Logger,
		Dial: t.dialH3}
	if len(cfg.RepairURLs) > 0 {
		if err := t.set(cfg.RepairURLs); err != nil {
			return nil, fmt.Errorf("client: Config.RepairURLs: %w", err)
		}
		t.fixed = true
	}
	return t, nil
}

// set replaces the bases by urls, keeping what is known of those that stay.
func (t *repairTier) set(urls []string) error {
	if len(urls) > wellknown.MaxRepairURLs {
		return fmt.Errorf("%d repair URLs, limit %d", len(urls), wellknown.MaxRepairURLs)
	}
	next := make([]*repairBase, 0, len(urls))
	for _, v := range urls {
		u, err := wellknown.ParseRepairURL(v)
		if err != nil {
			return err
		}
		next = append(next, &repairBase{url: u})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range next {
		for _, o := range t.bases {
			if o.url.String() == n.url.String() {
				*n = *o
			}
		}
	}
	t.bases = next
	return nil
}

// listed takes the repair URLs of a description read from the origin.
func (t *repairTier) listed(urls []string) {
	if t.fixed {
		return
	}
	if err := t.set(urls); err != nil {
		// Parse checked them already; keep the last good list.
		t.log.Warn("ignoring the repair URLs of the description", "err", err)
	}
}

func (t *repairTier) close() {
	t.tcp.CloseIdleConnections()
	t.h3.Close()
}

// count returns the number of caches.
func (t *repairTier) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.bases)
}

// tierState is a job's use of the tier.
type tierState struct {
	// cur is the base URL of the last request ("": the origin).
	cur string
	// skip are the bases whose answers for this resource failed its checks.
	skip map[string]bool
	// wrote are the bases whose bytes are in the repaired body now.
	wrote map[string]bool
}

// pick returns the URL of target for j's next request: the first cache
// that is up and not skipped for j, when j's bytes can be proved; else the
// origin. It records the choice in j.tier.cur.
func (c *Client) pick(j *job, t wellknown.Target) *url.URL {
	j.tier.cur = ""
	if b := c.nextBase(j); b != nil {
		j.tier.cur = b.String()
		return t.On(b)
	}
	return t.URL(c.origin)
}

// nextBase returns the cache j's next request goes to, or nil for the
// origin.
func (c *Client) nextBase(j *job) *url.URL {
	if !c.provable(j) {
		return nil
	}
	now := time.Now()
	c.tier.mu.Lock()
	defer c.tier.mu.Unlock()
	for _, b := range c.tier.bases {
		if now.Before(b.downUntil) || j.tier.skip[b.url.String()] {
			continue
		}
		return b.url
	}
	return nil
}

// provable reports whether the origin gave what checks every byte of j's
// resource, in an algorithm the client computes: a digest of the push over
// the whole representation (a repair) or one the catalogue lists or the
// push carried for its ETag (a fetch). Only then may a cache serve it.
func (c *Client) provable(j *job) bool {
	whole := j.first == 0 && j.length == j.total
	if j.repair {
		return checkable(j.header, whole, false)
	}
	if j.etag == "" {
		c.adoptCatalogue(j)
	}
	if j.etag == "" {
		return false
	}
	if checkable(j.expect, true, true) {
		return true // the catalogue's, for the ETag it lists
	}
	return j.header != nil && j.header.Get("Etag") == j.etag && checkable(j.header, whole, true)
}

// adoptCatalogue gives a whole fetch of a push whose headers were lost (no
// ETag) the ETag and digests the catalogue lists for that same push
// (session and push ID), when it lists it as its path's current entry: the
// copy is then checked against them, and a cache may serve it.
func (c *Client) adoptCatalogue(j *job) {
	if c.tier.count() == 0 || j.session == "" {
		return
	}
	c.mu.Lock()
	e, ok := c.currentLocked(j.path)
	c.mu.Unlock()
	if !ok || e.Session != j.session || e.PushID != j.pushID || e.ETag == "" || (e.ContentDigest == "" && e.Digest == "") {
		return
	}
	j.etag = e.ETag
	if j.expect == nil {
		j.expect = http.Header{}
	}
	if e.ContentDigest != "" {
		j.expect.Set(integrity.FieldContentDigest, e.ContentDigest)
	}
	if e.Digest != "" {
		j.expect.Set(integrity.FieldDigest, e.Digest)
	}
}

// checkable reports whether h holds a digest field the client can verify:
// Digest, Content-Digest when it covers the whole representation, and
// Repr-Digest when repr (a whole fetch: the multicast copy's checks do not
// read it).
func checkable(h http.Header, whole, repr bool) bool {
	if h == nil {
		return false
	}
	supported := func(vals []integrity.DigestValue, err error) bool {
		for _, v := range vals {
			if _, ok := integrity.CanonicalDigestAlgorithm(v.Algorithm); ok && err == nil {
				return true
			}
		}
		return false
	}
	if v := h.Get(integrity.FieldDigest); v != "" && supported(integrity.ParseDigest(v)) {
		return true
	}
	if v := h.Get(integrity.FieldContentDigest); v != "" && whole && supported(integrity.ParseContentDigest(v)) {
		return true
	}
	v := h.Get("Repr-Digest")
	return repr && v != "" && supported(integrity.ParseContentDigest(v))
}

// fromCache reports whether j's last request went to a cache.
func (j *job) fromCache() bool { return j.tier.cur != "" }

// cacheFailed handles the failure of an attempt of j whose last request
// went to a cache, or whose repaired body holds bytes a cache served: the
// cache is skipped (for a while for every job after a network failure or
// server error; for this resource after a bad answer), counted and logged,
// and the error becomes a plain retry, which goes to the next URL. Bytes
// the caches wrote that the checks refused are fetched again. Other
// errors are returned as they are.
func (c *Client) cacheFailed(j *job, err error) error {
	cur := j.tier.cur
	if cur == "" && len(j.tier.wrote) == 0 {
		return err
	}
	var ae *attemptError
	bad := errors.As(err, &ae) && ae.bad
	if !bad && cur == "" {
		return err // the origin did not answer: the caches are not at fault
	}
	if !bad {
		c.tier.mu.Lock()
		for _, b := range c.tier.bases {
			if b.url.String() == cur {
				b.downUntil = time.Now().Add(cacheDownFor)
			}
		}
		c.tier.mu.Unlock()
		c.count(func(st *Stats) { st.CacheErrors++ })
		c.log.Info("a cache did not answer; using the next repair URL", "cache", cur, "path", j.path, "err", err)
		return err
	}
	if j.tier.skip == nil {
		j.tier.skip = make(map[string]bool)
	}
	blamed := make([]string, 0, 1+len(j.tier.wrote))
	if cur != "" {
		blamed = append(blamed, cur)
	}
	for b := range j.tier.wrote {
		if b != cur {
			blamed = append(blamed, b)
		}
	}
	for _, b := range blamed {
		j.tier.skip[b] = true
	}
	if len(j.tier.wrote) > 0 {
		// What any cache wrote is not proved: fetch every range again.
		j.remaining = append(j.remaining[:0], j.d.RepairRanges...)
		clear(j.tier.wrote)
		j.reprDigest = ""
	}
	c.count(func(st *Stats) { st.CacheRejected++ })
	c.log.Warn("a cache's answer failed the session's checks; fetching it from the next repair URL", "cache", strings.Join(blamed, " "), "path", j.path, "err", err)
	return transientErr(fmt.Errorf("client: cache %s: %w", strings.Join(blamed, " "), unwrapAttempt(err)))
}

// wroteFromCache records that j's last request, to a cache, wrote bytes
// into the repaired body.
func (c *Client) wroteFromCache(j *job, n int64) {
	b := j.tier.cur
	if b == "" || n == 0 {
		return
	}
	if j.tier.wrote == nil {
		j.tier.wrote = make(map[string]bool)
	}
	j.tier.wrote[b] = true
}

// alignRepair widens the ranges to fetch of a copy covering [first,
// first+length) of a representation of total bytes (-1 unknown), pushed
// with fields h, to whole blocks of the tier's block size, clipped to the
// copy: receivers that lost different bytes of a block ask for the same
// range, which a cache serves from one upstream fetch. Without caches, or
// for a copy no cache may serve (provable), the ranges are kept as they are
// (the origin serves any range at the same cost).
func (c *Client) alignRepair(rs []ranges.Range, first, length, total int64, h http.Header) []ranges.Range {
	if !checkable(h, first == 0 && length == total, false) {
		return rs
	}
	bs := uint64(c.tier.block)
	if c.tier.count() == 0 || bs == 0 || len(rs) == 0 {
		return rs
	}
	lo, hi := uint64(first), uint64(first+length)
	out := make([]ranges.Range, 0, len(rs))
	for _, r := range rs {
		s, e := r.Start/bs*bs, (r.End+bs-1)/bs*bs
		s, e = max(s, lo), min(e, hi)
		if n := len(out); n > 0 && s <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, e)
			continue
		}
		out = append(out, ranges.Range{Start: s, End: e})
	}
	return out
}

// rangesPerRequest is how many ranges j's next range request may ask for:
// one for a cache when repairs are aligned to blocks (a slicing cache
// serves a multipart answer worst, and one aligned range is what it shares
// between receivers), MaxRanges otherwise (the origin, or a cache keyed on
// the exact ranges, which receivers that lost the same bytes ask alike).
func (c *Client) rangesPerRequest(j *job) int {
	if c.nextBase(j) != nil && c.tier.block > 1 {
		return 1
	}
	return c.cfg.MaxRanges
}

// allows reports whether r is for one of the tier's caches, with an
// origin-form target under its base path.
func (t *repairTier) allows(r *http.Request) *repairBase {
	u := r.URL
	if u.Scheme != "https" || u.User != nil || u.Fragment != "" || (r.Host != "" && r.Host != u.Host) {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range t.bases {
		if b.url.Host != u.Host {
			continue
		}
		rest, ok := strings.CutPrefix(u.EscapedPath(), b.url.EscapedPath())
		if !ok {
			continue
		}
		target := rest
		if u.RawQuery != "" {
			target += "?" + u.RawQuery
		}
		if _, err := wellknown.ParseTarget(target); err != nil {
			// The one path under wellknown.Path a cache may serve: a
			// signed catalogue entry (signedentries.go).
			if _, ok := wellknown.ParseCatalogEntryRef(rest); !ok || u.RawQuery != "" {
				continue
			}
		}
		return b
	}
	return nil
}

// roundTrip sends r to cache b: over HTTP/3 when b advertised it (falling
// back to TCP if that fails at the network), else over TLS on TCP.
func (t *repairTier) roundTrip(r *http.Request, b *repairBase) (*http.Response, error) {
	t.mu.Lock()
	h3 := b.h3
	t.mu.Unlock()
	if h3 != "" {
		resp, err := t.h3.RoundTrip(r)
		if err == nil {
			return resp, nil
		}
		if r.Context().Err() != nil {
			return nil, err
		}
		t.log.Info("a cache's HTTP/3 endpoint failed; using TLS over TCP", "cache", b.url.String(), "h3", h3, "err", err)
		t.mu.Lock()
		if b.h3 == h3 {
			b.h3 = ""
		}
		t.mu.Unlock()
	}
	resp, err := t.tcp.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if ep := h3Endpoint(resp.Header.Values("Alt-Svc"), r.URL); ep != "" {
		t.mu.Lock()
		if b.h3 == "" {
			t.log.Debug("a cache offers HTTP/3", "cache", b.url.String(), "h3", ep)
		}
		b.h3 = ep
		t.mu.Unlock()
	}
	return resp, nil
}

// dialH3 dials the HTTP/3 endpoint a cache advertised for addr (the
// URL's host and port).
func (t *repairTier) dialH3(ctx context.Context, addr string, tlsConf *tls.Config, qc *quic.Config) (*quic.Conn, error) {
	t.mu.Lock()
	to := ""
	for _, b := range t.bases {
		if hostPort(b.url) == addr && b.h3 != "" {
			to = b.h3
		}
	}
	t.mu.Unlock()
	if to == "" {
		return nil, fmt.Errorf("client: no HTTP/3 endpoint known for cache %s", addr)
	}
	return quic.DialAddrEarly(ctx, to, tlsConf, qc)
}

// hostPort is u's host with its port (443 when none).
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	return net.JoinHostPort(u.Hostname(), "443")
}

// h3Endpoint returns the UDP address of the first "h3" alternative of an
// Alt-Svc field (RFC 7838) of a response to u, "" for none. Only an
// alternative on the same host is taken (an empty host, as in h3=":443",
// or the host of u): the certificate is checked for u's host anyway, and a
// cache cannot send the client elsewhere. "clear" and ma or persist
// parameters need no handling: the alternative is used while it answers.
// The h3m package's parser reads h3m alternatives only; this one reads the
// plain h3 form, which is all a cache advertises.
func h3Endpoint(vals []string, u *url.URL) string {
	for _, v := range vals {
		for alt := range strings.SplitSeq(v, ",") {
			alt, _, _ = strings.Cut(alt, ";")
			proto, auth, ok := strings.Cut(strings.TrimSpace(alt), "=")
			if !ok || strings.TrimSpace(proto) != "h3" {
				continue
			}
			auth = strings.TrimSpace(auth)
			if len(auth) < 2 || auth[0] != '"' || auth[len(auth)-1] != '"' {
				continue
			}
			host, port, err := net.SplitHostPort(auth[1 : len(auth)-1])
			if err != nil || !allDigits(port) || len(port) > 5 {
				continue
			}
			switch host {
			case "":
				host = u.Hostname()
			case u.Hostname():
			default:
				continue
			}
			return net.JoinHostPort(host, port)
		}
	}
	return ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// cacheBody counts the body bytes a cache answered.
type cacheBody struct {
	io.ReadCloser
	c *Client
}

func (b *cacheBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.count(func(st *Stats) { st.CacheBytes += int64(n) })
	}
	return n, err
}
