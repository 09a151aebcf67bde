package interop

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSnoopingChannels runs `h3m serve --channels` (a session per rendition
// r0, r1, r2 beside the main session) on the snooping switch, with an
// `h3m gateway --channel-idle` on each receiver host. A player on r1 plays
// rendition r0, then switches to r1; r2's gateway has no player. Checked
// against the bridge's own database: both receivers' ports join the main
// group at once; r1's port joins r0's group on the player's first request of
// it, r1's group on the switch, and leaves r0's group once unused; no port
// ever joins r2's group, and r2's port no rendition's. The player's segments
// come by multicast.
func TestSnoopingChannels(t *testing.T) {
	needNetns(t)
	h3m := h3mBinary(t)
	needCLI(t, h3m, "gateway")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	n, err := NewNetwork(ctx, ModeNetns, Topology{Receivers: 2, Snooping: true})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	mainGroup := netip.MustParseAddr("232.78.0.10")
	group := func(r int) netip.Addr { // channel r's group: the (r+1)th after the main one
		g := mainGroup
		for range r + 1 {
			g = g.Next()
		}
		return g
	}

	dir := t.TempDir()
	www := filepath.Join(dir, "www")
	content := map[string][]byte{"manifest.mpd": []byte("<MPD/>")}
	for r := range 3 {
		os.MkdirAll(filepath.Join(www, fmt.Sprintf("r%d", r)), 0o755)
		for s := 1; s <= 2; s++ {
			b := make([]byte, 30_000+r*1000+s)
			rand.Read(b)
			content[fmt.Sprintf("r%d/seg-%d.m4s", r, s)] = b
		}
	}
	// publish writes files into the served folder as a packager does.
	publish := func(names ...string) {
		t.Helper()
		for _, name := range names {
			dst := filepath.Join(www, name)
			if err := os.WriteFile(dst+".tmp", content[name], 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	srvLog := filepath.Join(dir, "serve.log")
	srv, err := startProc(n.Sender, "sender", []string{h3m, "serve", "--dir", www, "--channels", "--watch", "--settle", "100ms",
		"--group", mainGroup.String(), "--port", fmt.Sprint(n.Port), "--listen", n.Server.String(),
		"--interface", n.Sender.Iface, "--source", n.Sender.Addr.String(), "--rate", "20000000"}, env, dir, srvLog)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop(2 * time.Second)
	waitLog(t, srvLog, "receivers:", 15*time.Second)

	watch := watchMDB(ctx, n, n.Sender.Addr, mainGroup, group(0), group(1), group(2))
	gwPort := 28080
	for i, h := range n.Receivers {
		log := filepath.Join(dir, fmt.Sprintf("gateway-%s.log", h.Name))
		p, err := startProc(h, "gateway-"+h.Name, []string{h3m, "gateway", "--url", "https://" + n.Server.String() + "/",
			"--ca", filepath.Join(dir, "h3m-cert.pem"), "--interface", h.Iface, "--listen", fmt.Sprintf("127.0.0.1:%d", gwPort),
			"--channel-idle", "2s", "--hold-timeout", "20s"}, env, dir, log)
		if err != nil {
			t.Fatal(err)
		}
		defer p.stop(2 * time.Second)
		waitLog(t, log, "gateway for", 15*time.Second)
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		err = n.WaitMember(wctx, h, mainGroup, n.Sender.Addr, true)
		wcancel()
		if err != nil {
			t.Fatalf("receiver %d: the main session: %v", i+1, err)
		}
	}

	host := n.Receivers[0]
	player := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return host.DialContext(ctx, network, addr)
		},
		DisableKeepAlives: true,
	}}
	get := func(name string) (string, error) {
		resp, err := player.Get(fmt.Sprintf("http://127.0.0.1:%d/%s", gwPort, name))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return "", err
		}
		if resp.StatusCode != http.StatusOK || string(b) != string(content[name]) {
			return "", fmt.Errorf("%s: status %d, %d bytes, want %d", name, resp.StatusCode, len(b), len(content[name]))
		}
		return resp.Header.Get("X-H3m-Via"), nil
	}
	publish("manifest.mpd")
	if _, err := get("manifest.mpd"); err != nil {
		t.Fatal(err)
	}
	// play asks for segment s of rendition r, waits until the switch
	// forwards r's group to the player's host, then publishes segment s
	// of every rendition.
	play := func(r, s int) {
		t.Helper()
		name := fmt.Sprintf("r%d/seg-%d.m4s", r, s)
		type result struct {
			via string
			err error
		}
		done := make(chan result, 1)
		go func() {
			via, err := get(name)
			done <- result{via, err}
		}()
		wctx, wcancel := context.WithTimeout(ctx, 15*time.Second)
		err := n.WaitMember(wctx, host, group(r), n.Sender.Addr, true)
		wcancel()
		if err != nil {
			t.Fatalf("%s requested: %v", name, err)
		}
		var names []string
		for x := range 3 {
			names = append(names, fmt.Sprintf("r%d/seg-%d.m4s", x, s))
		}
		publish(names...)
		res := <-done
		if res.err != nil || res.via != "multicast" {
			t.Fatalf("%s: via %q, %v", name, res.via, res.err)
		}
	}
	play(0, 1)
	switchAt := time.Now()
	play(1, 2)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	err = n.WaitMember(wctx, host, group(0), n.Sender.Addr, false)
	wcancel()
	if err != nil {
		t.Fatalf("r0 unused: %v", err)
	}
	t.Logf("r0 left %v after the switch", time.Since(switchAt).Round(100*time.Millisecond))
	for _, h := range n.Receivers {
		for r := range 3 {
			first, _ := watch.span(h.Port, group(r))
			if want := h == host && r < 2; !first.IsZero() != want {
				t.Errorf("%s: member of r%d's group %s: %v, want %v", h.Name, r, group(r), !first.IsZero(), want)
			}
		}
	}
	f0, _ := watch.span(host.Port, group(0))
	f1, _ := watch.span(host.Port, group(1))
	if !f0.Before(f1) {
		t.Errorf("%s joined r1's group (%v) before r0's (%v)", host.Name, f1, f0)
	}
}

// waitLog waits until the log file holds s.
func waitLog(t *testing.T, file, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(file)
		if strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v: %s", file, s, timeout, lastLines(b, 6))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
