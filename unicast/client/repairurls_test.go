package client

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/h3m-project/h3m/mquic/ranges"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// testCache is a stand-in for a CDN cache: an HTTPS server (HTTP/2 and
// HTTP/1.1) that forwards GETs to the origin over HTTP/3, with the Range
// and If-Range fields of the request, and can tamper with what it serves.
type testCache struct {
	srv    *httptest.Server
	tamper bool
	// altSvc, when set, is sent as the Alt-Svc field of every response.
	altSvc atomic.Pointer[string]

	mu       sync.Mutex
	requests []*http.Request // the requests received (fields only)
	protos   map[string]int
}

func newTestCache(t *testing.T, h *origintest.Harness, tamper bool) *testCache {
	up := h.HTTPClient()
	tc := &testCache{tamper: tamper, protos: map[string]int{}}
	tc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tc.mu.Lock()
		tc.requests = append(tc.requests, &http.Request{Method: r.Method, URL: r.URL, Header: r.Header.Clone(), Proto: r.Proto})
		tc.protos[r.Proto]++
		tc.mu.Unlock()
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, "https://"+h.Addr+r.URL.RequestURI(), nil)
		for _, f := range []string{"Range", "If-Range"} {
			if v := r.Header.Get(f); v != "" {
				req.Header.Set(f, v)
			}
		}
		resp, err := up.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			if k != "Alt-Svc" {
				w.Header()[k] = v
			}
		}
		if v := tc.altSvc.Load(); v != nil {
			w.Header().Set("Alt-Svc", *v)
		}
		if tamper && len(body) > 0 {
			body[len(body)/2] ^= 0x5a
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	tc.srv.EnableHTTP2 = true
	tc.srv.StartTLS()
	t.Cleanup(tc.srv.Close)
	return tc
}

func (tc *testCache) received() []*http.Request {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return append([]*http.Request(nil), tc.requests...)
}

// cacheConfig is clientConfig trusting the caches' certificates too.
func cacheConfig(t *testing.T, h *origintest.Harness, caches ...*httptest.Server) Config {
	cfg := clientConfig(h)
	pool, err := LoadCertPool(h.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range caches {
		pool.AddCert(c.Certificate())
	}
	cfg.CAFile = ""
	cfg.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}
	return cfg
}

// downURL returns an https URL on which nothing listens.
func downURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "https://" + addr
}

// TestRepairThroughCaches: at 10 % loss, repairs go through the repair URLs
// in order: the first is down (it costs a retry, then every job skips it),
// the second serves tampered bytes (caught by the push's digests, counted,
// skipped for that resource), the third serves the right bytes. Every file
// arrives intact, the ranges asked of the caches are aligned to whole
// blocks, one per request, with If-Range and no Accept-Encoding.
func TestRepairThroughCaches(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 12, MinSize: 100 << 10, MaxSize: 300 << 10, Seed: 61, Loss: 0.10})
	bad := newTestCache(t, h, true)
	good := newTestCache(t, h, false)
	cfg := cacheConfig(t, h, bad.srv, good.srv)
	cfg.RepairURLs = []string{downURL(t), bad.srv.URL + "/", good.srv.URL}
	cfg.RepairBlock = 16 << 10
	if _, err := h.Pub.Start(unicasttest.Ad(t, "cache")); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(20*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)
	via := countVia(ds)
	if via[ViaRepair] == 0 {
		t.Fatalf("nothing repaired at 10%% loss: %v", via)
	}
	st := tc.c.Stats()
	t.Logf("deliveries %v; stats: cache requests %d, errors %d, rejected %d, bytes %d; requests %d",
		via, st.CacheRequests, st.CacheErrors, st.CacheRejected, st.CacheBytes, st.Requests)
	if st.CacheErrors == 0 || st.CacheErrors > 2*DefaultRepairConcurrency {
		t.Errorf("the cache that is down cost %d errors; want a few (the first requests in flight), not one per resource", st.CacheErrors)
	}
	if st.CacheRejected == 0 || len(bad.received()) == 0 {
		t.Errorf("the tampering cache was not caught: %d rejected, %d requests to it", st.CacheRejected, len(bad.received()))
	}
	if st.Failed != 0 || st.BadResponses != 0 {
		t.Errorf("a cache's fault counted against the resources: %+v", st)
	}
	reqs := good.received()
	if len(reqs) == 0 || st.CacheBytes == 0 {
		t.Fatalf("the good cache served nothing (%d requests, %d bytes)", len(reqs), st.CacheBytes)
	}
	for _, r := range reqs {
		if r.Header.Get("Accept-Encoding") != "" || r.Header.Get("Cookie") != "" {
			t.Errorf("%s: a field that splits a cache's key: %v", r.URL, r.Header)
		}
		rg := r.Header.Get("Range")
		if rg == "" {
			continue // a whole fetch: a push whose promise or headers were lost
		}
		if r.Header.Get("If-Range") == "" {
			t.Errorf("%s: no If-Range", r.URL)
		}
		size := int64(len(h.Content[r.URL.Path]))
		first, last, ok := parseOneRange(rg)
		if !ok {
			t.Errorf("%s: Range %q is not one range", r.URL, rg)
			continue
		}
		if first%cfg.RepairBlock != 0 || ((last+1)%cfg.RepairBlock != 0 && last != size-1) {
			t.Errorf("%s: Range %q of a %d-byte file is not aligned to %d-byte blocks", r.URL, rg, size, cfg.RepairBlock)
		}
	}
}

