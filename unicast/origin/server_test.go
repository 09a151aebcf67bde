package origin_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
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
	h := origintest.New(t, origintest.Options{Files: 1, MinSize: 10000, MaxSize: 10000, Seed: 11})
	os.MkdirAll(filepath.Join(h.Dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(h.Dir, "sub", "index.html"), []byte("<p>index</p>"), 0o644)
	os.WriteFile(filepath.Join(h.Dir, "a.json"), []byte(`{"a":1}`), 0o644)
	os.Symlink("/etc/hostname", filepath.Join(h.Dir, "escape"))
	hc := h.HTTPClient()
	base := "https://" + h.Addr
	path := h.Paths[0]
	content := h.Content[path]
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
	var parts []string
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err == nil {
		// The standard library's multipart reader, not the client's parser:
		// the server's multipart framing is checked independently.
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			part, perr := mr.NextPart()
			if perr == io.EOF {
				break
			}
			if perr != nil {
				err = perr
				break
			}
			var first, last, size int
			if _, err = fmt.Sscanf(part.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size); err != nil {
				break
			}
			b, _ := io.ReadAll(part)
			if size != len(content) || !bytes.Equal(b, content[first:last+1]) {
				t.Errorf("part %d-%d/%d: wrong bytes", first, last, size)
			}
			parts = append(parts, part.Header.Get("Content-Range"))
		}
	}
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || err != nil || len(parts) != 3 {
		t.Errorf("multipart: %s %q, parts %q, %v", resp.Status, resp.Header.Get("Content-Type"), parts, err)
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

// TestServerAdvertises: every response but the description's carries the
// Alt-Svc advertisement of the announced and active sessions, never of
// ended ones; the well-known document describes them all (the field would
// repeat its body).
func TestServerAdvertises(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1, MaxSize: 100, Seed: 12})
	hc := h.HTTPClient()
	base := "https://" + h.Addr
	resp, _ := fetch(t, hc, "GET", base+h.Paths[0], nil)
	if v := resp.Header.Get("Alt-Svc"); v != "" {
		t.Errorf("Alt-Svc %q before any session", v)
	}

	a, b, c := unicasttest.Ad(t, "sess-a"), unicasttest.Ad(t, "sess-b"), unicasttest.Ad(t, "sess-c")
	ida, _ := h.Sessions.Announce(a)
	idb, _ := h.Sessions.Announce(b)
	idc, _ := h.Sessions.Announce(c)
	h.Sessions.Activate(ida)
	h.Sessions.Activate(idc)
	h.Sessions.End(idc)
	h.Sessions.SetSuccessor(ida, idb)
	h.Sessions.SetExpiry(ida, time.Now().Add(90*time.Second))
	h.Catalog.Add(wellknown.CatalogEntry{Path: h.Paths[0], Size: 100, Session: ida, PushID: 0})

	for _, p := range []string{h.Paths[0], "/nope"} {
		resp, _ := fetch(t, hc, "GET", base+p, nil)
		ads, _, err := altsvc.Parse(strings.Join(resp.Header.Values("Alt-Svc"), ", "))
		if err != nil || len(ads) != 2 {
			t.Fatalf("%s: Alt-Svc %q: %d ads, %v", p, resp.Header.Get("Alt-Svc"), len(ads), err)
		}
		if wellknown.SessionID(&ads[0]) != ida || wellknown.SessionID(&ads[1]) != idb || !sameSession(ads[0], a) || !sameSession(ads[1], b) {
			t.Errorf("%s: advertised %s, %s", p, wellknown.SessionID(&ads[0]), wellknown.SessionID(&ads[1]))
		}
		if !ads[0].HasMaxAge || ads[0].MaxAge < 80*time.Second || ads[0].MaxAge > 90*time.Second || ads[1].HasMaxAge {
			t.Errorf("%s: ma %v/%v, %v/%v", p, ads[0].HasMaxAge, ads[0].MaxAge, ads[1].HasMaxAge, ads[1].MaxAge)
		}
	}

	resp, body := fetch(t, hc, "GET", base+wellknown.Path, nil)
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Alt-Svc") != "" {
		t.Errorf("well-known fields: %v", resp.Header)
	}
	d, err := wellknown.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]wellknown.SessionState{ida: wellknown.StateActive, idb: wellknown.StateAnnounced, idc: wellknown.StateEnded}
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

	h.Sessions.End(ida)
	h.Sessions.End(idb)
	resp, _ = fetch(t, hc, "GET", base+h.Paths[0], nil)
	if v := resp.Header.Get("Alt-Svc"); v != "clear" {
		t.Errorf("Alt-Svc %q after every session ended, want clear", v)
	}
}

