package client

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// hideEntries serves the well-known description as an origin would that
// has not listed its newest entries yet (their number not given either)
// while hide is set, and no signed entry; otherwise as next does.
func hideEntries(hide *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := hide.Load()
			switch {
			case n == 0:
				next.ServeHTTP(w, r)
				return
			case strings.HasPrefix(r.URL.Path, wellknown.CatalogPath):
				http.NotFound(w, r)
				return
			case r.URL.Path != wellknown.Path:
				next.ServeHTTP(w, r)
				return
			}
			q := r.Clone(r.Context())
			q.Header.Del("If-None-Match")
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, q)
			var d wellknown.Description
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &d) != nil {
				http.Error(w, "test front: no description", http.StatusInternalServerError)
				return
			}
			// The newest n entries are not added yet.
			d.Resources = d.Resources[:max(len(d.Resources)-int(n), 0)]
			d.CatalogNext -= uint64(n)
			b, _ := json.Marshal(&d)
			w.Header().Set("Content-Type", rec.Header().Get("Content-Type"))
			w.Header().Set("Etag", `"hidden"`)
			w.Write(b)
		})
	}
}

// TestPushListedLateIsNotLost: a push that needs unicast (it lost
// packets) is listed by the catalogue only after the client's reads have
// refused that work as unlisted (an origin that adds its entry late, under
// load), and the session ends right after. The client
// still owes that push a read of the entries: the read after the end lists
// it, and it is fetched and delivered, not silently dropped.
func TestPushListedLateIsNotLost(t *testing.T) {
	var hide atomic.Int64
	h := origintest.New(t, origintest.Options{Files: 1, MinSize: 20 << 10, MaxSize: 20 << 10, Seed: 36, Front: hideEntries(&hide)})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "late-entry")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	hide.Store(1)
	pushLosing(h, dropAfter(3), h.Paths...) // its body needs unicast, which the catalogue gates
	unicasttest.WaitFor(t, 20*time.Second, "the push refused as unlisted", func() bool { return tc.c.Stats().Unlisted >= 1 })
	hide.Store(0)
	if err := h.Pub.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	tc.waitRun()
	tc.checkExact(h, h.Paths)
	if fs := tc.failures(); len(fs) != 0 {
		t.Fatalf("failures %+v", fs)
	}
}
