package client

import (
	"context"
	"errors"
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

// dropAfter returns a drop rule that lets n packets through, then drops
// every one.
func dropAfter(n int64) func([]byte) bool {
	var seen atomic.Int64
	return func([]byte) bool { return seen.Add(1) > n }
}

// Drop rules for pushLosing.
var (
	loseAll  = func([]byte) bool { return true }
	loseNone func([]byte) bool
)

// pushLosing pushes paths with the drop rule drop in force, and waits until
// their packets are sent.
func pushLosing(h *origintest.Harness, drop func([]byte) bool, paths ...string) {
	h.T.Helper()
	h.SetDrop(drop)
	h.PushAll(paths)
	h.Pub.Transport().Flush()
	h.SetDrop(nil)
}

// waitRun waits for Run to return (the bound only catches a client that
// never does).
func (tc *testClient) waitRun() {
	tc.t.Helper()
	select {
	case <-tc.done:
	case <-time.After(20 * time.Second):
		tc.t.Fatalf("Run did not return: %+v", tc.c.Stats())
	}
	if tc.err != nil {
		tc.t.Fatal(tc.err)
	}
}

// failures returns the deliveries given up.
func (tc *testClient) failures() []Delivery {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	var out []Delivery
	for _, ds := range tc.by {
		for _, d := range ds {
			if d.Err != nil {
				out = append(out, d)
			}
		}
	}
	return out
}

// TestEndKnownAtOnce: a push loses everything after its first packets
// (its FIN included), another is lost whole (its promise too), and the
// session ends. The client learns the end from the in-band end alone — no
// push timeout, no catalogue poll, no grace runs within the test (each is
// an hour) — reads the catalogue at once, which names the lost push,
// repairs the one, fetches the other and returns.
func TestEndKnownAtOnce(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 4, MinSize: 20 << 10, MaxSize: 30 << 10, Seed: 31})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "end-at-once")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	cfg.PushTimeout, cfg.CatalogPoll, cfg.LostGrace, cfg.OriginGrace = time.Hour, time.Hour, time.Hour, time.Hour
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	pushLosing(h, loseNone, h.Paths[0])
	pushLosing(h, dropAfter(3), h.Paths[1])
	pushLosing(h, loseAll, h.Paths[2])
	h.PushAll(h.Paths[3:])
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc.waitRun()
	want := map[string]string{h.Paths[0]: ViaMulticast, h.Paths[1]: ViaRepair, h.Paths[2]: ViaFallback, h.Paths[3]: ViaMulticast}
	for _, d := range tc.checkExact(h, h.Paths) {
		if d.Via != want[d.Path] {
			t.Errorf("%s via %s, want %s", d.Path, d.Via, want[d.Path])
		}
	}
}

// TestOriginGoneAfterEnd: a push's promise is lost, the origin goes away
// before the catalogue can name it, and the session ends. The client does
// not wait for the origin beyond OriginGrace: it reports the lost promise
// as missing and returns.
func TestOriginGoneAfterEnd(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 3, MaxSize: 10 << 10, Seed: 32})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "origin-gone")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	cfg.CatalogPoll, cfg.LostGrace = time.Hour, time.Hour // the catalogue is read at the start and at the end only
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	pushLosing(h, loseNone, h.Paths[0])
	pushLosing(h, loseAll, h.Paths[1])
	h.StopServer(true)
	h.PushAll(h.Paths[2:])
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc.waitRun()
	tc.checkExact(h, []string{h.Paths[0], h.Paths[2]})
	fs := tc.failures()
	if len(fs) != 1 || fs[0].PushID != 1 || !errors.Is(fs[0].Err, h3m.ErrPromiseLost) || !strings.Contains(fs[0].Err.Error(), "stopped answering") {
		t.Fatalf("failures %+v", fs)
	}
	t.Logf("reported: %v", fs[0].Err)
}