// sameSession compares the session parameters of two advertisements (ma
// differs between responses).
func sameSession(x, y altsvc.Advertisement) bool {
	x.MaxAge, x.HasMaxAge, x.Params = 0, false, nil
	y.MaxAge, y.HasMaxAge, y.Params = 0, false, nil
	return x.Equal(&y)
}

// TestServerPlainHTTP: mounted on plain HTTP, the server sends no keys.
func TestServerPlainHTTP(t *testing.T) {
	var ss origin.Sessions
	id, err := ss.Announce(unicasttest.Ad(t, "plain"))
	if err != nil {
		t.Fatal(err)
	}
	ss.Activate(id)
	srv := &origin.Server{Handler: http.NotFoundHandler(), Sessions: &ss}
	for _, p := range []string{"/", wellknown.Path} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://example.org"+p, nil))
		if rec.Header().Get("Alt-Svc") != "" || strings.Contains(rec.Body.String(), "secret") {
			t.Errorf("%s over plain HTTP: Alt-Svc %q, body %q", p, rec.Header().Get("Alt-Svc"), rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://example.org"+wellknown.Path, nil))
	if rec.Code != http.StatusForbidden {
		t.Errorf("well-known over plain HTTP: %d", rec.Code)
	}
}

func TestServerConfig(t *testing.T) {
	if err := (&origin.Server{Root: t.TempDir()}).Serve(nil); err == nil {
		t.Error("served without TLS")
	}
	if err := (&origin.Server{}).ListenAndServe(context.Background()); err == nil {
		t.Error("listened without an address")
	}
}

// TestManifestsHTTP serves a session's manifests over HTTP/3: ranges by
// sequence and packet number, a stream from a sequence number that
// delivers manifests as they are added and ends with the session, the live
// stream, and the errors.
func TestManifestsHTTP(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1})
	hc := h.HTTPClient()
	const id = "0a0b"
	h.Manifests.Open(id, manifest.DigestSHA256)
	ms := origin.TestManifests(t, 40, 33, 100, 0)
	for _, m := range ms[:10] {
		h.Manifests.Add(id, m)
	}
	base := "https://" + h.Addr + wellknown.ManifestsPath + "/" + id
	fetch := func(q string) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := get(ctx, hc, base+q)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := fetch("?seq=102-104")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != manifest.MediaType || !bytes.Equal(b, bytes.Join(ms[2:5], nil)) {
		t.Fatalf("seq range: %s %q, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(b))
	}
	if _, b := fetch("?pn=70-70,300-301"); !bytes.Equal(b, bytes.Join([][]byte{ms[2], ms[9]}, nil)) {
		t.Fatalf("pn ranges: %d bytes", len(b))
	}
	for q, code := range map[string]int{"?seq=1-2-3": 400, "?bogus=1": 400} {
		if resp, _ := fetch(q); resp.StatusCode != code {
			t.Fatalf("%s: %s", q, resp.Status)
		}
	}
	for _, p := range []string{wellknown.ManifestsPath + "/0a0c", wellknown.ManifestsPath + "/xyz"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := get(ctx, hc, "https://"+h.Addr+p)
		cancel()
		if err != nil || resp.StatusCode != 404 {
			t.Fatalf("%s: %v %v", p, resp.Status, err)
		}
		resp.Body.Close()
	}

	// Streams: from 105 (five kept ones, then the new ones as they come),
	// and live (from the newest kept one).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(q string) *manifest.StreamReader {
		resp, err := get(ctx, hc, base+q)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream %s: %v", q, err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return manifest.NewStreamReader(resp.Body, manifest.DigestSHA256, 0)
	}
	from, live := open("?from=105"), open("")
	expect := func(sr *manifest.StreamReader, want []byte) {
		t.Helper()
		done := make(chan error, 1)
		var raw []byte
		go func() {
			var err error
			_, raw, err = sr.Next()
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil || !bytes.Equal(raw, want) {
				t.Fatalf("stream: %v, manifest %x...", err, raw[:min(len(raw), 8)])
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stream: no manifest within 5 s")
		}
	}
	for _, m := range ms[5:10] {
		expect(from, m)
	}
	expect(live, ms[9])
	for _, m := range ms[10:40] {
		h.Manifests.Add(id, m)
		expect(from, m)
		expect(live, m)
	}
	if st, _ := h.Manifests.Stats(id); st.StreamsServing != 2 {
		t.Fatalf("%d streams served, want 2", st.StreamsServing)
	}
	h.Manifests.End(id)
	for _, sr := range []*manifest.StreamReader{from, live} {
		if _, _, err := sr.Next(); err != io.EOF {
			t.Fatalf("after the session ended: %v, want EOF", err)
		}
	}
	// A stream of an ended session sends what is kept and ends.
	resp, b = fetch("?from=138")
	if resp.StatusCode != 200 || !bytes.Equal(b, bytes.Join(ms[38:], nil)) {
		t.Fatalf("stream of an ended session: %s, %d bytes", resp.Status, len(b))
	}

	// Never without TLS.
	srv := &origin.Server{Manifests: h.Manifests, Handler: http.NotFoundHandler()}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, wellknown.ManifestsPath+"/"+id+"?seq=100-101", nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("without TLS: %d", rec.Code)
	}
}