func parseOneRange(v string) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	f, err1 := strconv.ParseInt(a, 10, 64)
	l, err2 := strconv.ParseInt(b, 10, 64)
	return f, l, found && err1 == nil && err2 == nil
}

// TestFallbackThroughCache: multicast never arrives, so everything is
// fetched whole; the catalogue's digests prove a cache's copy, so the
// fetches go to the cache. A cache that tampers with every body is caught
// each time, and the origin serves them.
func TestFallbackThroughCache(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		t.Run(map[bool]string{false: "good", true: "tampering"}[tamper], func(t *testing.T) {
			h := origintest.New(t, origintest.Options{Files: 6, MaxSize: 80 << 10, Seed: 62})
			cache := newTestCache(t, h, tamper)
			tc := fetchAllThrough(t, h, cache, "cachefb", nil)
			st := tc.c.Stats()
			t.Logf("stats: fallback %d, cache requests %d, rejected %d, bytes %d", st.Fallback, st.CacheRequests, st.CacheRejected, st.CacheBytes)
			if st.CacheRequests == 0 {
				t.Fatal("no fetch went to the cache")
			}
			if tamper && st.CacheRejected == 0 {
				t.Error("the tampering cache was not caught")
			}
			if !tamper && (st.CacheRejected != 0 || st.CacheBytes == 0) {
				t.Errorf("the good cache: %d rejected, %d bytes", st.CacheRejected, st.CacheBytes)
			}
		})
	}
}

// TestCacheOverHTTP3: a cache that advertises HTTP/3 in Alt-Svc is asked
// over HTTP/3 from then on.
func TestCacheOverHTTP3(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 4, MaxSize: 40 << 10, Seed: 63})
	cache := newTestCache(t, h, false)
	udp, err := net.ListenPacket("udp", cache.srv.Listener.Addr().String())
	if err != nil {
		t.Skipf("no UDP port beside the cache's TCP port: %v", err)
	}
	h3s := &http3.Server{TLSConfig: http3.ConfigureTLSConfig(cache.srv.TLS.Clone()), Handler: cache.srv.Config.Handler}
	go h3s.Serve(udp)
	t.Cleanup(func() { h3s.Close(); udp.Close() })
	altSvc := `h3=":` + strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port) + `"; ma=60, h2=":443"`
	cache.altSvc.Store(&altSvc)
	fetchAllThrough(t, h, cache, "cacheh3", func(cfg *Config) {
		cfg.RepairConcurrency = 1 // one request first, over TCP, then HTTP/3
	})
	cache.mu.Lock()
	protos := cache.protos
	cache.mu.Unlock()
	if protos["HTTP/3.0"] == 0 || protos["HTTP/2.0"] == 0 {
		t.Errorf("requests to the cache by protocol: %v; want HTTP/2 first, then HTTP/3", protos)
	}
}

