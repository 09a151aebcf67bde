package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

func entry(path, body, via string) *Entry {
	return &Entry{Path: path, Header: http.Header{"Content-Type": {"video/mp4"}, "Etag": {`"x"`}},
		Body: strings.NewReader(body), Size: int64(len(body)), ModTime: time.Unix(1700000000, 0), Via: via}
}

// upstream is a stand-in for the unicast server that records the paths it
// was asked for.
type upstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	paths []string
}

func (u *upstream) hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.paths)
}

func newUpstream(t *testing.T) *upstream {
	up := &upstream{}
	up.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up.mu.Lock()
		up.paths = append(up.paths, r.URL.Path)
		up.mu.Unlock()
		w.Header().Set("Alt-Svc", `h3m-11="232.1.1.1:5000"`)
		w.Header().Set("Access-Control-Allow-Origin", "https://upstream.example")
		switch {
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
			return
		case strings.HasSuffix(r.URL.Path, ".ts"):
			w.Header().Set("Content-Type", "text/vnd.trolltech.linguist") // a host MIME database's idea
		case strings.HasPrefix(r.URL.Path, "/cached"):
			w.Header().Set("Cache-Control", "max-age=7")
		}
		io.WriteString(w, "from upstream "+r.URL.Path)
	}))
	t.Cleanup(up.srv.Close)
	return up
}

func newTestGateway(t *testing.T, cfg Config) (*Gateway, *Store, *upstream) {
	t.Helper()
	up := newUpstream(t)
	u, _ := url.Parse(up.srv.URL)
	if cfg.Store == nil {
		cfg.Store = NewStore(1 << 20)
	}
	cfg.Upstream, cfg.Transport = u, http.DefaultTransport
	if cfg.HoldTimeout == 0 {
		cfg.HoldTimeout = time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, cfg.Store, up
}

func do(t *testing.T, h http.Handler, method, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, h, "GET", path, hdr...)
}

func TestServeStoredWithRanges(t *testing.T) {
	g, store, up := newTestGateway(t, Config{HoldTimeout: time.Second})
	store.Put(entry("/live/seg-1.m4s", "0123456789", client.ViaMulticast))
	w := get(t, g, "/live/seg-1.m4s")
	if w.Code != 200 || w.Body.String() != "0123456789" || w.Header().Get(ViaHeader) != client.ViaMulticast {
		t.Fatalf("%d %q %v", w.Code, w.Body, w.Header())
	}
	w = get(t, g, "/live/seg-1.m4s", "Range", "bytes=2-4")
	if w.Code != 206 || w.Body.String() != "234" || w.Header().Get("Content-Range") != "bytes 2-4/10" {
		t.Fatalf("range: %d %q", w.Code, w.Body)
	}
	if up.hits() != 0 {
		t.Fatal("upstream asked for a stored entry")
	}
	st := g.Status()
	if st.Served[client.ViaMulticast] != 2 || st.ServedBytes[client.ViaMulticast] != 13 || st.MulticastShare != 1 {
		t.Fatalf("status %+v", st)
	}
}

