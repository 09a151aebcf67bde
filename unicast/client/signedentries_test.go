package client

import (
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// TestSignedEntriesThroughCache: at 10 % loss, the pushes held for the
// catalogue's word are released by their signed entries, asked of the
// cache, not by reads of the origin's description. A cache that tampers
// with the entries is caught by their signature (counted, never taken),
// and the reads of the origin do the work: every file arrives intact.
func TestSignedEntriesThroughCache(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		t.Run(map[bool]string{false: "good", true: "tampering"}[tamper], func(t *testing.T) {
			h := origintest.New(t, origintest.Options{Files: 10, MinSize: 60 << 10, MaxSize: 200 << 10, Seed: 71, Loss: 0.10})
			cache := newTestCache(t, h, tamper)
			cfg := cacheConfig(t, h, cache.srv)
			cfg.RepairURLs = []string{cache.srv.URL}
			if _, err := h.Pub.Start(unicasttest.Ad(t, "signed")); err != nil {
				t.Fatal(err)
			}
			tc := runClient(h, cfg)
			tc.waitJoined(1)
			h.PushAll(h.Paths)
			tc.waitPaths(20*time.Second, h.Paths)
			tc.checkExact(h, h.Paths)
			st := tc.c.Stats()
			asked := 0
			for _, r := range cache.received() {
				if strings.HasPrefix(r.URL.Path, wellknown.CatalogPath+"/") {
					asked++
				}
			}
			t.Logf("repaired %d; signed entries asked %d, taken %d; cache rejected %d; description reads %d", st.Repaired, asked, st.CatalogEntries, st.CacheRejected, st.Polls)
			if st.Repaired == 0 || asked == 0 {
				t.Fatalf("nothing repaired (%d) or no entry asked of the cache (%d) at 10%% loss", st.Repaired, asked)
			}
			if tamper {
				if st.CatalogEntries != 0 || st.CacheRejected < asked {
					t.Errorf("tampered entries: %d taken, %d of %d rejected", st.CatalogEntries, st.CacheRejected, asked)
				}
			} else if st.CatalogEntries == 0 || st.CacheRejected != 0 {
				t.Errorf("good entries: %d taken, %d rejected", st.CatalogEntries, st.CacheRejected)
			}
			if st.Failed != 0 || st.Fallback != 0 {
				t.Errorf("stats: %+v", st)
			}
		})
	}
}

// TestPollsWhileLiveInBand: while its session brings packets, the client
// does not read the description on a schedule (the session announces in
// band what a read would say); when the session goes quiet without its
// end reaching the client, it reads the description at once, not after
// CatalogIdlePoll.
func TestPollsWhileLiveInBand(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 6, MaxSize: 8 << 10, Seed: 72})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "live")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h) // CatalogPoll 100 ms, CatalogIdlePoll 30 s, LostGrace 1 s
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths[:3])
	tc.waitPaths(10*time.Second, h.Paths[:3])
	// Live: keep-alives and a push now and then; doubling from 100 ms
	// would read about five times in 3 s.
	p0 := tc.c.Stats().Polls
	for _, p := range h.Paths[3:] {
		time.Sleep(time.Second)
		h.PushAll([]string{p})
	}
	tc.waitPaths(10*time.Second, h.Paths)
	live := tc.c.Stats().Polls - p0
	if live > 1 {
		t.Errorf("%d description reads while the session was live in-band, want at most 1", live)
	}
	// Quiet: nothing arrives any more.
	p1 := tc.c.Stats().Polls
	h.SetDrop(func([]byte) bool { return true })
	unicasttest.WaitFor(t, 10*time.Second, "a read once the session went quiet", func() bool { return tc.c.Stats().Polls > p1 })
}

// TestEndReadsSessionsAlone: once the session has ended in-band and no
// push ID is missing before its end, the read after the end asks for no
// catalogue entry (resources_from=next): nothing listed could name a loss,
// and the read is for the sessions alone. The client still exits with
// every file.
func TestEndReadsSessionsAlone(t *testing.T) {
	reads := &readLog{}
	h := origintest.New(t, origintest.Options{Files: 6, MaxSize: 20 << 10, Seed: 73, Front: reads.front})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "endread")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ExitOnEnd = true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)
	tc.endAndExit(t, h)
	tc.checkExact(h, h.Paths)
	if froms := reads.list(); len(froms) < 2 || froms[len(froms)-1] != wellknown.ResourcesFromNext {
		t.Errorf("reads asked resources_from %q; want the last (after the end) %q", froms, wellknown.ResourcesFromNext)
	}
}