// fetchAllThrough runs a client whose only repair URL is cache while
// multicast never arrives: every file is fetched whole, and checked.
func fetchAllThrough(t *testing.T, h *origintest.Harness, cache *testCache, session string, adjust func(*Config)) *testClient {
	t.Helper()
	h.SetDrop(func([]byte) bool { return true })
	cfg := cacheConfig(t, h, cache.srv)
	cfg.RepairURLs = []string{cache.srv.URL}
	cfg.FallbackAfter = 300 * time.Millisecond
	if adjust != nil {
		adjust(&cfg)
	}
	if _, err := h.Pub.Start(unicasttest.Ad(t, session)); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	tc.checkExact(h, h.Paths)
	return tc
}

func TestH3Endpoint(t *testing.T) {
	u, _ := url.Parse("https://cache.example:8443/x")
	for _, tc := range []struct {
		vals []string
		want string
	}{
		{[]string{`h3=":443"`}, "cache.example:443"},
		{[]string{`h2=":443", h3=":8443"; ma=3600`}, "cache.example:8443"},
		{[]string{`h3="cache.example:9"`}, "cache.example:9"},
		{[]string{`h3="other.example:443"`}, ""},
		{[]string{`h3=":x"`, `clear`}, ""},
		{[]string{`h3-29=":443"`}, ""},
		{[]string{`h3=:443`}, ""},
	} {
		if got := h3Endpoint(tc.vals, u); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.vals, got, tc.want)
		}
	}
}

// FuzzH3Endpoint: Alt-Svc comes from a cache, which is not trusted: it
// never sends the client to another host.
func FuzzH3Endpoint(f *testing.F) {
	f.Add(`h3=":443"; ma=60, h2=":443"`)
	u, _ := url.Parse("https://cache.example/")
	f.Fuzz(func(t *testing.T, v string) {
		ep := h3Endpoint([]string{v}, u)
		if ep == "" {
			return
		}
		host, port, err := net.SplitHostPort(ep)
		if err != nil || host != "cache.example" || port == "" {
			t.Fatalf("%q gave %q", v, ep)
		}
	})
}

// TestRepairTierAllows: requests go to a cache only for an origin-form
// target under its base path; the description and keys never.
func TestRepairTierAllows(t *testing.T) {
	tier := &repairTier{}
	if err := tier.set([]string{"https://cache.example/h3m/", "https://other.example"}); err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]bool{
		"https://cache.example/h3m/a.bin":              true,
		"https://cache.example/h3m/d/a%20b.bin?v=1":    true,
		"https://other.example/a.bin":                  true,
		"https://cache.example/a.bin":                  false,
		"https://cache.example/h3mx/a.bin":             false,
		"https://cache.example/h3m/../a.bin":           false,
		"https://other.example/.well-known/h3m":        false,
		"https://other.example/.well-known/h3m/keys/k": false,
		"http://other.example/a.bin":                   false,
		"https://u@other.example/a.bin":                false,
		"https://evil.example/a.bin":                   false,
		// Signed catalogue entries, by push ID or by stream ID: the one
		// exception under /.well-known/ (their signatures prove them).
		"https://other.example/.well-known/h3m/catalog/0a0b/7":          true,
		"https://other.example/.well-known/h3m/catalog/0a0b/stream/7":   true,
		"https://other.example/.well-known/h3m/catalog/0a0b/stream/7?x": false,
		"https://other.example/.well-known/h3m/catalog/0a0b/stream/07":  false,
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := tier.allows(&http.Request{URL: u}) != nil; got != want {
			t.Errorf("%s: allowed %v, want %v", raw, got, want)
		}
	}
}

