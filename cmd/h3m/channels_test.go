package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
)

// makeLadder has ffmpeg encode a three-rendition DASH ladder (one
// adaptation set, 160x90, 96x54 and 64x36, four 1 s segments each), each
// rendition in its own folder r0, r1, r2, as a packager writes one for
// `serve --channels`.
func makeLadder(t *testing.T) string {
	t.Helper()
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg is not installed (.ci/run installs it)")
	}
	dir := t.TempDir()
	for _, r := range []string{"r0", "r1", "r2"} {
		os.Mkdir(filepath.Join(dir, r), 0o755)
	}
	cmd := exec.Command(ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc=size=160x90:rate=10", "-t", "4",
		"-filter_complex", "[0:v]split=3[a][b][c];[b]scale=96:54[b2];[c]scale=64:36[c2]",
		"-map", "[a]", "-map", "[b2]", "-map", "[c2]",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "10", "-keyint_min", "10", "-sc_threshold", "0",
		"-b:v:0", "200k", "-b:v:1", "100k", "-b:v:2", "50k",
		"-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0", "-adaptation_sets", "id=0,streams=v",
		"-init_seg_name", "r$RepresentationID$/init.m4s", "-media_seg_name", "r$RepresentationID$/seg-$Number%03d$.m4s",
		"manifest.mpd")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	for _, f := range []string{"manifest.mpd", "r0/init.m4s", "r1/seg-004.m4s", "r2/seg-004.m4s"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("ffmpeg wrote no %s: %v", f, err)
		}
	}
	return dir
}