// TestRepairsGivenUpWhenOriginGone: repairs still pending when the session
// ends and the origin has gone are given up after OriginGrace, each with
// the reason.
func TestRepairsGivenUpWhenOriginGone(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 2, MinSize: 20 << 10, MaxSize: 30 << 10, Seed: 33})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "repairs-gone")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.StopServer(true)
	pushLosing(h, dropAfter(4), h.Paths[0])
	h.PushAll(h.Paths[1:])
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc.waitRun()
	tc.checkExact(h, h.Paths[1:])
	ds := tc.deliveries(h.Paths[0])
	if len(ds) != 1 || !errors.Is(ds[0].Err, ErrOriginGone) || !errors.Is(ds[0].Err, ErrGivenUp) {
		t.Fatalf("%s: %+v", h.Paths[0], ds)
	}
	t.Logf("reported: %v", ds[0].Err)
}

// noDescription makes an origin serve no well-known description: receivers
// learn the session from Alt-Svc and there is no catalogue.
func noDescription(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wellknown.Path {
			r.URL.Path = "/no-such-file"
		}
		next.ServeHTTP(w, r)
	})
}

// TestLostPromiseWithoutCatalogue: an origin with no catalogue (Alt-Svc
// only, as nghq's deployments) cannot name a push whose promise multicast
// lost; the gap in the push IDs is reported as missing, not passed over.
func TestLostPromiseWithoutCatalogue(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 3, MaxSize: 10 << 10, Seed: 34, Front: noDescription})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "no-catalogue")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	pushLosing(h, loseNone, h.Paths[0])
	pushLosing(h, loseAll, h.Paths[1])
	h.PushAll(h.Paths[2:])
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc.waitRun()
	tc.checkExact(h, []string{h.Paths[0], h.Paths[2]})
	fs := tc.failures()
	if len(fs) != 1 || fs[0].PushID != 1 || !errors.Is(fs[0].Err, h3m.ErrPromiseLost) {
		t.Fatalf("failures %+v", fs)
	}
	t.Logf("reported: %v", fs[0].Err)
}

// TestSessionsWithoutOrigin: a session joined from its advertisement
// alone (Config.Sessions, no URL): what multicast delivers whole is
// delivered; what it lost bytes of, and a push whose promise it lost, are
// reported missing (nothing can fetch them); Run returns at the in-band
// end.
func TestSessionsWithoutOrigin(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 4, MinSize: 10 << 10, MaxSize: 20 << 10, Seed: 35})
	ad := unicasttest.Ad(t, "no-origin")
	if _, err := h.Pub.Start(ad); err != nil {
		t.Fatal(err)
	}
	d, err := DescribeAltSvc(ad.String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.URL, cfg.CAFile, cfg.Sessions, cfg.ExitOnEnd = "", "", d, true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	pushLosing(h, loseNone, h.Paths[0])
	pushLosing(h, loseAll, h.Paths[1])      // lost whole
	pushLosing(h, dropAfter(3), h.Paths[2]) // lost after its first packets
	h.PushAll(h.Paths[3:])
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	tc.waitRun()
	tc.checkExact(h, []string{h.Paths[0], h.Paths[3]})
	fs := tc.failures()
	if len(fs) != 2 {
		t.Fatalf("failures %+v", fs)
	}
	for _, f := range fs {
		switch {
		case f.PushID == 1 && errors.Is(f.Err, h3m.ErrPromiseLost):
		case f.Path == h.Paths[2] && errors.Is(f.Err, ErrNoOrigin):
		default:
			t.Errorf("unexpected failure %+v", f)
		}
		t.Logf("reported: %v", f.Err)
	}
	if st := tc.c.Stats(); st.Requests != 0 || st.Polls != 0 {
		t.Errorf("unicast requests with no origin: %+v", st)
	}
}

