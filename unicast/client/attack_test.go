package client

import (
	"bytes"
	crand "crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// TestForgedPathLeavesNoOrigin: a key holder promises paths that are not
// origin-form targets ("@host:port/../seg-000.bin", which appended to the
// origin's URL names another host): whole, losing bytes, or with no push
// stream at all. Nothing is fetched off the origin (the other server gets
// no request), nothing of them is delivered, each is counted once, and a
// genuine push in between still arrives.
func TestForgedPathLeavesNoOrigin(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 2, MinSize: 3000, MaxSize: 3000, Seed: 41})
	evil := startCountingServer(h)
	f := announceForged(h, "forged-path")
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)

	escape := "@" + evil.addr + "/../seg-000.bin"
	body := h.Content["/seg-000.bin"]
	hdr := http.Header{"Content-Type": {"application/octet-stream"}}
	bad := []string{escape, "https://" + evil.addr + "/seg-000.bin", "/a/../../seg-000.bin", "/.git/config"}
	f.push(escape, hdr, body, len(body))   // whole
	f.push(escape, hdr, body, 2*len(body)) // loses its tail: repair
	f.promise(escape)                      // no push stream: fetch
	for _, p := range bad[1:] {
		f.push(p, hdr, body, 2*len(body))
	}
	// Runs of "/" collapse: this one is a path on the origin (which has no
	// such file), never an authority.
	collapsed := "//" + evil.addr + "/seg-000.bin"
	f.push(collapsed, hdr, body, 2*len(body))
	f.push("/seg-001.bin", hdr, h.Content["/seg-001.bin"], len(h.Content["/seg-001.bin"]))
	pushes := 4 + len(bad)

	tc.waitPaths(30e9, []string{"/seg-001.bin"})
	waitSettled(tc, uint64(pushes))
	if n := evil.requests.Load(); n != 0 {
		t.Errorf("the other server got %d requests", n)
	}
	for _, p := range append(bad, collapsed, collapsed[1:]) {
		if ds := tc.deliveries(p); len(ds) != 0 {
			t.Errorf("%q delivered: %+v", p, ds[0])
		}
	}
	st := tc.c.Stats()
	if st.RejectedPaths != pushes-2 || st.OffOrigin != 0 {
		t.Errorf("rejected %d paths (want %d), %d requests off the origin", st.RejectedPaths, pushes-2, st.OffOrigin)
	}
	tc.checkExact(h, []string{"/seg-001.bin"})
}

// TestRollbackRefused: the catalogue lists /update.bin twice, the second
// (current) version last. A key holder pushes the first version again (a
// captured push, replayed), then the first version's body under the
// current ETag with its own digests, and with no digest at all: each is
// refused, counted, and never delivered; the current version, pushed
// whole, is delivered.
func TestRollbackRefused(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1})
	f := announceForged(h, "rollback")
	sid := wellknown.SessionID(&f.ad)
	file := filepath.Join(h.Dir, "update.bin")
	v1, v2 := bytes.Repeat([]byte("old "), 3000), bytes.Repeat([]byte("new!"), 2500)
	os.WriteFile(file, v1, 0o644)
	e1 := list(h, sid, "/update.bin", 100)
	os.WriteFile(file, v2, 0o644)
	e2 := list(h, sid, "/update.bin", 101)
	if e1.ETag == e2.ETag {
		t.Fatal("the two versions have one ETag")
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)

	fields := func(e wellknown.CatalogEntry, etag string, digests bool) http.Header {
		hdr := http.Header{"Content-Type": {e.ContentType}, "Etag": {etag}}
		if digests {
			hdr.Set("Content-Digest", e.ContentDigest)
			hdr.Set("Digest", e.Digest)
		}
		return hdr
	}
	f.push("/update.bin", fields(e1, e1.ETag, true), v1, len(v1))  // replayed
	f.push("/update.bin", fields(e1, e2.ETag, true), v1, len(v1))  // current ETag, old body and digests
	f.push("/update.bin", fields(e1, e2.ETag, false), v1, len(v1)) // current ETag, old body, no digest
	f.push("/update.bin", fields(e2, e2.ETag, true), v2, len(v2))  // the current version
	waitSettled(tc, 4)
	unicasttest.WaitFor(t, 10*time.Second, "3 stale pushes refused", func() bool { return tc.c.Stats().Stale >= 3 })
	ds := tc.deliveries("/update.bin")
	if len(ds) != 1 || !bytes.Equal(readBody(t, ds[0]), v2) {
		for _, d := range ds {
			t.Errorf("delivered %d bytes via %s (etag %s); the current version has %d", d.Size, d.Via, d.ETag, len(v2))
		}
		t.Fatalf("%d deliveries of /update.bin, want the current version once", len(ds))
	}
	if st := tc.c.Stats(); st.Stale != 3 {
		t.Errorf("stale %d, want 3", st.Stale)
	}
}

