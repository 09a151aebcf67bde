package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// dropBodyPackets drops every nth full-size packet (body DATA; promises and
// headers are small), so that repairs are needed but pushes survive.
func dropBodyPackets(n int) func([]byte) bool {
	var count atomic.Int64
	return func(p []byte) bool {
		return len(p) > 1000 && count.Add(1)%int64(n) == 0
	}
}

// TestBadDescription: a server whose well-known document, then Alt-Svc, is
// malformed. Discover says clearly what is wrong, the client joins
// nothing and keeps asking, and once the server answers well it proceeds.
func TestBadDescription(t *testing.T) {
	var phase atomic.Int32
	badJSON := `{"version":1,"sessions":[{"id":"01","state":"active","alt_svc":"h3m-11=\"232.1.1.1:5000\"; source-address=127.0.0.1; session-id=01; cipher-suite=1301; key=zz"}],"resources":[]}`
	badAltSvc := `h3m-11="232.1.1.1:5000"; source-address=127.0.0.1; session-id=01; cipher-suite=1301; secret=0011` // secret too short
	front := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch phase.Load() {
			case 0:
				if r.URL.Path == wellknown.Path {
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, badJSON)
					return
				}
			case 1:
				w.Header().Set("Alt-Svc", badAltSvc)
				if r.URL.Path == wellknown.Path {
					http.NotFound(w, r)
					return
				}
				fmt.Fprint(w, "hello")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	h := origintest.New(t, origintest.Options{Files: 4, MaxSize: 20 << 10, Seed: 7, Front: front})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "bad-desc")); err != nil {
		t.Fatal(err)
	}
	hc := h.HTTPClient()
	ctx := context.Background()

	_, err := Discover(ctx, hc, h.URL())
	var de *wellknown.ParseError
	if !errors.As(err, &de) || de.Field != "sessions[0].alt_svc" || !errors.Is(err, wellknown.ErrMalformed) {
		t.Fatalf("malformed well-known document: got %v", err)
	}
	t.Logf("malformed document: %v", err)

	tc := runClient(h, clientConfig(h))
	unicasttest.WaitFor(t, 5*time.Second, "description errors", func() bool { return tc.c.Stats().DescriptionErrors >= 2 })

	phase.Store(1)
	_, err = Discover(ctx, hc, h.URL())
	if err == nil || !strings.Contains(err.Error(), "invalid Alt-Svc") || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("malformed Alt-Svc: got %v", err)
	}
	t.Logf("malformed Alt-Svc: %v", err)
	n := tc.c.Stats().DescriptionErrors
	unicasttest.WaitFor(t, 5*time.Second, "more description errors", func() bool { return tc.c.Stats().DescriptionErrors > n })
	if st := tc.c.Stats(); st.Joins != 0 || st.JoinErrors != 0 {
		t.Fatalf("joined from a malformed description: %+v", st)
	}

	phase.Store(2)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)
	tc.checkExact(h, h.Paths)
}

// lyingRanges serves range requests from a corrupted copy of the file
// under the original ETag and digests (so If-Range matches); with all set,
// full responses are corrupted too.
func lyingRanges(files *origin.FileServer, all bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Range") == "" && !all {
				next.ServeHTTP(w, r)
				return
			}
			f, rep, err := files.Open(r.URL.Path)
			if err != nil {
				next.ServeHTTP(w, r)
				return
			}
			var buf bytes.Buffer
			buf.ReadFrom(f)
			f.Close()
			b := buf.Bytes()
			for i := 0; i < len(b); i += 97 {
				b[i] ^= 0x55
			}
			for k, v := range rep.Header() {
				w.Header()[k] = v
			}
			http.ServeContent(w, r, "", rep.ModTime, bytes.NewReader(b))
		})
	}
}

// shiftedRanges answers every range request with other ranges than asked.
func shiftedRanges(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := r.Header.Get("Range"); v != "" {
			var out []string
			for _, spec := range strings.Split(strings.TrimPrefix(v, "bytes="), ",") {
				var a, b int64
				if _, err := fmt.Sscanf(spec, "%d-%d", &a, &b); err == nil {
					out = append(out, fmt.Sprintf("%d-%d", a+7, b+7))
				}
			}
			r.Header.Set("Range", "bytes="+strings.Join(out, ","))
		}
		next.ServeHTTP(w, r)
	})
}

// runBadServer pushes files with lost body packets to a client whose
// server misbehaves, and returns the deliveries.
func runBadServer(t *testing.T, seed uint64, wrap func(*origin.FileServer) func(http.Handler) http.Handler) (*origintest.Harness, *testClient) {
	t.Helper()
	h := origintest.New(t, origintest.Options{Files: 6, MinSize: 20 << 10, MaxSize: 60 << 10, Seed: seed,
		Wrap: func(files *origin.FileServer, next http.Handler) http.Handler { return wrap(files)(next) }})
	h.SetDrop(dropBodyPackets(9))
	if _, err := h.Pub.Start(unicasttest.Ad(t, fmt.Sprintf("bad-%d", seed))); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	return h, tc
}