// TestChannelsGatewayJoinsOnDemand: `serve --channels` runs a session per
// rendition of a three-rendition ladder (plus the main session, which
// carries the MPD), published live segment by segment; `gateway
// --channel-idle` serves a player that plays rendition r0, then switches to
// r1. The gateway joins the main session at once, r0 on the player's first
// request of it, r1 on the switch, never r2, and leaves r0 once it has gone
// unused; every media segment is served as it came by multicast, the init
// segments (pushed before the player wanted their rendition) over unicast,
// and nothing of a rendition the gateway did not join is fetched.
func TestChannelsGatewayJoinsOnDemand(t *testing.T) {
	ladder := makeLadder(t)
	live := t.TempDir()
	for _, r := range []string{"r0", "r1", "r2"} {
		os.Mkdir(filepath.Join(live, r), 0o755)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	gwAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	srv, cert := startServer(t, nil, "--dir", live, "--channels", "--watch", "--settle", "100ms",
		"--group", "232.255.8.10", "--port", "5810", "--listen", listen, "--rate", "20000000")
	for _, want := range []string{"channel /r0/: session", "on 232.255.8.11:5811", "channel /r2/: session", "on 232.255.8.13:5813"} {
		if !strings.Contains(srv.output(), want) {
			t.Fatalf("serve did not print %q:\n%s", want, srv.output())
		}
	}
	const idle = 3 * time.Second
	gw := start(t, nil, h3mBinary, "gateway", "--url", "https://"+listen+"/", "--ca", cert, "--listen", gwAddr,
		"--channel-idle", idle.String(), "--hold-timeout", "20s")
	waitFor(t, "the gateway", 10*time.Second, func() bool { return strings.Contains(gw.output(), "gateway for") })
	base := "http://" + gwAddr

	status := func() gateway.Status {
		t.Helper()
		resp, err := http.Get(base + gateway.StatusJSONPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st gateway.Status
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	byChannel := func(st gateway.Status) map[string]gateway.SessionStatus {
		m := map[string]gateway.SessionStatus{}
		for _, s := range st.Sessions {
			if s.State == "active" {
				m[s.Channel] = s
			}
		}
		return m
	}
	joined := func(st gateway.Status) string { // the channels joined, in order
		var out []string
		for _, ch := range []string{"", "/r0/", "/r1/", "/r2/"} {
			if s, ok := byChannel(st)[ch]; ok && s.Joined {
				out = append(out, "["+ch+"]")
			}
		}
		return strings.Join(out, "")
	}
	waitFor(t, "the gateway to know the four sessions and join the main one", 10*time.Second, func() bool {
		st := status()
		return len(byChannel(st)) == 4 && joined(st) == "[]"
	})
	for _, ch := range []string{"/r0/", "/r1/", "/r2/"} {
		if s := byChannel(status())[ch]; !s.Idle || s.Joined {
			t.Fatalf("channel %s joined before any player asked for it: %+v", ch, s)
		}
	}

	// publish copies files of the ladder into the served folder, as a live
	// packager writes them (through a temporary name).
	publish := func(names ...string) {
		t.Helper()
		for _, n := range names {
			b, err := os.ReadFile(filepath.Join(ladder, n))
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(live, n)
			if err := os.WriteFile(dst+".tmp", b, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	type result struct {
		via string
		err error
	}
	get := func(name string) result {
		resp, err := http.Get(base + "/" + name)
		if err != nil {
			return result{err: err}
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return result{err: err}
		}
		want, _ := os.ReadFile(filepath.Join(ladder, name))
		if resp.StatusCode != http.StatusOK || !bytes.Equal(b, want) {
			return result{err: fmt.Errorf("%s: status %d, %d bytes, want %d", name, resp.StatusCode, len(b), len(want))}
		}
		return result{via: resp.Header.Get(gateway.ViaHeader)}
	}

	// The packager starts: the MPD and every rendition's init segment.
	publish("manifest.mpd", "r0/init.m4s", "r1/init.m4s", "r2/init.m4s")
	waitFor(t, "the MPD by multicast, on the main session", 10*time.Second, func() bool {
		r := get("manifest.mpd")
		return r.err == nil && r.via == client.ViaMulticast
	})
	// play requests the init segment of a rendition the gateway has not
	// joined (pushed before: it comes over unicast), then its segments:
	// each request is made, is held by the gateway (which joins the
	// rendition on the first), and then the segment of every rendition is
	// published; the player's must come by multicast.
	play := func(r string, segs ...int) {
		t.Helper()
		if res := get(r + "/init.m4s"); res.err != nil || res.via != gateway.ViaUnicast {
			t.Fatalf("%s/init.m4s: via %q, %v", r, res.via, res.err)
		}
		for _, n := range segs {
			seg := fmt.Sprintf("seg-%03d.m4s", n)
			held := status().Held
			done := make(chan result, 1)
			go func() { done <- get(r + "/" + seg) }()
			waitFor(t, r+"/"+seg+" held and "+r+" joined", 10*time.Second, func() bool {
				st := status()
				return st.Held > held && byChannel(st)["/"+r+"/"].Joined
			})
			publish("r0/"+seg, "r1/"+seg, "r2/"+seg)
			select {
			case res := <-done:
				if res.err != nil || res.via != client.ViaMulticast {
					t.Fatalf("%s/%s: via %q, %v", r, seg, res.via, res.err)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("%s/%s: no answer", r, seg)
			}
		}
	}
	play("r0", 1, 2)
	if got := joined(status()); got != "[][/r0/]" {
		t.Fatalf("joined %s while the player plays r0, want [][/r0/]", got)
	}
	play("r1", 3, 4) // the switch
	st := status()
	if s := byChannel(st)["/r1/"]; !s.Joined {
		t.Fatalf("r1 not joined after the switch: %+v", s)
	}
	waitFor(t, "the gateway to leave r0, unused", 10*idle, func() bool {
		s := byChannel(status())["/r0/"]
		return !s.Joined && s.Idle
	})
	st = status()
	if s := byChannel(st)["/r2/"]; s.Joined || s.Packets != 0 {
		t.Errorf("r2, never played, was received: %+v", s)
	}
	if s := byChannel(st)[""]; !s.Joined {
		t.Errorf("the main session was left: %+v", s)
	}
	rs := st.Receiver
	if rs == nil {
		t.Fatal("no receiver status")
	}
	// Joins: the main session, r0, r1 (each once: the player kept them in
	// use); nothing of r1 and r2 pushed while not joined was fetched.
	if rs.Joins != 3 || rs.IdleLeaves < 1 || rs.Fallback != 0 {
		t.Errorf("receiver: %d joins (want 3), %d idle leaves (want 1 or more), %d fetched whole (want 0)", rs.Joins, rs.IdleLeaves, rs.Fallback)
	}
	t.Logf("served %v; held %d (arrived %d), passed through %d; receiver: %d multicast, %d joins, %d leaves",
		st.Served, st.Held, st.HeldArrived, st.Passthrough, rs.Multicast, rs.Joins, rs.Leaves)
}

// TestCLIServeChannelsErrors: --channels needs subfolders, and group
// addresses and ports for them; serve says so before it starts anything.
func TestCLIServeChannelsErrors(t *testing.T) {
	flat := t.TempDir()
	os.WriteFile(filepath.Join(flat, "manifest.mpd"), []byte("<MPD/>"), 0o644)
	os.Mkdir(filepath.Join(flat, ".hidden"), 0o755)
	ladder := t.TempDir()
	os.Mkdir(filepath.Join(ladder, "r0"), 0o755)
	os.Mkdir(filepath.Join(ladder, "r1"), 0o755)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--dir", flat}, "has no subfolder to make a channel of"},
		{[]string{"--dir", ladder, "--group", "232.255.255.255"}, "no SSM group address left after 232.255.255.255 for channel r0"},
		{[]string{"--dir", ladder, "--port", "65535"}, "no port left after 65535 for channel r0"},
	} {
		listen := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
		out, errOut, code := runH3M(t, append([]string{"serve", "--channels", "--once", "--listen", listen}, c.args...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) || strings.Contains(out, "session") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want usage error %q", c.args, code, out, errOut, c.want)
		}
	}
}