// TestPartialResponsesCarryNoWholeContentDigest: a push's Content-Digest
// covers its whole body; a 206 (single or multipart) or 304 must not carry
// it (RFC 9530 §2), but keeps the representation's digest as Repr-Digest.
func TestPartialResponsesCarryNoWholeContentDigest(t *testing.T) {
	g, store, _ := newTestGateway(t, Config{})
	e := entry("/files/a.bin", "0123456789", client.ViaRepair)
	const cd = "sha-256=:hx4Fv4f1Mfp4hhCNoq9WLAgtNGi/7xGd5AvVOQ8Gr+A=:"
	e.Header.Set("Content-Digest", cd)
	e.Header.Set("Digest", "SHA-256=hx4Fv4f1Mfp4hhCNoq9WLAgtNGi/7xGd5AvVOQ8Gr+A=")
	store.Put(e)

	w := get(t, g, "/files/a.bin")
	if w.Code != 200 || w.Header().Get("Content-Digest") != cd || w.Header().Get("Repr-Digest") != cd {
		t.Fatalf("full response: %d %v", w.Code, w.Header())
	}
	for _, rg := range []string{"bytes=0-3", "bytes=0-1,5-6"} {
		w = get(t, g, "/files/a.bin", "Range", rg)
		if w.Code != 206 {
			t.Fatalf("%s: %d", rg, w.Code)
		}
		if w.Header().Get("Content-Digest") != "" || w.Header().Get("Repr-Digest") != cd {
			t.Errorf("%s: 206 with Content-Digest %q, Repr-Digest %q", rg, w.Header().Get("Content-Digest"), w.Header().Get("Repr-Digest"))
		}
	}
	w = get(t, g, "/files/a.bin", "If-None-Match", `"x"`)
	if w.Code != 304 || w.Header().Get("Content-Digest") != "" {
		t.Errorf("304: %d %v", w.Code, w.Header())
	}
	w = get(t, g, "/files/a.bin", "Range", "bytes=50-60")
	if w.Code != 416 || w.Header().Get("Content-Digest") != "" || w.Header().Get("Repr-Digest") != "" || w.Header().Get("Etag") != "" {
		t.Errorf("416: %d %v", w.Code, w.Header())
	}
}

// TestMediaTypesFromTable: the built-in table decides, whatever the push
// or the upstream said; unknown names keep the origin's type, else
// application/octet-stream (never sniffed).
func TestMediaTypesFromTable(t *testing.T) {
	g, store, _ := newTestGateway(t, Config{})
	for p, ct := range map[string]string{
		"/live/manifest.mpd": "text/xml", "/live/seg.m4s": "", "/hls/seg-1.ts": "text/vnd.trolltech.linguist",
		"/hls/index.m3u8": "audio/x-mpegurl", "/subs/en.vtt": "", "/c/v.cmfv": "", "/c/a.cmfa": "",
		"/README": "text/markdown", "/blob": "",
	} {
		e := entry(p, "<html>looks like html</html>", client.ViaMulticast)
		e.Header = http.Header{}
		if ct != "" {
			e.Header.Set("Content-Type", ct)
		}
		store.Put(e)
	}
	for p, want := range map[string]string{
		"/live/manifest.mpd": "application/dash+xml", "/live/seg.m4s": "video/iso.segment", "/hls/seg-1.ts": "video/mp2t",
		"/hls/index.m3u8": "application/vnd.apple.mpegurl", "/subs/en.vtt": "text/vtt; charset=utf-8",
		"/c/v.cmfv": "video/mp4", "/c/a.cmfa": "audio/mp4", "/README": "text/markdown", "/blob": "application/octet-stream",
		"/upstream/seg-9.ts": "video/mp2t", // passed through: the table wins there too
	} {
		if got := get(t, g, p).Header().Get("Content-Type"); got != want {
			t.Errorf("%s: Content-Type %q, want %q", p, got, want)
		}
	}
}

