package unicast

import (
	"compress/gzip"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// TestIncrementalCatalog: a read with resources_after lists only what was
// pushed since, and the client adds it to what it has instead of replacing
// it.
func TestIncrementalCatalog(t *testing.T) {
	cat := &Catalog{}
	t0 := time.Now().Add(-time.Minute).Round(0)
	for i, p := range []string{"/a", "/b", "/c"} {
		cat.Add(CatalogEntry{Path: p, Size: 1, ETag: `"e` + p[1:] + `"`, Pushed: t0.Add(time.Duration(i) * 10 * time.Second), Session: "01", PushID: uint64(i)})
	}
	srv := &Server{Sessions: &Sessions{}, Catalog: cat, Handler: http.NotFoundHandler()}
	read := func(query string) *Description {
		t.Helper()
		r := httptest.NewRequest("GET", WellKnownPath+query, nil)
		r.TLS = &tls.ConnectionState{}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", query, w.Code, w.Body)
		}
		d, err := ParseDescription(w.Body.Bytes())
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
	delta := read("?" + url.Values{ResourcesAfterParam: {since.Format(time.RFC3339Nano)}}.Encode())
	if len(delta.Resources) != 2 || delta.Resources[0].Path != "/b" || !delta.ResourcesAfter.Equal(since) {
		t.Fatalf("incremental read: %+v", delta.Resources)
	}
	r := httptest.NewRequest("GET", WellKnownPath+"?"+ResourcesAfterParam+"=yesterday", nil)
	r.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Code != 400 {
		t.Fatalf("a bad time: %d", w.Code)
	}

	c := &Client{}
	now := time.Now()
	c.mergeCatalogLocked(&Description{Resources: full.Resources[:2]}, now)
	c.mergeCatalogLocked(delta, now)
	if len(c.catalog) != 3 {
		t.Fatalf("merged catalogue %+v", c.catalog)
	}
	// Entries older than the retention are forgotten at the next merge.
	old := CatalogEntry{Path: "/old", ETag: `"o"`, Pushed: now.Add(-catalogRetention - time.Minute)}
	c.catalog = append(c.catalog, old)
	c.mergeCatalogLocked(&Description{ResourcesAfter: now}, now)
	for _, e := range c.catalog {
		if e.Path == "/old" {
			t.Fatal("an entry older than the retention was kept")
		}
	}

	// Compressed when the reader accepts gzip, and the same document.
	for i := range 20 {
		cat.Add(CatalogEntry{Path: fmt.Sprintf("/more/%d", i), Size: 1, Pushed: t0, Session: "01", PushID: uint64(10 + i)})
	}
	r = httptest.NewRequest("GET", WellKnownPath, nil)
	r.TLS = &tls.ConnectionState{}
	r.Header.Set("Accept-Encoding", "gzip")
	w = httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("not compressed: %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if d, err := ParseDescription(plain); err != nil || len(d.Resources) != 23 {
		t.Fatalf("compressed description: %v %+v", err, d)
	}
}