func TestAlignRepair(t *testing.T) {
	c := &Client{tier: &repairTier{block: 100}}
	c.tier.set([]string{"https://cache.example"})
	h := http.Header{"Digest": {"SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}}
	got := c.alignRepair([]ranges.Range{{Start: 5, End: 6}, {Start: 150, End: 260}, {Start: 290, End: 310}, {Start: 990, End: 995}}, 0, 995, 995, h)
	want := []ranges.Range{{Start: 0, End: 400}, {Start: 900, End: 995}} // adjacent blocks join
	if len(got) != len(want) {
		t.Fatalf("%v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%v, want %v", got, want)
		}
	}
	// A copy that starts inside a block is not asked for bytes it does
	// not cover.
	if got := c.alignRepair([]ranges.Range{{Start: 1010, End: 1020}}, 1005, 100, 2000, h); got[0] != (ranges.Range{Start: 1005, End: 1100}) {
		t.Errorf("clipped: %v", got)
	}
	if got := (&Client{tier: &repairTier{block: 100}}).alignRepair([]ranges.Range{{Start: 5, End: 6}}, 0, 995, 995, h); got[0] != (ranges.Range{Start: 5, End: 6}) {
		t.Errorf("without caches the ranges change: %v", got)
	}
	// No digest: no cache may serve it, the origin is asked for the bytes
	// lost.
	if got := c.alignRepair([]ranges.Range{{Start: 5, End: 6}}, 0, 995, 995, http.Header{}); got[0] != (ranges.Range{Start: 5, End: 6}) {
		t.Errorf("a repair no cache may serve is aligned: %v", got)
	}
}

// TestProvable: a cache may serve a resource only when the origin gave a
// digest the client computes that covers every byte it will get.
func TestProvable(t *testing.T) {
	const sum = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"
	const sumDigest = "SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
	c := &Client{tier: &repairTier{}, current: map[string]int{"/lost-head": 0},
		catalog: []wellknown.CatalogEntry{{Path: "/lost-head", ETag: `"c"`, ContentDigest: sum, Session: "0a", PushID: 3}}}
	if err := c.tier.set([]string{"https://cache.example"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		j    job
		want bool
	}{
		{"repair, Digest", job{repair: true, header: http.Header{"Digest": {sumDigest}}, length: 10, total: 20}, true},
		{"repair, Content-Digest of the whole", job{repair: true, header: http.Header{"Content-Digest": {sum}}, length: 20, total: 20}, true},
		{"repair, Content-Digest of a part", job{repair: true, header: http.Header{"Content-Digest": {sum}}, first: 5, length: 10, total: 20}, false},
		{"repair, unknown algorithm", job{repair: true, header: http.Header{"Digest": {"x-unknown=abcd"}}, length: 20, total: 20}, false},
		{"repair, no digest", job{repair: true, header: http.Header{}, length: 20, total: 20}, false},
		{"fetch, catalogue digest", job{etag: `"e"`, expect: http.Header{"Content-Digest": {sum}}}, true},
		{"fetch, pushed digest of the same ETag", job{etag: `"e"`, header: http.Header{"Etag": {`"e"`}, "Repr-Digest": {sum}}}, true},
		{"fetch, pushed digest of another ETag", job{etag: `"e"`, header: http.Header{"Etag": {`"f"`}, "Repr-Digest": {sum}}}, false},
		{"fetch, no ETag", job{expect: http.Header{"Content-Digest": {sum}}}, false},
		// A push whose headers were lost: the catalogue's entry for that
		// very push proves the copy.
		{"fetch, the catalogue's entry of the push", job{path: "/lost-head", session: "0a", pushID: 3}, true},
		{"fetch, the catalogue lists another push", job{path: "/lost-head", session: "0a", pushID: 2}, false},
	} {
		if got := c.provable(&tc.j); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if tc.j.path == "/lost-head" && tc.want && (tc.j.etag != `"c"` || tc.j.expect.Get("Content-Digest") != sum) {
			t.Errorf("%s: the job did not take the catalogue's ETag and digest: %q %v", tc.name, tc.j.etag, tc.j.expect)
		}
	}
}