// TestWholeFetchUsesPushedDigest: an origin that sends no digest (a plain
// HTTPS server) and ignores ranges: the repair of a push comes back whole.
// With digests required it is accepted, checked against the digest the
// push carried, when it is the pushed representation (same ETag), and
// refused with the reason when it is not.
func TestWholeFetchUsesPushedDigest(t *testing.T) {
	for _, changed := range []bool{false, true} {
		t.Run(map[bool]string{false: "same", true: "changed"}[changed], func(t *testing.T) {
			plain := func(_ *origin.FileServer, next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					r.Header.Del("Range")
					r.Header.Del("If-Range")
					next.ServeHTTP(&stripDigests{ResponseWriter: w, changeETag: changed}, r)
				})
			}
			h := origintest.New(t, origintest.Options{Files: 1, MinSize: 20 << 10, MaxSize: 30 << 10, Seed: 36, Wrap: plain})
			if _, err := h.Pub.Start(unicasttest.Ad(t, "plain")); err != nil {
				t.Fatal(err)
			}
			cfg := clientConfig(h)
			cfg.RequireDigest = true
			cfg.MaxBadResponses = 1
			tc := runClient(h, cfg)
			tc.waitJoined(1)
			pushLosing(h, dropAfter(4), h.Paths...)
			tc.waitPaths(10*time.Second, h.Paths)
			ds := tc.deliveries(h.Paths[0])
			if !changed {
				tc.checkExact(h, h.Paths)
				if ds[0].Via != ViaFallback {
					t.Errorf("via %s", ds[0].Via)
				}
				return
			}
			if len(ds) != 1 || !errors.Is(ds[0].Err, h3m.ErrIntegrity) || !strings.Contains(ds[0].Err.Error(), "is not the pushed") {
				t.Fatalf("a copy of another representation: %+v", ds)
			}
			t.Logf("refused: %v", ds[0].Err)
		})
	}
}

// stripDigests drops the digest fields of a response, and can change its
// ETag (a representation other than the pushed one).
type stripDigests struct {
	http.ResponseWriter
	changeETag bool
}

func (s *stripDigests) WriteHeader(code int) {
	h := s.Header()
	for _, f := range []string{"Digest", "Content-Digest", "Repr-Digest"} {
		h.Del(f)
	}
	if s.changeETag && h.Get("Etag") != "" {
		h.Set("Etag", `"another"`)
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *stripDigests) Write(b []byte) (int, error) {
	if s.Header().Get("Etag") != "" && s.Header().Get("Digest") != "" {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// TestUntrustedServer: a server whose certificate the client does not
// trust fails Run at once, not after retries.
func TestUntrustedServer(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1, Seed: 37})
	cfg := clientConfig(h)
	cfg.CAFile = ""
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = c.Run(ctx)
	if !errors.Is(err, ErrUntrustedServer) || ctx.Err() != nil {
		t.Fatalf("Run: %v", err)
	}
	if st := c.Stats(); st.DescriptionErrors != 0 {
		t.Errorf("retried: %+v", st)
	}
	t.Logf("Run: %v", err)
}

// TestPhantomGaps: after the end, a gap of push IDs above a push the
// catalogue lists for its session, which the catalogue does not name, was
// never pushed (a key holder promised high push IDs): not reported
// missing, counted. A gap below everything it lists may have been
// forgotten by the catalogue, and a session it lists nothing of cannot be
// vouched for: those stay missing.
func TestPhantomGaps(t *testing.T) {
	c := &Client{haveCat: true, catalog: []wellknown.CatalogEntry{
		{Session: "a", PushID: 10, Path: "/x"}, {Session: "a", PushID: 12, Path: "/y"},
	}}
	gaps := map[string][]pushGap{
		"a": {{from: 2, to: 5}, {from: 13, to: 500}, {from: 11, to: 12}},
		"b": {{from: 3, to: 4}},
	}
	real, phantom := c.phantomGapsLocked(gaps)
	if len(phantom) != 2 || phantom[0] != (pushGap{from: 13, to: 500}) || phantom[1] != (pushGap{from: 11, to: 12}) {
		t.Errorf("phantoms %v", phantom)
	}
	if len(real["a"]) != 1 || real["a"][0].from != 2 || len(real["b"]) != 1 {
		t.Errorf("missing %v", real)
	}
	if c.stats.PhantomPromises != 487+1 {
		t.Errorf("PhantomPromises %d", c.stats.PhantomPromises)
	}
	c.altSvcOnly = true // no catalogue: every gap is missing
	if real, phantom := c.phantomGapsLocked(gaps); len(phantom) != 0 || len(real) != 2 {
		t.Errorf("without a catalogue: %v, %v", real, phantom)
	}
}
