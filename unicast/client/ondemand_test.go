package client

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
)

// channelOrigin runs, beside the harness's main session, a session for
// each channel, and writes the files of paths into its folder.
func channelOrigin(t *testing.T, channels []string, paths []string) (*origintest.Harness, map[string]*origin.Publisher) {
	h := origintest.New(t, origintest.Options{Files: 1})
	for _, p := range paths {
		f := filepath.Join(h.Dir, filepath.FromSlash(p))
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte("content of "+p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Pub.Start(unicasttest.Ad(t, "main")); err != nil {
		t.Fatal(err)
	}
	pubs := map[string]*origin.Publisher{}
	for i, ch := range channels {
		p, err := origin.NewPublisher(origin.PublisherConfig{
			Interface: "lo", TTL: 1, Files: h.Files, Authority: h.Addr, Channel: ch,
			Sessions: h.Sessions, Catalog: h.Catalog, Logger: h.Log,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Start(unicasttest.Ad(t, "ch"+string(rune('0'+i)))); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close(context.Background()) })
		pubs[ch] = p
	}
	return h, pubs
}

func sessionOf(c *Client, channel string) SessionInfo {
	for _, s := range c.Sessions() {
		if s.Channel == channel {
			return s
		}
	}
	return SessionInfo{}
}

// TestOnDemandChannels: with ChannelIdle, a channel's session is joined
// only once Use names a path under it (the longest channel that holds it),
// what it pushed before is neither received nor fetched but reported
// missed, what it pushes while used comes by multicast, and it is left once
// unused for ChannelIdle; the main session is joined at once. Without
// ChannelIdle every session is joined.
func TestOnDemandChannels(t *testing.T) {
	h, pubs := channelOrigin(t, []string{"/a/", "/a/b/"}, []string{"a/early.bin", "a/late.bin", "a/b/early.bin", "a/b/late.bin"})
	ctx := context.Background()
	cfg := clientConfig(h)
	cfg.ChannelIdle = 2 * time.Second
	tc := runClient(h, cfg)
	all := runClient(h, clientConfig(h)) // ChannelIdle 0: every session at once
	all.waitJoined(3)
	tc.waitJoined(1)
	unicasttest.WaitFor(t, 5*time.Second, "three sessions known", func() bool { return len(tc.c.Sessions()) == 3 })
	for _, ch := range []string{"/a/", "/a/b/"} {
		if s := sessionOf(tc.c, ch); s.Joined || !s.Idle {
			t.Fatalf("channel %s joined unused: %+v", ch, s)
		}
	}
	if s := sessionOf(tc.c, ""); !s.Joined || s.Idle {
		t.Fatalf("the main session is not joined: %+v", s)
	}
	if ch, _ := all.c.Use("/a/early.bin"); ch != "" {
		t.Errorf("without ChannelIdle, Use found channel %q", ch)
	}
	if ch, _ := tc.c.Use("/elsewhere.bin"); ch != "" {
		t.Errorf("Use found channel %q for a path in none", ch)
	}

	// Pushed while nothing uses the channels: not received, not fetched.
	for _, p := range [][2]string{{"/a/", "/a/early.bin"}, {"/a/b/", "/a/b/early.bin"}} {
		if _, err := pubs[p[0]].PushFile(ctx, p[1]); err != nil {
			t.Fatal(err)
		}
	}
	all.waitPaths(10*time.Second, []string{"/a/early.bin", "/a/b/early.bin"})
	// The client's catalogue lists them once read: then Use reports the
	// one of its channel missed.
	unicasttest.WaitFor(t, 10*time.Second, "/a/b/early.bin missed", func() bool {
		ch, missed := tc.c.Use("/a/b/early.bin")
		if ch != "/a/b/" {
			t.Fatalf("Use(/a/b/early.bin) found channel %q, want the longest, /a/b/", ch)
		}
		return missed
	})
	// A player keeps using /a/b/ from now on.
	stopPlaying := keepUsing(tc, "/a/b/late.bin")
	unicasttest.WaitFor(t, 5*time.Second, "/a/b/ joined", func() bool { return sessionOf(tc.c, "/a/b/").Joined })
	if s := sessionOf(tc.c, "/a/"); s.Joined {
		t.Fatalf("/a/ joined for a path of /a/b/: %+v", s)
	}
	if _, err := pubs["/a/b/"].PushFile(ctx, "/a/b/late.bin"); err != nil {
		t.Fatal(err)
	}
	if _, err := pubs["/a/"].PushFile(ctx, "/a/late.bin"); err != nil {
		t.Fatal(err)
	}
	tc.waitPaths(10*time.Second, []string{"/a/b/late.bin"})
	if d := tc.deliveries("/a/b/late.bin"); d[0].Via != ViaMulticast || d[0].Err != nil {
		t.Errorf("/a/b/late.bin: via %q, %v", d[0].Via, d[0].Err)
	}
	stopPlaying()
	unicasttest.WaitFor(t, 20*time.Second, "/a/b/ left, unused", func() bool {
		s := sessionOf(tc.c, "/a/b/")
		return !s.Joined && s.Idle
	})
	// Long enough for a catalogue read and a lost-promise grace: nothing of
	// the channels pushed while unused was fetched.
	all.waitPaths(10*time.Second, []string{"/a/late.bin", "/a/b/late.bin"})
	time.Sleep(cfg.LostGrace + 3*cfg.CatalogPoll)
	for _, p := range []string{"/a/early.bin", "/a/b/early.bin", "/a/late.bin"} {
		if d := tc.deliveries(p); len(d) != 0 {
			t.Errorf("%s delivered (via %q) to a client that never used it", p, d[0].Via)
		}
	}
	st := tc.c.Stats()
	if st.Joins != 2 || st.IdleLeaves != 1 || st.Fallback != 0 || st.Requests != 0 {
		t.Errorf("stats: %d joins (want 2), %d idle leaves (want 1), %d fetched, %d requests (want 0)", st.Joins, st.IdleLeaves, st.Fallback, st.Requests)
	}
}

// TestOnDemandChannelRollover: a rollover successor in a channel in use is
// joined at once, and carries the channel's pushes by multicast; one in a
// channel nothing uses is not joined.
func TestOnDemandChannelRollover(t *testing.T) {
	h, pubs := channelOrigin(t, []string{"/a/", "/b/"}, []string{"a/1.bin", "a/2.bin"})
	ctx := context.Background()
	cfg := clientConfig(h)
	cfg.ChannelIdle = 2 * time.Second
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	unicasttest.WaitFor(t, 5*time.Second, "three sessions known", func() bool { return len(tc.c.Sessions()) == 3 })
	defer keepUsing(tc, "/a/1.bin")() // a player of /a/
	tc.waitJoined(2)
	if _, err := pubs["/a/"].PushFile(ctx, "/a/1.bin"); err != nil {
		t.Fatal(err)
	}
	tc.waitPaths(10*time.Second, []string{"/a/1.bin"})
	for _, ch := range []string{"/a/", "/b/"} {
		cur := pubs[ch].Current()
		s, _ := h.Sessions.Get(cur)
		if _, err := pubs[ch].Rollover(ctx, origin.Rekey(s.Advertisement), 300*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pubs["/a/"].PushFile(ctx, "/a/2.bin"); err != nil {
		t.Fatal(err)
	}
	tc.waitPaths(10*time.Second, []string{"/a/2.bin"})
	if d := tc.deliveries("/a/2.bin"); d[0].Via != ViaMulticast || d[0].Session != pubs["/a/"].Current() {
		t.Errorf("/a/2.bin: via %q on session %s, want multicast on the successor %s (%v)", d[0].Via, d[0].Session, pubs["/a/"].Current(), d[0].Err)
	}
	for _, s := range tc.c.Sessions() {
		if s.Channel == "/b/" && (s.Joined || !s.Idle) {
			t.Errorf("a session of the unused channel /b/ is joined: %+v", s)
		}
	}
	if st := tc.c.Stats(); st.Joins != 3 || st.Requests != 0 {
		t.Errorf("%d joins (want 3: main, /a/ and its successor), %d unicast requests (want 0)", st.Joins, st.Requests)
	}
}

// TestOnDemandUsedWhileLeaving: a channel used again while its session's
// receiver stops for idleness is joined again, whichever comes first, and
// never counts as missing multicast.
func TestOnDemandUsedWhileLeaving(t *testing.T) {
	h, pubs := channelOrigin(t, []string{"/a/"}, []string{"a/1.bin"})
	cfg := clientConfig(h)
	cfg.ChannelIdle = time.Hour // only the test's clock makes it idle
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	unicasttest.WaitFor(t, 5*time.Second, "two sessions known", func() bool { return len(tc.c.Sessions()) == 2 })
	tc.c.Use("/a/1.bin")
	tc.waitJoined(2)
	for round := 1; round <= 3; round++ {
		tc.c.parkIdle(time.Now().Add(2 * time.Hour)) // unused for two hours: leave
		tc.c.Use("/a/1.bin")                         // ... and a player is back
		unicasttest.WaitFor(t, 5*time.Second, "/a/ left and joined again", func() bool {
			st := tc.c.Stats()
			return st.IdleLeaves == round && st.Joins == 2+round && sessionOf(tc.c, "/a/").Joined
		})
	}
	if _, err := pubs["/a/"].PushFile(context.Background(), "/a/1.bin"); err != nil {
		t.Fatal(err)
	}
	tc.waitPaths(10*time.Second, []string{"/a/1.bin"})
	st := tc.c.Stats()
	if d := tc.deliveries("/a/1.bin"); d[0].Via != ViaMulticast || st.FallbackEntered != 0 {
		t.Errorf("/a/1.bin via %q; fallback entered %d times", d[0].Via, st.FallbackEntered)
	}
}

// keepUsing has a player use path every 20 ms until the returned function
// is called (which waits for it to stop).
func keepUsing(tc *testClient, path string) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
				tc.c.Use(path)
			}
		}
	}()
	return func() { close(done); <-stopped }
}