// TestOrphanEntryByStream: a push loses its promise and its stream's first
// packet (the push ID) with their copies, so its stream is an orphan known
// only by its stream ID; in the second case its last packet too, so that
// it ends as an orphan only once quiet for PushTimeout, after the next
// promise showed the lost one. The client asks the cache for the signed
// entry of that stream, which identifies the orphan and names the lost
// promise: the orphan is repaired, and the origin's description is read
// only at the start and, after the end, for the sessions alone — no read
// of the entries (before, the orphan had the client read every entry
// since its last read, and the cache served nothing of it; with the tail
// lost, it read them every CatalogPoll until the orphan came).
func TestOrphanEntryByStream(t *testing.T) {
	for _, tt := range []struct {
		name string
		tail bool
	}{{"head", false}, {"head-and-tail", true}} {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			tc, cache, froms := runThroughCache(t, 74, func(p []byte) bool {
				k := n.Add(1)
				// The promise and the stream's head travel together, and
				// so do their copies (the first two packets); with the
				// tail, every small packet; and one body packet in 37.
				small := len(p) < 1000
				return k <= 2 && small || tt.tail && small || k%37 == 0
			})
			st := tc.c.Stats()
			byStream := 0
			for _, r := range cache.received() {
				if ref, ok := wellknown.ParseCatalogEntryRef(r.URL.Path); ok && ref.ByStream {
					byStream++
				}
			}
			t.Logf("orphans %d matched %d fetched %d; entries asked by stream %d, taken %d; reads %q", st.Orphans, st.OrphansMatched, st.OrphansFetched, byStream, st.CatalogEntries, froms)
			if st.Orphans != 1 || st.OrphansMatched != 1 || st.OrphansFetched != 0 || st.FetchBytes != 0 {
				t.Errorf("orphans %d, matched %d, fetched whole %d (%d bytes); want 1, 1, 0", st.Orphans, st.OrphansMatched, st.OrphansFetched, st.FetchBytes)
			}
			if byStream != 1 || st.CatalogEntries == 0 {
				t.Errorf("%d signed entries asked of the cache by stream, %d taken; want 1 and the orphan's", byStream, st.CatalogEntries)
			}
			checkNoEntryReads(t, froms)
		})
	}
}

// TestLostPushEntry: a push is lost whole — promise, stream, copies. In
// the middle of the session the next promise shows the gap; once it has
// waited LostGrace (its stream might have been coming without its head),
// the client asks the cache for that push ID's signed entry, not the
// origin for every entry since its last read, and fetches the file whole
// once it counts as lost — judged on the client's clock, without reading
// again every CatalogPoll. The session's last push shows lost only with
// the end, which settles every stream still coming: its entry is asked at
// once, and the read after the end, which waits for it, is of the
// sessions alone.
func TestLostPushEntry(t *testing.T) {
	for _, tt := range []struct {
		name  string
		lossy int
	}{{"middle", 1}, {"last", 2}} {
		t.Run(tt.name, func(t *testing.T) {
			tc, cache, froms := runThroughCacheDropping(t, 75, tt.lossy, func([]byte) bool { return true })
			st := tc.c.Stats()
			var asked []string
			for _, r := range cache.received() {
				if _, ok := wellknown.ParseCatalogEntryRef(r.URL.Path); ok {
					asked = append(asked, r.URL.Path)
				}
			}
			t.Logf("fetched %d bytes whole; entries asked %q, taken %d; reads %q", st.FetchBytes, asked, st.CatalogEntries, froms)
			want := wellknown.CatalogEntryPath(tc.c.sessionList()[0].id, uint64(tt.lossy))
			if len(asked) == 0 || asked[0] != want || st.CatalogEntries == 0 || st.FetchBytes == 0 {
				t.Errorf("signed entries asked %q, %d bytes fetched whole; want %s asked and the file fetched", asked, st.FetchBytes, want)
			}
			checkNoEntryReads(t, froms)
		})
	}
}

// runThroughCache runs a client with a cache as its repair URL and
// ExitOnEnd on a session of three files of 300–400 kB, the second pushed
// while drop decides which of its packets are lost, and returns once it
// has exited with every file intact, with the resources_from of every
// description read.
func runThroughCache(t *testing.T, seed uint64, drop func([]byte) bool) (*testClient, *testCache, []string) {
	t.Helper()
	return runThroughCacheDropping(t, seed, 1, drop)
}

// runThroughCacheDropping is runThroughCache with drop deciding for the
// packets of file lossy (0–2).
func runThroughCacheDropping(t *testing.T, seed uint64, lossy int, drop func([]byte) bool) (*testClient, *testCache, []string) {
	t.Helper()
	reads := &readLog{}
	h := origintest.New(t, origintest.Options{Files: 3, MinSize: 300 << 10, MaxSize: 400 << 10, Seed: seed, Front: reads.front})
	cache := newTestCache(t, h, false)
	cfg := cacheConfig(t, h, cache.srv)
	cfg.RepairURLs = []string{cache.srv.URL}
	cfg.ExitOnEnd = true
	if _, err := h.Pub.Start(unicasttest.Ad(t, "viacache")); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	for i, p := range h.Paths {
		if i == lossy {
			h.SetDrop(drop)
		}
		h.PushAll([]string{p})
		h.Pub.Transport().Flush()
		h.SetDrop(nil)
	}
	if lossy < len(h.Paths)-1 {
		// A later push shows the loss; the last one's shows with the end.
		tc.waitPaths(15*time.Second, h.Paths)
	}
	tc.endAndExit(t, h)
	tc.checkExact(h, h.Paths)
	return tc, cache, reads.list()
}

// readLog records the resources_from of every description read an
// origintest origin serves (as its Front).
type readLog struct {
	mu    sync.Mutex
	froms []string
}

func (l *readLog) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wellknown.Path {
			l.mu.Lock()
			l.froms = append(l.froms, r.URL.Query().Get(wellknown.ResourcesFromParam))
			l.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// list returns the reads recorded so far.
func (l *readLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.froms)
}

// checkNoEntryReads fails t when a description read asked for entries
// from a number: only whole reads (the start) and reads of the sessions
// alone are expected.
func checkNoEntryReads(t *testing.T, froms []string) {
	t.Helper()
	for _, f := range froms {
		if f != "" && f != wellknown.ResourcesFromNext {
			t.Errorf("reads asked resources_from %q; want only whole reads (the start) and reads of the sessions alone (%q)", froms, wellknown.ResourcesFromNext)
			return
		}
	}
}