// TestRepairWrongRanges: the server answers range requests with other
// ranges. Each repair fails with ErrRangeMismatch, nothing wrong is
// delivered, and the resource is fetched whole.
func TestRepairWrongRanges(t *testing.T) {
	h, tc := runBadServer(t, 8, func(*origin.FileServer) func(http.Handler) http.Handler { return shiftedRanges })
	checkRefetched(t, tc.checkExact(h, h.Paths), ErrRangeMismatch)
}

// checkRefetched checks that nothing was delivered by repair, and that the
// resources multicast left incomplete were fetched whole after a repair
// that failed with want. (A push that lost its headers is fetched whole
// without a repair attempt.)
func checkRefetched(t *testing.T, ds []Delivery, want error) {
	t.Helper()
	n := 0
	for _, d := range ds {
		switch {
		case d.Via == ViaRepair:
			t.Errorf("%s delivered by repair from a misbehaving server", d.Path)
		case d.Via == ViaFallback && len(d.Problems) > 0:
			if !errors.Is(d.Problems[0], want) {
				t.Errorf("%s: problems %v, want %v", d.Path, d.Problems, want)
				continue
			}
			n++
			t.Logf("%s: %v", d.Path, d.Problems[0])
		}
	}
	if n == 0 {
		t.Errorf("no repair was attempted: %v", countVia(ds))
	}
}

// TestRepairDigestMismatch: the server's range responses carry corrupted
// bytes under the right ETag. The repaired resource fails its digest, is
// discarded and fetched whole.
func TestRepairDigestMismatch(t *testing.T) {
	h, tc := runBadServer(t, 9, func(f *origin.FileServer) func(http.Handler) http.Handler { return lyingRanges(f, false) })
	checkRefetched(t, tc.checkExact(h, h.Paths), h3m.ErrIntegrity)
}

// TestCorruptServerGivesUp: every unicast body is corrupted. Resources
// that multicast could not complete are given up after MaxBadResponses,
// with the integrity errors; nothing wrong is ever delivered.
func TestCorruptServerGivesUp(t *testing.T) {
	h, tc := runBadServer(t, 10, func(f *origin.FileServer) func(http.Handler) http.Handler { return lyingRanges(f, true) })
	given := 0
	for _, p := range h.Paths {
		ds := tc.deliveries(p)
		if len(ds) != 1 {
			t.Errorf("%s: %d outcomes", p, len(ds))
			continue
		}
		d := ds[0]
		if d.Err == nil {
			if d.Via != ViaMulticast || !bytes.Equal(readBody(t, d), h.Content[p]) {
				t.Errorf("%s delivered via %s from a corrupting server", p, d.Via)
			}
			continue
		}
		given++
		if !errors.Is(d.Err, ErrGivenUp) || !errors.Is(d.Err, h3m.ErrIntegrity) || d.Body != nil {
			t.Errorf("%s: %v (body %v)", p, d.Err, d.Body)
		}
	}
	if given == 0 {
		t.Fatal("nothing needed unicast")
	}
	if st := tc.c.Stats(); st.Failed != given || st.BadResponses < given*DefaultMaxBadResponses {
		t.Errorf("stats %+v for %d given up", st, given)
	}
}

// TestServerIgnoresRanges: a server that answers range requests with the
// whole resource (200) is read whole, not refused.
func TestServerIgnoresRanges(t *testing.T) {
	ignore := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Header.Del("Range")
			next.ServeHTTP(w, r)
		})
	}
	h, tc := runBadServer(t, 16, func(*origin.FileServer) func(http.Handler) http.Handler { return ignore })
	ds := tc.checkExact(h, h.Paths)
	for _, d := range ds {
		if d.Via == ViaRepair || len(d.Problems) > 0 {
			t.Errorf("%s via %s, problems %v", d.Path, d.Via, d.Problems)
		}
	}
	if countVia(ds)[ViaFallback] == 0 {
		t.Error("no resource needed unicast")
	}
}

// TestRepresentationChanged: when the server's representation changed
// since the push, If-Range makes it answer with the whole new one, which is
// delivered under its own ETag (never the pushed bytes mixed with new ones).
func TestRepresentationChanged(t *testing.T) {
	changed := func(files *origin.FileServer) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Range") == "" {
					next.ServeHTTP(w, r)
					return
				}
				w.Header().Set("Etag", `"v2"`)
				http.ServeContent(w, r, "", time.Time{}, strings.NewReader("version 2 of "+r.URL.Path))
			})
		}
	}
	h, tc := runBadServer(t, 17, changed)
	n := 0
	for _, p := range h.Paths {
		ds := tc.deliveries(p)
		if len(ds) != 1 || ds[0].Err != nil {
			t.Fatalf("%s: %+v", p, ds)
		}
		d := ds[0]
		got := readBody(t, d)
		switch {
		case d.ETag == `"v2"`:
			n++
			if d.Via != ViaFallback || string(got) != "version 2 of "+p {
				t.Errorf("%s: via %s, %q", p, d.Via, got)
			}
		case !bytes.Equal(got, h.Content[p]):
			t.Errorf("%s: via %s, wrong bytes", p, d.Via)
		}
	}
	if n == 0 {
		t.Error("no repair met the new representation")
	}
}