// TestPromiseFloodBounded: a key holder promises /big.bin 50 times and 500
// paths the origin never pushed, with no push stream: every promise fails.
// /big.bin (listed) is downloaded once; the forged paths (not listed) are
// never asked for; the client ends with no work left.
func TestPromiseFloodBounded(t *testing.T) {
	rc := &requestCounter{}
	h := origintest.New(t, origintest.Options{Files: 1, Wrap: rc.wrap})
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(h.Dir, "big.bin"), big, 0o644)
	f := announceForged(h, "flood")
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	list(h, wellknown.SessionID(&f.ad), "/big.bin", 1000)
	const forged = 500
	for range 50 {
		f.promise("/big.bin")
	}
	for i := range forged {
		f.promise(fmt.Sprintf("/forged-%d.bin", i))
	}
	waitSettled(tc, 50+forged)
	tc.waitPaths(30*time.Second, []string{"/big.bin"})
	if n := rc.count("/big.bin"); n != 1 {
		t.Errorf("/big.bin downloaded %d times", n)
	}
	if n := rc.prefixed("/forged-"); n != 0 {
		t.Errorf("%d requests for forged paths", n)
	}
	if ds := tc.deliveries("/big.bin"); len(ds) != 1 || !bytes.Equal(readBody(t, ds[0]), big) {
		t.Errorf("/big.bin delivered %d times", len(ds))
	}
	st := tc.c.Stats()
	// Promises the receiver's cap on active pushes refused, or evicted
	// for newer ones before the client heard of them (the flood comes
	// faster than the client settles it), never reach the client: they
	// count with the forged ones it let go.
	var refused uint64
	for _, r := range tc.c.receivers() {
		refused += r.Stats().PushesRefused + r.Stats().PushesForgotten
	}
	t.Logf("stats: unlisted %d, merged %d, held dropped %d, jobs dropped %d, refused or forgotten by the receiver's caps %d", st.Unlisted, st.Merged, st.HeldDropped, st.JobsDropped, refused)
	if let := uint64(st.Unlisted + st.HeldDropped); let > forged || let+refused < forged {
		t.Errorf("unlisted %d + held dropped %d (+ %d refused or forgotten by caps), want %d", st.Unlisted, st.HeldDropped, refused, forged)
	}
}

