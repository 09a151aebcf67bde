package origin_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// TestOriginChannels: AddChannel runs a session per channel beside the main
// one; the description names each session's channel, a channel's publisher
// pushes only the paths under it, and Close ends every session.
func TestOriginChannels(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o, certFile, served := serveFolder(ctx, t, map[string]string{"manifest.mpd": "<MPD/>", "r0/seg-1.m4s": "r0 1", "r1/seg-1.m4s": "r1 1"})

	for _, bad := range []string{"", "r0/", "/r0", "/r0/?q", "/../"} {
		if _, err := o.AddChannel(bad); err == nil {
			t.Errorf("AddChannel(%q) accepted", bad)
		}
	}
	ids := map[string]string{} // channel -> session
	main, err := o.Publisher.Start(unicasttest.Ad(t, "main"))
	if err != nil {
		t.Fatal(err)
	}
	ids[""] = main
	for _, ch := range []string{"/r0/", "/r1/"} {
		p, err := o.AddChannel(ch)
		if err != nil {
			t.Fatal(err)
		}
		if p.Channel() != ch {
			t.Errorf("Channel() = %q, want %q", p.Channel(), ch)
		}
		if ids[ch], err = p.Start(unicasttest.Ad(t, "ch"+ch[2:3])); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := o.AddChannel("/r0/"); err == nil {
		t.Error("a channel added twice")
	}
	chans := o.Channels()
	if len(chans) != 2 {
		t.Fatalf("%d channels", len(chans))
	}
	if _, err := chans[0].PushFile(ctx, "/r0/seg-1.m4s"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/r1/seg-1.m4s", "/manifest.mpd", "/r0"} {
		if _, err := chans[0].PushFile(ctx, p); err == nil {
			t.Errorf("channel /r0/ pushed %s", p)
		}
	}
	if _, err := o.Publisher.PushFile(ctx, "/manifest.mpd"); err != nil {
		t.Fatal(err)
	}

	d := discoverOrigin(ctx, t, o, certFile)
	got := map[string]string{}
	for _, s := range d.Sessions {
		got[s.Channel] = s.ID
	}
	if len(got) != 3 || got[""] != ids[""] || got["/r0/"] != ids["/r0/"] || got["/r1/"] != ids["/r1/"] {
		t.Fatalf("description sessions by channel %v, want %v", got, ids)
	}
	for _, r := range d.Resources {
		if want := map[string]string{"/r0/seg-1.m4s": ids["/r0/"], "/manifest.mpd": ids[""]}[r.Path]; r.Session != want {
			t.Errorf("%s pushed on session %s, want %s", r.Path, r.Session, want)
		}
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, s := range o.Sessions.List() {
		if s.State != wellknown.StateEnded {
			t.Errorf("session %s (channel %q) %s after Close", s.ID, s.Channel, s.State)
		}
	}
	if _, err := chans[1].Push(ctx, &origin.Content{Path: "/r1/x", Body: strings.NewReader("x"), Size: 1}); !errors.Is(err, origin.ErrPublisherClosed) {
		t.Errorf("push after Close: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
}

func TestSessionsAnnounceChannel(t *testing.T) {
	var s origin.Sessions
	if _, err := s.AnnounceChannel(unicasttest.Ad(t, "a"), "/a//b/"); !errors.Is(err, wellknown.ErrTarget) {
		t.Errorf("a channel not in normal form: %v", err)
	}
	id, err := s.AnnounceChannel(unicasttest.Ad(t, "a"), "/a/b/")
	if err != nil {
		t.Fatal(err)
	}
	if ss, _ := s.Get(id); ss.Channel != "/a/b/" {
		t.Errorf("channel %q", ss.Channel)
	}
}