// TestCORS: a page on another origin may read responses when --cors
// allows its origin, preflights are answered, and X-H3m-Via is exposed.
func TestCORS(t *testing.T) {
	const page = "http://127.0.0.1:9999"
	none, store, _ := newTestGateway(t, Config{})
	store.Put(entry("/a.m4s", "abc", client.ViaMulticast))
	if w := get(t, none, "/a.m4s", "Origin", page); w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no CORS configured, yet %v", w.Header())
	}
	if w := do(t, none, "OPTIONS", "/a.m4s", "Origin", page, "Access-Control-Request-Method", "GET"); w.Code != 403 {
		t.Errorf("preflight without CORS: %d", w.Code)
	}

	anyG, store, _ := newTestGateway(t, Config{CORSOrigins: []string{AnyOrigin}})
	store.Put(entry("/a.m4s", "abc", client.ViaMulticast))
	w := get(t, anyG, "/a.m4s", "Origin", page)
	if w.Header().Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), ViaHeader) {
		t.Errorf("any origin: %v", w.Header())
	}
	w = get(t, anyG, "/upstream.m4s", "Origin", page) // fetched: the upstream's own CORS fields are not passed on
	if got := w.Header().Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "*" {
		t.Errorf("proxied response: Access-Control-Allow-Origin %q", got)
	}
	for _, path := range []string{"/a.m4s", TimePath, StatusJSONPath} {
		w = do(t, anyG, "OPTIONS", path, "Origin", page, "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "range, if-none-match", "Access-Control-Request-Private-Network", "true")
		h := w.Header()
		if w.Code != 204 || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Methods") != "GET, HEAD" ||
			h.Get("Access-Control-Allow-Headers") != "range, if-none-match" || h.Get("Access-Control-Allow-Private-Network") != "true" ||
			h.Get("Access-Control-Max-Age") == "" {
			t.Errorf("preflight %s: %d %v", path, w.Code, h)
		}
	}
	if w := do(t, anyG, "OPTIONS", "/a.m4s", "Origin", page, "Access-Control-Request-Method", "DELETE"); w.Code != 405 {
		t.Errorf("preflight for DELETE: %d", w.Code)
	}
	if w := do(t, anyG, "OPTIONS", "/a.m4s"); w.Code != 204 || w.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("plain OPTIONS: %d %v", w.Code, w.Header())
	}

	listed, store, _ := newTestGateway(t, Config{CORSOrigins: []string{"http://localhost:3000", page}})
	store.Put(entry("/a.m4s", "abc", client.ViaMulticast))
	w = get(t, listed, "/a.m4s", "Origin", "HTTP://LOCALHOST:3000")
	if w.Header().Get("Access-Control-Allow-Origin") != "HTTP://LOCALHOST:3000" || w.Header().Get("Vary") != "Origin" {
		t.Errorf("listed origin: %v", w.Header())
	}
	w = get(t, listed, "/a.m4s", "Origin", "http://evil.example")
	if w.Code != 200 || w.Header().Get("Access-Control-Allow-Origin") != "" || w.Header().Get("Vary") != "Origin" {
		t.Errorf("unlisted origin: %v", w.Header())
	}
	if _, err := New(Config{Store: NewStore(1), Upstream: &url.URL{}, Transport: http.DefaultTransport, CORSOrigins: []string{"localhost:3000"}}); err == nil {
		t.Error("an origin without a scheme was accepted")
	}
}

