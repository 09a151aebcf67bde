package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
)

// browserDir holds what the browser test installs with npm (package.json
// and package-lock.json are committed; node_modules is not).
const browserDir = "testdata/browser"

// chromiumPath finds Debian's Chromium (H3M_CHROMIUM overrides).
func chromiumPath() (string, error) {
	if p := os.Getenv("H3M_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("not found")
}

// playReport is what play.mjs prints.
type playReport struct {
	TimedOut       bool     `json:"timedOut"`
	PageErrors     []string `json:"pageErrors"`
	FailedRequests []string `json:"failedRequests"`
	Console        []string `json:"console"`
	Page           struct {
		Manifest     string             `json:"manifest"`
		Playing      bool               `json:"playing"`
		Played       float64            `json:"played"`
		Errors       []string           `json:"errors"`
		Counts       map[string]int     `json:"counts"`
		Bytes        map[string]float64 `json:"bytes"`
		Segments     []map[string]any   `json:"segments"`
		StatusRead   bool               `json:"statusRead"`
		StatusErrors int                `json:"statusErrors"`
		Origin       string             `json:"origin"`
	} `json:"page"`
}

// TestBrowserPlaysDemoThroughGateway: headless Chromium plays the demo's
// live DASH stream with dash.js through the gateway, from a page on
// another origin (a server of this test, which also serves dash.js from
// the npm package), until 20 s of the stream have played. No dash.js
// error; every segment the page loaded came by multicast or repair (the
// X-H3m-Via field, readable through CORS); the page read the gateway's
// status across origins too.
func TestBrowserPlaysDemoThroughGateway(t *testing.T) {
	chromium, err := chromiumPath()
	if err != nil {
		t.Skip("Chromium is not installed (Debian package chromium; .ci/run installs it)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed (.ci/run installs the Debian packages nodejs and npm)")
	}
	dir, err := filepath.Abs(browserDir)
	if err != nil {
		t.Fatal(err)
	}
	dashJS := filepath.Join(dir, "node_modules", "dashjs", "dist", "modern", "umd")
	for _, p := range []string{filepath.Join(dashJS, "dash.all.min.js"), filepath.Join(dir, "node_modules", "puppeteer-core", "package.json")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("the browser test's npm packages are not installed: run npm ci in cmd/h3m/%s (.ci/run does)", browserDir)
		}
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed: the demo's live stream needs it (.ci/run installs it)")
	}

	gwAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	demo := start(t, nil, h3mBinary, "demo", "--duration", "0", "--files", "1", "--size", "1000",
		"--group", "232.255.7.24", "--port", "5724", "--listen", listen, "--gateway", gwAddr)
	waitFor(t, "the demo", 30*time.Second, func() bool { return strings.Contains(demo.output(), "live DASH (encoded by ffmpeg)") })
	gw := "http://" + gwAddr + "/"
	waitFor(t, "the live MPD at the gateway", 60*time.Second, func() bool {
		resp, err := http.Get(gw + "live/manifest.mpd")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200 && bytes.Contains(b, []byte(`type="dynamic"`)) && bytes.Contains(b, []byte(gw+"_h3m/time"))
	})

	// The page's own origin: this test's server, another port than the
	// gateway's.
	mux := http.NewServeMux()
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("/dashjs/", http.StripPrefix("/dashjs/", http.FileServer(http.Dir(dashJS))))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		gateway.WritePlayer(w, gateway.PlayerConfig{DashJS: "/dashjs/dash.all.min.js", Manifest: gw + "live/manifest.mpd",
			Status: gw + gateway.StatusJSONPath[1:], Time: gw + gateway.TimePath[1:]})
	})
	page := httptest.NewServer(mux)
	defer page.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "play.mjs"), "--chromium", chromium, "--url", page.URL+"/",
		"--seconds", "20", "--timeout", "150", "--profile", t.TempDir())
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("play.mjs: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	var rep playReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("play.mjs printed %q: %v\n%s", stdout.String(), err, stderr.String())
	}
	p := rep.Page
	t.Logf("page at %s played %.1f s of %s; segments by via %v (bytes %v); status read: %v; console: %v",
		p.Origin, p.Played, p.Manifest, p.Counts, p.Bytes, p.StatusRead, rep.Console)
	if p.Origin == strings.TrimSuffix(gw, "/") {
		t.Fatal("the page came from the gateway's own origin")
	}
	if rep.TimedOut || p.Played < 20 {
		t.Errorf("playback did not advance 20 s (played %.1f s, playing %v); failed requests %v", p.Played, p.Playing, rep.FailedRequests)
	}
	if len(p.Errors) > 0 || len(rep.PageErrors) > 0 {
		t.Errorf("errors: dash.js %v, page %v", p.Errors, rep.PageErrors)
	}
	if n := p.Counts[client.ViaMulticast] + p.Counts[client.ViaRepair]; n < 10 {
		t.Errorf("only %d segments came by multicast or repair: %v", n, p.Counts)
	}
	if n := p.Counts[client.ViaFallback] + p.Counts[gateway.ViaUnicast] + p.Counts["unknown"]; n > 0 {
		var others []string
		for _, s := range p.Segments {
			if v := s["via"]; v != client.ViaMulticast && v != client.ViaRepair {
				others = append(others, fmt.Sprintf("%v (%v)", s["url"], v))
			}
		}
		t.Errorf("%d segments did not come by multicast or repair: %v", n, others)
	}
	if !p.StatusRead {
		t.Errorf("the page could not read the gateway's status across origins (%d errors)", p.StatusErrors)
	}

	demo.cmd.Process.Signal(syscall.SIGINT)
	var ee *exec.ExitError
	if err := demo.wait(t, 30*time.Second); !errors.As(err, &ee) || ee.ExitCode() != exitInterrupt {
		t.Errorf("demo after Ctrl-C: %v", err)
	}
}