// TestPromiseFloodWithoutCatalogue: an origin that serves no description
// (sessions from Alt-Svc only) gives the client no catalogue to check
// promises against; MaxJobs bounds the work then. The origin never answers
// the forged paths, so no job ends: exactly MaxJobs requests, the other
// promises dropped and counted.
func TestPromiseFloodWithoutCatalogue(t *testing.T) {
	rc := &requestCounter{hang: "/forged-"}
	h := origintest.New(t, origintest.Options{Files: 1, Wrap: rc.wrap, Front: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, wellknown.Path) {
				http.NotFound(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	f := announceForged(h, "flood-altsvc")
	cfg := clientConfig(h)
	cfg.MaxJobs, cfg.RepairConcurrency, cfg.RequestTimeout = 8, 8, time.Hour
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	const forged = 200
	for i := range forged {
		f.promise(fmt.Sprintf("/forged-%d.bin", i))
	}
	unicasttest.WaitFor(t, 30*time.Second, "every forged promise failed and dropped or taken", func() bool {
		return settledPushes(tc) >= forged && tc.c.Stats().JobsDropped >= forged-cfg.MaxJobs
	})
	unicasttest.WaitFor(t, 10*time.Second, "the jobs' first requests", func() bool { return rc.prefixed("/forged-") >= cfg.MaxJobs })
	if n, st := rc.prefixed("/forged-"), tc.c.Stats(); n != cfg.MaxJobs || st.JobsDropped != forged-cfg.MaxJobs {
		t.Errorf("%d requests, %d promises dropped; want %d and %d", n, st.JobsDropped, cfg.MaxJobs, forged-cfg.MaxJobs)
	}
}

// TestPromiseFlood200k: 200,000 forged promises of paths the origin never
// pushed. No request reaches the origin for them, the client ends with
// nothing held and no job, and the heap stays under 256 MiB throughout
// (sampled; the receiver's own caps are the receive path's).
func TestPromiseFlood200k(t *testing.T) {
	if testing.Short() {
		t.Skip("200,000 promises")
	}
	rc := &requestCounter{}
	h := origintest.New(t, origintest.Options{Files: 1, Wrap: rc.wrap})
	f := announceForged(h, "flood-200k")
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	peak := sampleHeap(t)
	const n = 200_000
	for p := range f.f.PromiseFlood(n, func(i int) string { return fmt.Sprintf("/f/%d", i) }) {
		if err := f.conn.Send(p); err != nil {
			t.Fatal(err)
		}
	}
	unicasttest.WaitFor(t, 2*time.Minute, "every promise settled and nothing left to do", func() bool {
		return settledPushes(tc) >= n && tc.idle()
	})
	st := tc.c.Stats()
	max := peak()
	t.Logf("heap peak %d MiB; unlisted %d, held dropped %d, jobs dropped %d, requests %d", max>>20, st.Unlisted, st.HeldDropped, st.JobsDropped, rc.prefixed("/f/"))
	if n := rc.prefixed("/f/"); n != 0 {
		t.Errorf("%d requests reached the origin", n)
	}
	if max > 256<<20 {
		t.Errorf("heap peaked at %d MiB", max>>20)
	}
}

// sampleHeap samples the heap in use every 50 ms until the returned
// function, which returns the peak, is called.
func sampleHeap(t *testing.T) func() uint64 {
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	finish := func() uint64 {
		once.Do(func() { close(stop); <-done })
		return peak.Load()
	}
	t.Cleanup(func() { finish() })
	return finish
}

// TestRepairThroughBoundedBuffer: a push of a 64 MiB file that brings only
// its first KiB is repaired with one range request of the rest, read
// through a bounded buffer into the body on disk: the whole test
// allocates far less than the part (before, the client allocated the
// whole part at once).
func TestRepairThroughBoundedBuffer(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB")
	}
	h := origintest.New(t, origintest.Options{Files: 1})
	const size = 64 << 20
	content := make([]byte, size)
	for i := range content {
		content[i] = byte(i>>9) ^ byte(i)
	}
	os.WriteFile(filepath.Join(h.Dir, "huge.bin"), content, 0o644)
	h.Content["/huge.bin"] = content
	f := announceForged(h, "huge")
	e := list(h, wellknown.SessionID(&f.ad), "/huge.bin", 0)
	cfg := clientConfig(h)
	cfg.Storage = h3m.DirStorage{Dir: t.TempDir()}
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	hdr := http.Header{"Etag": {e.ETag}, "Content-Digest": {e.ContentDigest}, "Digest": {e.Digest}}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f.push("/huge.bin", hdr, content[:1024], size)
	tc.waitPaths(time.Minute, []string{"/huge.bin"})
	runtime.ReadMemStats(&after)
	ds := tc.checkExact(h, []string{"/huge.bin"})
	if len(ds) == 1 && ds[0].Via != ViaRepair {
		t.Errorf("delivered via %s, want repair", ds[0].Via)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d MiB while repairing %d MiB", allocated>>20, size>>20)
	if allocated > size/2 {
		t.Errorf("allocated %d MiB to repair a %d MiB part", allocated>>20, size>>20)
	}
}

// TestSenderRestartedWithNewKeys: the origin restarts and its sender runs
// the same session ID with new keys. The client leaves the old session,
// joins the new one, and what is pushed then arrives by multicast (before,
// the client kept the old keys, heard nothing it could open and stayed in
// fallback for good).
func TestSenderRestartedWithNewKeys(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 2, MaxSize: 20 << 10, Seed: 61})
	ad := unicasttest.Ad(t, "same-id")
	if _, err := h.Pub.Start(ad); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths[:1])
	tc.waitPaths(10*time.Second, h.Paths[:1])

	h.Restart()
	ad.Session = ad.Session.Clone()
	ad.Session.Secret = make([]byte, len(ad.Session.Secret)) // the same session but for its key
	crand.Read(ad.Session.Secret)
	if _, err := h.Pub.Start(ad); err != nil {
		t.Fatal(err)
	}
	unicasttest.WaitFor(t, 10*time.Second, "the client to join the session again", func() bool { return tc.c.Stats().Joins >= 2 })
	h.PushAll(h.Paths[1:])
	tc.waitPaths(10*time.Second, h.Paths[1:])
	for _, d := range tc.checkExact(h, h.Paths) {
		if d.Via != ViaMulticast {
			t.Errorf("%s via %s, want multicast", d.Path, d.Via)
		}
	}
	// The client either saw the old session end first (its in-band end,
	// then a description without it) and joined the new one as new, or
	// met the new parameters under the joined ID and replaced it.
	if st := tc.c.Stats(); st.Replaced > 1 || st.Joins != 2 {
		t.Errorf("replaced %d sessions, %d joins; want at most 1 and 2", st.Replaced, st.Joins)
	}
}