func TestParseAndDefaultCORS(t *testing.T) {
	for in, want := range map[string]string{"": "", "none": "", "*": "*", "http://a:1, https://b": "http://a:1,https://b"} {
		got, err := ParseCORS(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("ParseCORS(%q) = %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"localhost:3000", "ftp://a", "http://a/path", "http://"} {
		if _, err := ParseCORS(bad); err == nil {
			t.Errorf("ParseCORS(%q) accepted", bad)
		}
	}
	for addr, any := range map[string]bool{"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true, "127.9.9.9:1": true,
		"0.0.0.0:8080": false, ":8080": false, "192.0.2.1:80": false, "[::]:80": false} {
		if got := DefaultCORS(addr); (len(got) == 1 && got[0] == AnyOrigin) != any {
			t.Errorf("DefaultCORS(%q) = %v", addr, got)
		}
	}
}

func TestCacheControl(t *testing.T) {
	g, store, _ := newTestGateway(t, Config{})
	store.Put(entry("/live/manifest.mpd", "<MPD/>", client.ViaMulticast))
	store.Put(entry("/live/seg-1.m4s", "seg", client.ViaMulticast))
	store.Put(entry("/files/update.bin", "bin", client.ViaMulticast))
	own := entry("/live/own.m4s", "seg", client.ViaMulticast)
	own.Header.Set("Cache-Control", "max-age=3")
	store.Put(own)
	for p, want := range map[string]string{
		"/live/manifest.mpd": DefaultManifestCacheControl, "/live/seg-1.m4s": DefaultSegmentCacheControl,
		"/files/update.bin": DefaultOtherCacheControl, "/live/own.m4s": "max-age=3",
		"/up/index.m3u8": DefaultManifestCacheControl, "/cached/x.m4s": "max-age=7",
		StatusJSONPath: "no-store", TimePath: "no-store",
	} {
		if got := get(t, g, p).Header().Get("Cache-Control"); got != want {
			t.Errorf("%s: Cache-Control %q, want %q", p, got, want)
		}
	}
}

// TestHeadAndConditionalRequests: HEAD, If-None-Match, If-Modified-Since
// and If-Range with a range, on a stored resource.
func TestHeadAndConditionalRequests(t *testing.T) {
	g, store, _ := newTestGateway(t, Config{})
	e := entry("/live/seg-2.m4s", "0123456789", client.ViaMulticast)
	e.Header.Set("Last-Modified", "Tue, 14 Nov 2023 22:13:20 GMT")
	store.Put(e)
	w := do(t, g, "HEAD", "/live/seg-2.m4s")
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Content-Length") != "10" || w.Header().Get(ViaHeader) != client.ViaMulticast {
		t.Errorf("HEAD: %d %q %v", w.Code, w.Body, w.Header())
	}
	if w := get(t, g, "/live/seg-2.m4s", "If-None-Match", `"x"`); w.Code != 304 || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d", w.Code)
	}
	if w := get(t, g, "/live/seg-2.m4s", "If-None-Match", `"other"`); w.Code != 200 {
		t.Errorf("If-None-Match other: %d", w.Code)
	}
	if w := get(t, g, "/live/seg-2.m4s", "If-Modified-Since", "Tue, 14 Nov 2023 22:13:20 GMT"); w.Code != 304 {
		t.Errorf("If-Modified-Since: %d", w.Code)
	}
	if w := get(t, g, "/live/seg-2.m4s", "Range", "bytes=0-1", "If-Range", `"x"`); w.Code != 206 || w.Body.String() != "01" {
		t.Errorf("If-Range matching: %d %q", w.Code, w.Body)
	}
	if w := get(t, g, "/live/seg-2.m4s", "Range", "bytes=0-1", "If-Range", `"changed"`); w.Code != 200 || w.Body.String() != "0123456789" {
		t.Errorf("If-Range not matching: %d %q", w.Code, w.Body)
	}
	if st := g.Status(); st.NotModified != 2 {
		t.Errorf("not modified %d", st.NotModified)
	}
	many := "bytes=" + strings.Repeat("0-0,", 40) + "1-1"
	if w := get(t, g, "/live/seg-2.m4s", "Range", many); w.Code != 200 || w.Body.String() != "0123456789" {
		t.Errorf("41 ranges: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// TestTimeSource: TimePath answers with the gateway's clock, for DASH
// UTCTiming http-iso/http-xsdate (body) and http-head (Date).
func TestTimeSource(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.UTC)
	g, _, up := newTestGateway(t, Config{Now: func() time.Time { return now }, CORSOrigins: []string{AnyOrigin}})
	w := get(t, g, TimePath+"?iso&ms", "Origin", "http://127.0.0.1:1")
	if w.Code != 200 || w.Body.String() != "2026-03-04T05:06:07.891Z" || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("%d %q %v", w.Code, w.Body, w.Header())
	}
	if got, err := time.Parse(time.RFC3339Nano, w.Body.String()); err != nil || !got.Equal(now) {
		t.Errorf("not xs:dateTime: %v %v", got, err)
	}
	w = do(t, g, "HEAD", TimePath)
	if w.Code != 200 || w.Body.Len() != 0 || w.Header().Get("Date") != "Wed, 04 Mar 2026 05:06:07 GMT" {
		t.Errorf("HEAD: %d %v", w.Code, w.Header())
	}
	if up.hits() != 0 {
		t.Error("the time source went upstream")
	}
}

// TestSessionDescriptionNeverServed: the well-known document carries
// session keys; the gateway serves plain HTTP and never passes it on, in
// any spelling, nor serves a push of it.
func TestSessionDescriptionNeverServed(t *testing.T) {
	g, store, up := newTestGateway(t, Config{})
	store.Put(entry(wellknown.Path, `{"sessions":[{"alt_svc":"secret"}]}`, client.ViaMulticast))
	for _, p := range []string{wellknown.Path, wellknown.Path + "/", wellknown.Path + "/keys/k1", "/.WELL-KNOWN/H3M",
		"/.well-known/%68%33m", wellknown.Path + "?x=1"} {
		w := get(t, g, p)
		if w.Code != 404 || strings.Contains(w.Body.String(), "secret") {
			t.Errorf("%s: %d %q", p, w.Code, w.Body)
		}
	}
	for _, p := range []string{"/a/../.well-known/h3m", "//.well-known/h3m", "/./.well-known/h3m/keys/k"} {
		w := get(t, g, p)
		if w.Code != http.StatusPermanentRedirect || !strings.HasPrefix(w.Header().Get("Location"), wellknown.Path) {
			t.Errorf("%s: %d %v", p, w.Code, w.Header())
		}
		if w := get(t, g, w.Header().Get("Location")); w.Code != 404 {
			t.Errorf("%s, redirected: %d", p, w.Code)
		}
	}
	if up.hits() != 0 {
		t.Fatalf("the upstream was asked for %v", up.paths)
	}
	if st := g.Status(); st.Refused != 9 {
		t.Errorf("refused %d", st.Refused)
	}
	if w := get(t, g, "/.well-known/other"); w.Code != 200 || up.hits() != 1 {
		t.Errorf("another well-known path: %d", w.Code)
	}
}

func TestHeldSegmentArrives(t *testing.T) {
	g, store, up := newTestGateway(t, Config{HoldTimeout: time.Hour})
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- get(t, g, "/live/seg-2.m4s") }()
	// Deliver once the request waits for it.
	for store.Stats().Waiting == 0 {
		time.Sleep(time.Millisecond)
	}
	store.Put(entry("/live/seg-2.m4s", "late segment", client.ViaRepair))
	w := <-done
	if w.Code != 200 || w.Body.String() != "late segment" {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	st := g.Status()
	if st.Held != 1 || st.HeldArrived != 1 || st.Served[client.ViaRepair] != 1 || up.hits() != 0 {
		t.Fatalf("status %+v, upstream hits %d", st, up.hits())
	}
}

func TestHeldSegmentTimesOutToUpstream(t *testing.T) {
	g, _, up := newTestGateway(t, Config{HoldTimeout: time.Millisecond})
	w := get(t, g, "/live/seg-3.m4s")
	if w.Code != 200 || w.Body.String() != "from upstream /live/seg-3.m4s" || w.Header().Get(ViaHeader) != ViaUnicast {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	if w.Header().Get("Alt-Svc") != "" {
		t.Fatal("the upstream's Alt-Svc leaked to the player")
	}
	if st := g.Status(); st.HeldTimeout != 1 || up.hits() != 1 || st.Served[ViaUnicast] != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestPassthroughAndErrors(t *testing.T) {
	g, _, up := newTestGateway(t, Config{})
	w := get(t, g, "/manifest.mpd")
	if w.Code != 200 || w.Body.String() != "from upstream /manifest.mpd" {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	if w := get(t, g, "/missing"); w.Code != 404 {
		t.Fatalf("upstream 404 became %d", w.Code)
	}
	for _, p := range []string{"/_h3m/nothing", "/_h3m/status.json"} {
		get(t, g, p) // the gateway's own paths never go upstream
	}
	up.srv.Close()
	if w := get(t, g, "/other"); w.Code != http.StatusBadGateway {
		t.Fatalf("upstream down: %d", w.Code)
	}
	st := g.Status()
	if st.Served[ViaUnicast] != 1 || st.ServedBytes[ViaUnicast] != uint64(len("from upstream /manifest.mpd")) || len(st.RecentRequests) != 3 {
		t.Errorf("errors counted as served: %v %v %v", st.Served, st.ServedBytes, st.RecentRequests)
	}
	if st.Passthrough != 3 || st.UpstreamErr != 1 || up.hits() != 2 {
		t.Fatalf("%+v hits %v", st, up.paths)
	}
	if w := do(t, g, "POST", "/x"); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", w.Code)
	}
}

func TestIndexServesStoredIndexHTML(t *testing.T) {
	g, store, up := newTestGateway(t, Config{})
	store.Put(entry("/index.html", "<h1>demo</h1>", client.ViaMulticast))
	store.Put(entry("/docs/index.html", "<h1>docs</h1>", client.ViaMulticast))
	if w := get(t, g, "/"); w.Body.String() != "<h1>demo</h1>" || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("/: %q %v", w.Body, w.Header())
	}
	if w := get(t, g, "/docs/"); w.Body.String() != "<h1>docs</h1>" {
		t.Errorf("/docs/: %q", w.Body)
	}
	if up.hits() != 0 {
		t.Error("went upstream")
	}
}

// fakeReceiver stands in for the client on the status page.
type fakeReceiver struct {
	mu       sync.Mutex
	stats    client.Stats
	sessions []client.SessionInfo
}

func (f *fakeReceiver) Stats() client.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeReceiver) Sessions() []client.SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]client.SessionInfo(nil), f.sessions...)
}

