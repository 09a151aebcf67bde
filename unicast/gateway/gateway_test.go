package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/client"
)

func entry(path, body, via string) *Entry {
	return &Entry{Path: path, Header: http.Header{"Content-Type": {"video/mp4"}, "Etag": {`"x"`}},
		Body: strings.NewReader(body), Size: int64(len(body)), ModTime: time.Unix(1700000000, 0), Via: via}
}

func newTestGateway(t *testing.T, hold time.Duration) (*Gateway, *Store, *atomic.Int32, *httptest.Server) {
	t.Helper()
	var upstreamHits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		w.Header().Set("Alt-Svc", `h3m-11="232.1.1.1:5000"`)
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "from upstream "+r.URL.Path)
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	store := NewStore(1 << 20)
	g, err := New(Config{Store: store, Upstream: u, Transport: http.DefaultTransport, HoldTimeout: hold})
	if err != nil {
		t.Fatal(err)
	}
	return g, store, &upstreamHits, up
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServeStoredWithRanges(t *testing.T) {
	g, store, hits, _ := newTestGateway(t, time.Second)
	store.Put(entry("/live/seg-1.m4s", "0123456789", client.ViaMulticast))
	w := get(t, g, "/live/seg-1.m4s")
	if w.Code != 200 || w.Body.String() != "0123456789" || w.Header().Get("X-H3m-Via") != client.ViaMulticast || w.Header().Get("Content-Type") != "video/mp4" {
		t.Fatalf("%d %q %v", w.Code, w.Body, w.Header())
	}
	w = get(t, g, "/live/seg-1.m4s", "Range", "bytes=2-4")
	if w.Code != 206 || w.Body.String() != "234" {
		t.Fatalf("range: %d %q", w.Code, w.Body)
	}
	if hits.Load() != 0 {
		t.Fatal("upstream asked for a stored entry")
	}
}

func TestHeldSegmentArrives(t *testing.T) {
	g, store, hits, _ := newTestGateway(t, 5*time.Second)
	go func() {
		time.Sleep(100 * time.Millisecond)
		store.Put(entry("/live/seg-2.m4s", "late segment", client.ViaRepair))
	}()
	start := time.Now()
	w := get(t, g, "/live/seg-2.m4s")
	if w.Code != 200 || w.Body.String() != "late segment" || time.Since(start) < 90*time.Millisecond {
		t.Fatalf("%d %q after %v", w.Code, w.Body, time.Since(start))
	}
	st := g.Status()
	if st.Held != 1 || st.HeldArrived != 1 || st.Served[client.ViaRepair] != 1 || hits.Load() != 0 {
		t.Fatalf("status %+v, upstream hits %d", st, hits.Load())
	}
}

func TestHeldSegmentTimesOutToUpstream(t *testing.T) {
	g, _, hits, _ := newTestGateway(t, 100*time.Millisecond)
	w := get(t, g, "/live/seg-3.m4s")
	if w.Code != 200 || w.Body.String() != "from upstream /live/seg-3.m4s" || w.Header().Get("X-H3m-Via") != "unicast" {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	if w.Header().Get("Alt-Svc") != "" {
		t.Fatal("the upstream's Alt-Svc leaked to the player")
	}
	if st := g.Status(); st.HeldTimeout != 1 || hits.Load() != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestPassthroughAndErrors(t *testing.T) {
	g, _, hits, up := newTestGateway(t, time.Second)
	w := get(t, g, "/manifest.mpd")
	if w.Code != 200 || w.Body.String() != "from upstream /manifest.mpd" {
		t.Fatalf("%d %q", w.Code, w.Body)
	}
	if w := get(t, g, "/missing"); w.Code != 404 {
		t.Fatalf("upstream 404 became %d", w.Code)
	}
	up.Close()
	if w := get(t, g, "/other"); w.Code != http.StatusBadGateway {
		t.Fatalf("upstream down: %d", w.Code)
	}
	st := g.Status()
	if st.Passthrough != 3 || st.UpstreamErr != 1 || hits.Load() != 2 {
		t.Fatalf("%+v hits %d", st, hits.Load())
	}
	r := httptest.NewRequest("POST", "/x", nil)
	rw := httptest.NewRecorder()
	g.ServeHTTP(rw, r)
	if rw.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", rw.Code)
	}
}

func TestStatusAndEviction(t *testing.T) {
	u, _ := url.Parse("http://127.0.0.1:1")
	store := NewStore(25)
	g, _ := New(Config{Store: store, Upstream: u, Transport: http.DefaultTransport,
		Status: func() any { return map[string]int{"lost_packets": 7} }})
	store.Put(entry("/a", "0123456789", client.ViaMulticast))
	store.Put(entry("/b", "0123456789", client.ViaFallback))
	store.Put(entry("/a", "0123456789", client.ViaMulticast)) // replaces, refreshes
	store.Put(entry("/c", "0123456789", client.ViaMulticast)) // evicts /b
	if _, ok := store.Get("/b"); ok {
		t.Fatal("/b not evicted")
	}
	w := get(t, g, StatusPath+".json")
	var st Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Store.Entries != 2 || st.Store.Evicted != 1 || st.Store.Stored[client.ViaMulticast] != 3 || len(st.Recent) != 2 || st.Recent[0].Path != "/c" {
		t.Fatalf("%+v", st)
	}
	if !bytes.Contains(w.Body.Bytes(), []byte(`"lost_packets": 7`)) {
		t.Fatalf("receiver status missing: %s", w.Body)
	}
	if w := get(t, g, StatusPath); w.Code != 200 || !strings.Contains(w.Body.String(), "h3m gateway") {
		t.Fatalf("html: %d", w.Code)
	}
}

// TestEntryOf: a client's delivery becomes an entry as it came.
func TestEntryOf(t *testing.T) {
	body := &h3m.MemoryBody{}
	d := client.Delivery{Path: "/a.m4s", Via: client.ViaRepair, Size: 3, Header: http.Header{"Etag": {`"e"`}}, Body: body, Time: time.Unix(1700000000, 0)}
	e := EntryOf(&d)
	if e.Path != d.Path || e.Via != client.ViaRepair || e.Size != 3 || e.Header.Get("Etag") != `"e"` || e.Body != io.ReaderAt(body) || !e.ModTime.Equal(d.Time) {
		t.Errorf("entry %+v of %+v", e, d)
	}
}