// TestUnicastCapFollowsStorage: bodies written to disk are not capped by
// default over unicast either (multicast never capped them): a 257 MiB
// resource is fetched whole into a DirStorage. Bodies held in memory keep
// a cap by default.
func TestUnicastCapFollowsStorage(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want int64
	}{
		{Config{}, DefaultMaxResourceSize},
		{Config{Storage: h3m.MemoryStorage{MaxSize: 1 << 20}}, DefaultMaxResourceSize},
		{Config{Storage: h3m.DirStorage{Dir: "x"}}, -1},
		{Config{Storage: h3m.DirStorage{Dir: "x"}, MaxResourceSize: 1000}, 1000},
		{Config{MaxResourceSize: -1}, -1},
	} {
		c.cfg.URL, c.cfg.Interface = "https://127.0.0.1:1/", "lo"
		cl, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := cl.cfg.MaxResourceSize; got != c.want {
			t.Errorf("storage %T, MaxResourceSize %d: cap %d, want %d", c.cfg.Storage, c.cfg.MaxResourceSize, got, c.want)
		}
	}
	if testing.Short() {
		t.Skip("257 MiB")
	}
	h := origintest.New(t, origintest.Options{Files: 1})
	const size = DefaultMaxResourceSize + 1<<20
	// Sparse: no data on the origin's disk.
	if err := os.WriteFile(filepath.Join(h.Dir, "large.bin"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(h.Dir, "large.bin"), size); err != nil {
		t.Fatal(err)
	}
	f := announceForged(h, "large")
	list(h, wellknown.SessionID(&f.ad), "/large.bin", 0)
	cfg := clientConfig(h)
	cfg.Storage = h3m.DirStorage{Dir: t.TempDir()}
	cfg.RequestTimeout = time.Minute
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	f.promise("/large.bin") // fails: fetched whole
	tc.waitPaths(2*time.Minute, []string{"/large.bin"})
	d := tc.deliveries("/large.bin")[0]
	if d.Err != nil || d.Size != size || d.Via != ViaFallback {
		t.Fatalf("/large.bin: %d bytes via %s, %v", d.Size, d.Via, d.Err)
	}
}
