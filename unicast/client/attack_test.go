package client

import (
	"net/http"
	"testing"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
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
	bad := []string{escape, "//" + evil.addr + "/seg-000.bin", "https://" + evil.addr + "/seg-000.bin", "/a/../../seg-000.bin", "/.git/config"}
	f.push(escape, hdr, body, len(body))   // whole
	f.push(escape, hdr, body, 2*len(body)) // loses its tail: repair
	f.promise(escape)                      // no push stream: fetch
	for _, p := range bad[1:] {
		f.push(p, hdr, body, 2*len(body))
	}
	f.push("/seg-001.bin", hdr, h.Content["/seg-001.bin"], len(h.Content["/seg-001.bin"]))
	pushes := 3 + len(bad)

	tc.waitPaths(30e9, []string{"/seg-001.bin"})
	waitSettled(tc, uint64(pushes))
	if n := evil.requests.Load(); n != 0 {
		t.Errorf("the other server got %d requests", n)
	}
	for _, p := range bad {
		if ds := tc.deliveries(p); len(ds) != 0 {
			t.Errorf("%q delivered: %+v", p, ds[0])
		}
	}
	st := tc.c.Stats()
	if st.RejectedPaths != pushes-1 || st.OffOrigin != 0 {
		t.Errorf("rejected %d paths (want %d), %d requests off the origin", st.RejectedPaths, pushes-1, st.OffOrigin)
	}
	tc.checkExact(h, []string{"/seg-001.bin"})
}
