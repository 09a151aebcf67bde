package unicast

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
)

// fetch sends one request over HTTP/3 and returns the response with its
// body read.
func fetch(t *testing.T, hc *http.Client, method, url string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// TestFileServer checks the representation fields against digests computed
// here with crypto/sha256 (RFC 9530 and RFC 3230 formats), ranges against
// the file, and If-Range against the ETag, over real HTTP/3.
func TestFileServer(t *testing.T) {
	h := newHarness(t, harnessOpts{files: 1, minSize: 10000, maxSize: 10000, seed: 11})
	os.MkdirAll(filepath.Join(h.dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(h.dir, "sub", "index.html"), []byte("<p>index</p>"), 0o644)
	os.WriteFile(filepath.Join(h.dir, "a.json"), []byte(`{"a":1}`), 0o644)
	os.Symlink("/etc/hostname", filepath.Join(h.dir, "escape"))
	hc := h.httpClient()
	base := "https://" + h.addr
	path := h.paths[0]
	content := h.content[path]
	sum := sha256.Sum256(content)

	resp, body := fetch(t, hc, "GET", base+path, nil)
	if resp.StatusCode != 200 || !bytes.Equal(body, content) {
		t.Fatalf("GET: %s, %d bytes", resp.Status, len(body))
	}
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:]) + `"`
	for k, want := range map[string]string{
		"Etag":           etag,
		"Content-Digest": "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":",
		"Repr-Digest":    "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":",
		"Digest":         "SHA-256=" + base64.StdEncoding.EncodeToString(sum[:]),
		"Accept-Ranges":  "bytes",
		"Content-Length": "10000",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if resp.Header.Get("Last-Modified") == "" {
		t.Error("no Last-Modified")
	}

	resp, body = fetch(t, hc, "GET", base+path, http.Header{"Range": {"bytes=100-199"}, "If-Range": {etag}})
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != "bytes 100-199/10000" || !bytes.Equal(body, content[100:200]) {
		t.Errorf("single range: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Range"), len(body))
	}
	if resp.Header.Get("Content-Digest") != "" || resp.Header.Get("Repr-Digest") == "" || resp.Header.Get("Etag") != etag {
		t.Errorf("single range fields: %v", resp.Header)
	}

	resp, body = fetch(t, hc, "GET", base+path, http.Header{"Range": {"bytes=0-9,5000-5099,9990-9999"}, "If-Range": {etag}})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var parts []string
	err := partialParts(resp, func(p rangePart) error {
		buf := make([]byte, p.cr.Last-p.cr.First+1)
		if err := readPart(p, buf); err != nil {
			return err
		}
		if !bytes.Equal(buf, content[p.cr.First:p.cr.Last+1]) {
			t.Errorf("part %d-%d: wrong bytes", p.cr.First, p.cr.Last)
		}
		parts = append(parts, string(rune('0'+len(parts))))
		return nil
	})
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || err != nil || len(parts) != 3 {
		t.Errorf("multipart: %s %q, %d parts, %v", resp.Status, resp.Header.Get("Content-Type"), len(parts), err)
	}

	// A stale validator gets the whole current representation.
	resp, body = fetch(t, hc, "GET", base+path, http.Header{"Range": {"bytes=0-9"}, "If-Range": {`"stale"`}})
	if resp.StatusCode != 200 || !bytes.Equal(body, content) || resp.Header.Get("Content-Digest") == "" {
		t.Errorf("stale If-Range: %s, %d bytes", resp.Status, len(body))
	}
	resp, body = fetch(t, hc, "HEAD", base+path, nil)
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Etag") != etag {
		t.Errorf("HEAD: %s, %d bytes", resp.Status, len(body))
	}
	resp, _ = fetch(t, hc, "GET", base+path, http.Header{"If-None-Match": {etag}})
	if resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %s", resp.Status)
	}
	resp, body = fetch(t, hc, "GET", base+"/sub/", nil)
	if resp.StatusCode != 200 || string(body) != "<p>index</p>" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("directory index: %s %q", resp.Status, body)
	}
	resp, _ = fetch(t, hc, "GET", base+"/a.json", nil)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("a.json: content-type %q", ct)
	}
	for _, p := range []string{"/nope", "/escape", "/../../etc/passwd", "/a.json/x", "/"} {
		resp, _ := fetch(t, hc, "GET", base+p, nil)
		if resp.StatusCode != 404 || resp.Header.Get("Etag") != "" {
			t.Errorf("%s: %s", p, resp.Status)
		}
	}
	resp, _ = fetch(t, hc, "DELETE", base+path, nil)
	if resp.StatusCode != 405 {
		t.Errorf("DELETE: %s", resp.Status)
	}
}