// snakeCase checks every object key of a decoded JSON value.
func snakeCase(t *testing.T, where string, v any) {
	t.Helper()
	re := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if !re.MatchString(k) {
				t.Errorf("%s: key %q is not snake_case", where, k)
			}
			snakeCase(t, where+"."+k, sub)
		}
	case []any:
		for _, sub := range x {
			snakeCase(t, where+"[]", sub)
		}
	}
}

func TestStatusJSONAndPage(t *testing.T) {
	now := time.Unix(1800000000, 0)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	rc := &fakeReceiver{
		sessions: []client.SessionInfo{{ID: "0a0b", Protocol: "h3m-11", Group: netip.MustParseAddrPort("232.1.1.1:5000"),
			Source: netip.MustParseAddr("192.0.2.1"), State: wellknown.StateActive, PeakFlowRate: 50_000_000,
			Joined: true, Packets: 10, Bytes: 12_000, LastPacket: now.Add(-1500 * time.Millisecond)},
			{ID: "0c0d", Protocol: "h3m-11", Group: netip.MustParseAddrPort("232.1.1.2:5001"), State: wellknown.StateActive,
				Channel: "/live/720p/", Idle: true}},
		stats: client.Stats{Multicast: 3, Repaired: 1, RepairBytes: 1500, LostBytes: 1200, FallbackActive: false, Leaves: 2, IdleLeaves: 1},
	}
	store := NewStore(25)
	g, _, _ := newTestGateway(t, Config{Store: store, Receiver: rc, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	store.Put(entry("/a", "0123456789", client.ViaMulticast))
	store.Put(entry("/b", "0123456789", client.ViaFallback))
	store.Put(entry("/a", "0123456789", client.ViaMulticast)) // replaces, refreshes
	store.Put(entry("/live/m.mpd", "<MPD/>", client.ViaMulticast))
	if _, ok := store.Get("/b"); ok {
		t.Fatal("/b not evicted")
	}
	get(t, g, "/a")
	get(t, g, "/live/m.mpd")
	get(t, g, "/upstream.bin")

	g.Status() // the first reading of the session's bytes
	clock.Store(now.Add(2 * time.Second).UnixNano())
	rc.mu.Lock()
	rc.sessions[0].Bytes += 1_000_000
	rc.mu.Unlock()

	w := get(t, g, StatusJSONPath)
	if w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%v", w.Header())
	}
	var raw any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	snakeCase(t, "status", raw)
	var st Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Store.Entries != 2 || st.Store.Evicted != 1 || st.Store.Stored[client.ViaMulticast] != 3 || len(st.Recent) != 2 || st.Recent[0].Path != "/live/m.mpd" {
		t.Errorf("store %+v recent %+v", st.Store, st.Recent)
	}
	if len(st.Manifests) != 1 || st.Manifests[0] != "/live/m.mpd" {
		t.Errorf("manifests %v", st.Manifests)
	}
	if len(st.Sessions) != 2 || st.Sessions[0].ReceiveRate != 4_000_000 || st.Sessions[0].State != "active" ||
		st.Sessions[0].SinceLastPacket != 3.5 || st.Sessions[0].Group != "232.1.1.1:5000" || st.Sessions[0].Channel != "" {
		t.Errorf("sessions %+v", st.Sessions)
	}
	if s := st.Sessions[1]; s.Channel != "/live/720p/" || !s.Idle || s.Joined {
		t.Errorf("channel session %+v", s)
	}
	if st.Receiver == nil || st.Receiver.Multicast != 3 || st.Receiver.RepairBytes != 1500 || st.Receiver.Leaves != 2 || st.Receiver.IdleLeaves != 1 {
		t.Errorf("receiver %+v", st.Receiver)
	}
	want := 16.0 / float64(16+len("from upstream /upstream.bin"))
	if st.Served[ViaUnicast] != 1 || st.MulticastShare != want {
		t.Errorf("served %v %v, share %v want %v", st.Served, st.ServedBytes, st.MulticastShare, want)
	}
	if len(st.RecentRequests) != 3 || st.RecentRequests[0].Path != "/upstream.bin" || st.RecentRequests[0].Via != ViaUnicast {
		t.Errorf("recent requests %+v", st.RecentRequests)
	}

	html := get(t, g, StatusPath).Body.String()
	for _, s := range []string{"4.00 Mbit/s", "50.0 Mbit/s", "1.01 MB", "0a0b", "active, joined", "4 s ago",
		"channel /live/720p/", "not joined (no player uses it)", "/live/m.mpd",
		"of the 43 B served to players came by multicast", "1.50 kB"} {
		if !strings.Contains(html, s) {
			t.Errorf("status page lacks %q", s)
		}
	}
	if strings.Contains(html, "map[") {
		t.Error("Go map syntax on the status page")
	}
	index := get(t, g, IndexPath).Body.String()
	if !strings.Contains(index, `href="player?src=%2flive%2fm.mpd"`) {
		t.Errorf("index does not offer the player:\n%s", index)
	}
}

func TestPlayerPage(t *testing.T) {
	g, _, up := newTestGateway(t, Config{DashJSURL: "http://127.0.0.1:1/dash.all.min.js"})
	w := get(t, g, PlayerPath+"?src=/live/manifest.mpd")
	body := w.Body.String()
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" ||
		!strings.Contains(body, `<script src="http://127.0.0.1:1/dash.all.min.js">`) ||
		!strings.Contains(body, `"manifest":"/live/manifest.mpd"`) || !strings.Contains(body, `"time":"/_h3m/time"`) {
		t.Fatalf("%d %v\n%s", w.Code, w.Header(), body)
	}
	if w := get(t, g, PlayerPath+"?src=//evil.example/x.mpd"); w.Code != 400 {
		t.Errorf("src on another host: %d", w.Code)
	}
	if w := get(t, g, PlayerPath+`?src=/x.mpd"</script><script>alert(1)</script>`); strings.Contains(w.Body.String(), "<script>alert(1)") {
		t.Error("src not escaped")
	}
	if w := get(t, g, "/_h3m"); w.Code != 301 || w.Header().Get("Location") != IndexPath {
		t.Errorf("/_h3m: %d %v", w.Code, w.Header())
	}
	var buf bytes.Buffer
	if err := WritePlayer(&buf, PlayerConfig{DashJS: "/d.js", Manifest: "http://127.0.0.1:8080/live/manifest.mpd",
		Status: "http://127.0.0.1:8080/_h3m/status.json", Time: "http://127.0.0.1:8080/_h3m/time"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"status":"http://127.0.0.1:8080/_h3m/status.json"`) {
		t.Errorf("absolute URLs:\n%s", buf.String())
	}
	if up.hits() != 0 {
		t.Error("went upstream")
	}
}

func TestHumanUnits(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{humanBytes(int64(999)), "999 B"}, {humanBytes(int64(1234)), "1.23 kB"}, {humanBytes(uint64(56_700_000)), "56.7 MB"},
		{humanBits(200_000_000), "200.0 Mbit/s"}, {humanBits(0), "0 bit/s"},
		{humanDuration(45 * time.Second), "45 s"}, {humanDuration(185 * time.Second), "3 min 05 s"},
		{humanDuration(2*time.Hour + 3*time.Minute), "2 h 03 min"}, {humanDuration(50 * time.Hour), "2 d 02 h"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// TestEntryOf: a client's delivery becomes an entry as it came.
func TestEntryOf(t *testing.T) {
	body := &h3m.MemoryBody{}
	d := client.Delivery{Path: "/a.m4s", Via: client.ViaRepair, Session: "0a0b", Size: 3, Header: http.Header{"Etag": {`"e"`}}, Body: body, Time: time.Unix(1700000000, 0)}
	e := EntryOf(&d)
	if e.Path != d.Path || e.Via != client.ViaRepair || e.Session != "0a0b" || e.Size != 3 || e.Header.Get("Etag") != `"e"` || e.Body != io.ReaderAt(body) || !e.ModTime.Equal(d.Time) {
		t.Errorf("entry %+v of %+v", e, d)
	}
}

// A gateway of a session announced elsewhere has no upstream: what the
// store holds is served, anything else (a held segment after the hold
// timeout too) is not found, and nothing is asked of anyone.
func TestNoUpstream(t *testing.T) {
	store := NewStore(1 << 20)
	g, err := New(Config{Store: store, HoldTimeout: time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	store.Put(entry("/live/seg-1.m4s", "pushed segment", client.ViaMulticast))
	if w := get(t, g, "/live/seg-1.m4s"); w.Code != 200 || w.Body.String() != "pushed segment" {
		t.Fatalf("stored: %d %q", w.Code, w.Body)
	}
	for _, p := range []string{"/live/seg-2.m4s", "/other.txt"} {
		if w := get(t, g, p); w.Code != http.StatusNotFound || w.Header().Get(ViaHeader) == ViaUnicast {
			t.Fatalf("%s: %d %q, via %q", p, w.Code, w.Body, w.Header().Get(ViaHeader))
		}
	}
	if _, err := New(Config{Store: store, Upstream: &url.URL{Scheme: "https", Host: "example.test"}}); err == nil {
		t.Fatal("an upstream without a transport was accepted")
	}
}

// TestOnRequestMissed: every player request goes through OnRequest; a
// segment it reports missed (pushed before its channel was joined) is
// fetched at once, and a held one as soon as OnRequest says so.
func TestOnRequestMissed(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	missed := map[string]bool{"/r1/init.m4s": true}
	g, store, up := newTestGateway(t, Config{HoldTimeout: time.Hour, OnRequest: func(p string) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, p)
		return missed[p]
	}})
	w := get(t, g, "/r1/init.m4s")
	if w.Code != 200 || w.Header().Get(ViaHeader) != ViaUnicast {
		t.Fatalf("missed segment: %d via %q", w.Code, w.Header().Get(ViaHeader))
	}
	if st := g.Status(); st.Held != 0 || st.Passthrough != 1 {
		t.Fatalf("a missed segment was held: %+v", st)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- get(t, g, "/r1/seg-9.m4s") }()
	for store.Stats().Waiting == 0 {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	missed["/r1/seg-9.m4s"] = true // the next catalogue read lists it
	mu.Unlock()
	w = <-done
	if w.Code != 200 || w.Body.String() != "from upstream /r1/seg-9.m4s" {
		t.Fatalf("held then missed: %d %q", w.Code, w.Body)
	}
	if st := g.Status(); st.Held != 1 || st.HeldTimeout != 1 || up.hits() != 2 {
		t.Fatalf("%+v, upstream hits %d", st, up.hits())
	}
	get(t, g, "/_h3m/time")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < 3 || seen[0] != "/r1/init.m4s" || seen[1] != "/r1/seg-9.m4s" || seen[len(seen)-1] != "/r1/seg-9.m4s" {
		t.Fatalf("OnRequest saw %q (the gateway's own pages never)", seen)
	}
}