// get sends a GET with ctx.
func get(ctx context.Context, hc *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return hc.Do(req)
}

// TestIncrementalCatalog: a read with resources_after lists only what was
// pushed since; a reader that accepts gzip gets the document compressed.
func TestIncrementalCatalog(t *testing.T) {
	cat := &origin.Catalog{}
	t0 := time.Now().Add(-time.Minute).Round(0)
	for i, p := range []string{"/a", "/b", "/c"} {
		cat.Add(wellknown.CatalogEntry{Path: p, Size: 1, ETag: `"e` + p[1:] + `"`, Pushed: t0.Add(time.Duration(i) * 10 * time.Second), Session: "01", PushID: uint64(i)})
	}
	srv := &origin.Server{Sessions: &origin.Sessions{}, Catalog: cat, Handler: http.NotFoundHandler()}
	read := func(query string) *wellknown.Description {
		t.Helper()
		r := httptest.NewRequest("GET", wellknown.Path+query, nil)
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", query, w.Code, w.Body)
		}
		d, err := wellknown.Parse(w.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	full := read("")
	if len(full.Resources) != 3 || !full.ResourcesAfter.IsZero() {
		t.Fatalf("full read: %d resources, after %v", len(full.Resources), full.ResourcesAfter)
	}
	since := t0.Add(10 * time.Second)
	delta := read("?" + url.Values{wellknown.ResourcesAfterParam: {since.Format(time.RFC3339Nano)}}.Encode())
	if len(delta.Resources) != 2 || delta.Resources[0].Path != "/b" || !delta.ResourcesAfter.Equal(since) {
		t.Fatalf("incremental read: %+v", delta.Resources)
	}
	// By number: the full read gives the next entry's; a read from it
	// lists what was added since, and nothing the reader had; a number
	// past it (an origin that started again) lists everything.
	if full.CatalogNext != 4 {
		t.Fatalf("full read: catalog_next %d, want 4 (entries numbered from 1)", full.CatalogNext)
	}
	if d := read("?resources_from=4"); len(d.Resources) != 0 || d.CatalogNext != 4 || d.ResourcesFrom != 4 {
		t.Fatalf("read from 4 of 3: %+v", d)
	}
	if d := read("?resources_from=2"); len(d.Resources) != 2 || d.Resources[0].Path != "/b" || d.ResourcesFrom != 2 {
		t.Fatalf("read from 2: %+v", d.Resources)
	}
	if d := read("?resources_from=9"); len(d.Resources) != 3 || d.ResourcesFrom != 0 || d.CatalogNext != 4 {
		t.Fatalf("read from past the catalogue: %+v", d)
	}
	if d := read("?resources_from=next"); len(d.Resources) != 0 || d.ResourcesFrom != 4 || d.CatalogNext != 4 || len(d.Sessions) != len(full.Sessions) {
		t.Fatalf("read of the sessions alone: %+v", d)
	}
	for _, bad := range []string{wellknown.ResourcesAfterParam + "=yesterday", wellknown.ResourcesFromParam + "=-1", wellknown.ResourcesFromParam + "=18446744073709551615"} {
		r := httptest.NewRequest("GET", wellknown.Path+"?"+bad, nil)
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != 400 {
			t.Fatalf("%s: %d", bad, w.Code)
		}
	}

	// Compressed when the reader accepts gzip, and the same document.
	for i := range 20 {
		cat.Add(wellknown.CatalogEntry{Path: fmt.Sprintf("/more/%d", i), Size: 1, Pushed: t0, Session: "01", PushID: uint64(10 + i)})
	}
	r := httptest.NewRequest("GET", wellknown.Path, nil)
	r.TLS = &tls.ConnectionState{}
	r.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("not compressed: %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if d, err := wellknown.Parse(plain); err != nil || len(d.Resources) != 23 {
		t.Fatalf("compressed description: %v %+v", err, d)
	}
}

// TestDescriptionNotModified: the description carries a strong ETag; a
// read that names it is answered 304 with no body until the description
// changes, and the server counts both.
func TestDescriptionNotModified(t *testing.T) {
	cat := &origin.Catalog{}
	srv := &origin.Server{Sessions: &origin.Sessions{}, Catalog: cat, Handler: http.NotFoundHandler()}
	read := func(etag string) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest("GET", wellknown.Path, nil)
		r.TLS = &tls.ConnectionState{}
		if etag != "" {
			r.Header.Set("If-None-Match", etag)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	w := read("")
	etag := w.Header().Get("Etag")
	if w.Code != 200 || !strings.HasPrefix(etag, `"`) {
		t.Fatalf("first read: %d, ETag %q", w.Code, etag)
	}
	if w := read(etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 || w.Header().Get("Etag") != etag {
		t.Fatalf("conditional read of the same description: %d, %d bytes, ETag %q", w.Code, w.Body.Len(), w.Header().Get("Etag"))
	}
	if w := read(`"other", ` + etag); w.Code != http.StatusNotModified {
		t.Fatalf("a list naming it: %d", w.Code)
	}
	cat.Add(wellknown.CatalogEntry{Path: "/a", Size: 1, Session: "01"})
	w = read(etag)
	if w.Code != 200 || w.Header().Get("Etag") == etag {
		t.Fatalf("after a change: %d, ETag %q (was %q)", w.Code, w.Header().Get("Etag"), etag)
	}
	if st := srv.Stats(); st.Descriptions != 2 || st.DescriptionsNotModified != 2 || st.NotModified != 2 {
		t.Errorf("stats %+v: want 2 descriptions served, 2 reads answered 304", st)
	}
}