// TestServerAdvertises: every response carries the Alt-Svc advertisement of
// the announced and active sessions, never of ended ones; the well-known
// document describes them all.
func TestServerAdvertises(t *testing.T) {
	h := newHarness(t, harnessOpts{files: 1, maxSize: 100, seed: 12})
	hc := h.httpClient()
	base := "https://" + h.addr
	resp, _ := fetch(t, hc, "GET", base+h.paths[0], nil)
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("Alt-Svc %q before any session", v)
	}

	a, b, c := testAd(t, "sess-a"), testAd(t, "sess-b"), testAd(t, "sess-c")
	ida, _ := h.sessions.Announce(a)
	idb, _ := h.sessions.Announce(b)
	idc, _ := h.sessions.Announce(c)
	h.sessions.Activate(ida)
	h.sessions.Activate(idc)
	h.sessions.End(idc)
	h.sessions.SetSuccessor(ida, idb)
	h.sessions.SetExpiry(ida, time.Now().Add(90*time.Second))
	h.catalog.Add(CatalogEntry{Path: h.paths[0], Size: 100, Session: ida, PushID: 0})

	for _, p := range []string{h.paths[0], "/nope", WellKnownPath} {
		resp, _ := fetch(t, hc, "GET", base+p, nil)
		ads, _, err := altsvc.Parse(strings.Join(resp.Header.Values("Alt-Svc"), ", "))
		if err != nil || len(ads) != 2 {
			t.Fatalf("%s: Alt-Svc %q: %d ads, %v", p, resp.Header.Get("Alt-Svc"), len(ads), err)
		}
		if SessionID(&ads[0]) != ida || SessionID(&ads[1]) != idb || !sameSession(&ads[0], &a) || !sameSession(&ads[1], &b) {
			t.Errorf("%s: advertised %s, %s", p, SessionID(&ads[0]), SessionID(&ads[1]))
		}
		if !ads[0].HasMaxAge || ads[0].MaxAge < 80*time.Second || ads[0].MaxAge > 90*time.Second || ads[1].HasMaxAge {
			t.Errorf("%s: ma %v/%v, %v/%v", p, ads[0].HasMaxAge, ads[0].MaxAge, ads[1].HasMaxAge, ads[1].MaxAge)
		}
	}

	resp, body := fetch(t, hc, "GET", base+WellKnownPath, nil)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("well-known fields: %v", resp.Header)
	}
	d, err := ParseDescription(body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]SessionState{ida: StateActive, idb: StateAnnounced, idc: StateEnded}
	for _, s := range d.Sessions {
		if want[s.ID] != s.State {
			t.Errorf("session %s: %s, want %s", s.ID, s.State, want[s.ID])
		}
		if s.ID == ida && (s.Successor != idb || s.Started.IsZero() || s.Expires.IsZero()) {
			t.Errorf("session a: %+v", s)
		}
		if s.ID == idc && s.Ended.IsZero() {
			t.Errorf("session c: no end time")
		}
	}
	if len(d.Sessions) != 3 || len(d.Resources) != 1 || d.Resources[0].Session != ida {
		t.Errorf("description: %+v", d)
	}
	var raw map[string]any
	json.Unmarshal(body, &raw)
	if _, ok := raw["version"]; !ok {
		t.Errorf("no version member: %s", body)
	}

	h.sessions.End(ida)
	h.sessions.End(idb)
	resp, _ = fetch(t, hc, "GET", base+h.paths[0], nil)
	if v := resp.Header.Get("Alt-Svc"); v != "clear" {
		t.Errorf("Alt-Svc %q after every session ended, want clear", v)
	}
}

// TestServerPlainHTTP: mounted on plain HTTP, the server sends no keys.
func TestServerPlainHTTP(t *testing.T) {
	var ss Sessions
	id, err := ss.Announce(testAd(t, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	ss.Activate(id)
	srv := &Server{Handler: http.NotFoundHandler(), Sessions: &ss}
	for _, p := range []string{"/", WellKnownPath} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://example.org"+p, nil))
		if rec.Header().Get("Alt-Svc") != "" || strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%s over plain HTTP: Alt-Svc %q, body %q", p, rec.Header().Get("Alt-Svc"), rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://example.org"+WellKnownPath, nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("well-known over plain HTTP: %d", rec.Code)
	}
}

func TestServerConfig(t *testing.T) {
	if err := (&Server{Root: t.TempDir()}).Serve(nil); err == nil {
		t.Error("served without TLS")
	}
	if err := (&Server{}).ListenAndServe(context.Background()); err == nil {
		t.Error("listened without an address")
	}
}
