package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/gateway"
)

// runH3M runs the h3m binary to its end and returns what it printed and
// its exit code.
func runH3M(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, h3mBinary, args...)
	cmd.Dir = t.TempDir()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("h3m %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// freePort returns a port of network ("tcp" or "udp") free on loopback now.
func freePort(t *testing.T, network string) int {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, errOut, code := runH3M(t, args...)
		if code != 0 || !strings.Contains(out, "Usage: h3m <command> [flags]") || !strings.Contains(out, "version") || errOut != "" {
			t.Errorf("h3m %v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	out, errOut, code := runH3M(t)
	if code != exitUsage || out != "" || !strings.Contains(errOut, "Usage: h3m <command>") {
		t.Errorf("h3m alone: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, args := range [][]string{{"serve", "--help"}, {"serve", "-h"}, {"help", "serve"}, {"gateway", "-help"}} {
		out, errOut, code := runH3M(t, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: h3m "+args[0+boolInt(args[0] == "help")]) || !strings.Contains(out, "-config") || errOut != "" {
			t.Errorf("h3m %v: exit %d, stdout %.200q, stderr %q", args, code, out, errOut)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestCLIVersion(t *testing.T) {
	var lines []string
	for _, arg := range []string{"version", "--version", "-version"} {
		out, errOut, code := runH3M(t, arg)
		if code != 0 || errOut != "" || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "h3m ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("h3m %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
		lines = append(lines, out)
	}
	if lines[0] != lines[1] {
		t.Errorf("version %q and --version %q differ", lines[0], lines[1])
	}
	// The revision, when the build recorded one (a git checkout).
	info, err := exec.Command("go", "version", "-m", h3mBinary).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(info), "\n") {
		if rev, ok := strings.CutPrefix(strings.TrimSpace(l), "build\tvcs.revision="); ok {
			if !strings.Contains(lines[0], "revision "+rev) {
				t.Errorf("version %q lacks the revision %s", lines[0], rev)
			}
			return
		}
	}
	t.Logf("this build recorded no VCS revision (not built from a git clone); version says %q", lines[0])
}

func TestVersionLine(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.3.0"}, Settings: []debug.BuildSetting{
		{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "amd64"},
		{Key: "vcs.revision", Value: "684ad9c9e71f1d62c5035b4e109b63a76d6564c0"}, {Key: "vcs.time", Value: "2026-12-06T03:00:15Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	want := "h3m v0.3.0, revision 684ad9c9e71f1d62c5035b4e109b63a76d6564c0 (2026-12-06T03:00:15Z) with local changes, go1.26.0 linux/amd64"
	if got := versionLine(bi, true); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if got := versionLine(&debug.BuildInfo{GoVersion: "go1.26.0"}, true); got != "h3m (devel), go1.26.0" {
		t.Errorf("got %q", got)
	}
}

// checkUsageErrors runs each command line (split at spaces) and requires
// exit code 2, nothing on stdout and exactly the given stderr.
func checkUsageErrors(t *testing.T, cases map[string]string) {
	t.Helper()
	for args, want := range cases {
		out, errOut, code := runH3M(t, strings.Fields(args)...)
		if code != exitUsage || out != "" || errOut != want {
			t.Errorf("h3m %s: exit %d, stdout %q, stderr %q; want %q", args, code, out, errOut, want)
		}
	}
}

func TestCLIUnknownCommand(t *testing.T) {
	checkUsageErrors(t, map[string]string{
		"sever":        "h3m: unknown command \"sever\"; did you mean \"serve\"?\nRun \"h3m help\" for the list of commands.\n",
		"recieve":      "h3m: unknown command \"recieve\"; did you mean \"receive\"?\nRun \"h3m help\" for the list of commands.\n",
		"gate":         "h3m: unknown command \"gate\"; did you mean \"gateway\"?\nRun \"h3m help\" for the list of commands.\n",
		"xyzzy":        "h3m: unknown command \"xyzzy\"\nRun \"h3m help\" for the list of commands.\n",
		"help sevre":   "h3m: unknown command \"sevre\"; did you mean \"serve\"?\nRun \"h3m help\" for the list of commands.\n",
		"--verison":    "h3m: unknown command \"--verison\"; did you mean \"version\"?\nRun \"h3m help\" for the list of commands.\n",
		"interopp foo": "h3m: unknown command \"interopp\"; did you mean \"interop\"?\nRun \"h3m help\" for the list of commands.\n",
	})
}

// TestCLIBadFlag: a bad flag costs one line and a hint, not the usage.
func TestCLIBadFlag(t *testing.T) {
	checkUsageErrors(t, map[string]string{
		"serve --dri x":                    "h3m serve: unknown flag --dri; did you mean --dir?\nRun \"h3m help serve\" for its flags.\n",
		"receive --timeout soon":           "h3m receive: invalid value \"soon\" for flag -timeout: parse error\nRun \"h3m help receive\" for its flags.\n",
		"gateway --listen":                 "h3m gateway: flag needs an argument: -listen\nRun \"h3m help gateway\" for its flags.\n",
		"gateway --qqq":                    "h3m gateway: unknown flag --qqq\nRun \"h3m help gateway\" for its flags.\n",
		"gateway --url x --cors y":         "h3m gateway: --cors: CORS origin \"y\": want * or scheme://host[:port], e.g. http://localhost:3000\n",
		"serve --dir . --packet-size 1000": "h3m serve: --packet-size 1000: want 1200 to 4096 bytes\n",
		"serve --dir . --wait-receivers 2": "h3m serve: --wait-receivers 2: want a count ≥ 0, and --wait to bound the wait\n",
	})
}

// TestCLIServeFEC: --fec takes a share or auto, and auto is refused with
// --channels (only the main session's sender would follow the policy).
func TestCLIServeFEC(t *testing.T) {
	checkUsageErrors(t, map[string]string{
		"serve --dir . --fec auto --channels": "h3m serve: --fec auto: not with --channels (each channel's session would send the maximum)\n",
		"serve --dir . --fec often":           "h3m serve: --fec \"often\": want a percentage (5%) or a fraction (0.05)\n",
	})
}

// TestCLIURLForms: receive and gateway take the same --url forms and
// refuse the same ones with the same message.
func TestCLIURLForms(t *testing.T) {
	out := t.TempDir()
	for _, u := range []string{"http://127.0.0.1:4433/", "ftp://host/", "https://", "https://host:99999/", "host:port"} {
		_, rcv, rcode := runH3M(t, "receive", "--url", u, "--out", out)
		_, gw, gcode := runH3M(t, "gateway", "--url", u)
		r, _ := strings.CutPrefix(rcv, "h3m receive: ")
		g, _ := strings.CutPrefix(gw, "h3m gateway: ")
		if rcode != exitUsage || gcode != exitUsage || r != g || !strings.Contains(r, "--url") || strings.Count(r, "\n") != 1 {
			t.Errorf("--url %q: receive exit %d %q, gateway exit %d %q", u, rcode, rcv, gcode, gw)
		}
	}
}

func TestParseServerURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://127.0.0.1:4433/":          "https://127.0.0.1:4433/",
		"https://127.0.0.1:4433":           "https://127.0.0.1:4433/",
		"https://example.org/live/x.mpd?q": "https://example.org/",
		"127.0.0.1:4433":                   "https://127.0.0.1:4433/",
		"localhost":                        "https://localhost/",
		"[::1]:4433":                       "https://[::1]:4433/",
		"https://[::1]/":                   "https://[::1]/",
		" https://h3m.example:443/ ":       "https://h3m.example:443/",
	} {
		u, err := parseServerURL(in)
		if err != nil || u.String() != want {
			t.Errorf("parseServerURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, in := range []string{"", "http://127.0.0.1:4433/", "ftp://x/", "https://", "https://:4433/", "https://u:p@h/", "https://h:0/", "https://h:/", "https://h:x/"} {
		if u, err := parseServerURL(in); err == nil || !errors.As(err, new(usageError)) {
			t.Errorf("parseServerURL(%q) = %v, %v; want a usage error", in, u, err)
		}
	}
}

func TestApplyConfig(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	hold := fs.String("hold", "", "")
	timeout := fs.Duration("hold-timeout", 0, "")
	rate := fs.Uint64("rate", 0, "")
	on := fs.Bool("catch-up", true, "")
	given := fs.String("listen", "", "")
	fs.String(configFlag, "", "")
	if err := fs.Parse([]string{"--listen", "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(file, []byte(`{"hold": ["*.m4s", "*.ts"], "hold-timeout": "2s", "rate": 50000000, "catch-up": false, "listen": "0.0.0.0:2"}`), 0o644)
	if err := applyConfig(fs, file); err != nil {
		t.Fatal(err)
	}
	if *hold != "*.m4s,*.ts" || *timeout != 2*time.Second || *rate != 50_000_000 || *on || *given != "127.0.0.1:1" {
		t.Errorf("hold %q timeout %v rate %d catch-up %v listen %q", *hold, *timeout, *rate, *on, *given)
	}
	for body, want := range map[string]string{
		`{"holdd": "x"}`:           `unknown setting "holdd" (did you mean "hold"?)`,
		`{"config": "other.json"}`: `unknown setting "config"`,
		`{"hold": {"a": 1}}`:       "want a string, number, boolean or list of strings",
		`{"hold": [1, 2]}`:         "a list may hold strings only",
		`{"rate": "fast"}`:         "rate: parse error",
		`["hold"]`:                 "not a JSON object of flag values",
	} {
		os.WriteFile(file, []byte(body), 0o644)
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		fs.String("hold", "", "")
		fs.Uint64("rate", 0, "")
		fs.String(configFlag, "", "")
		err := applyConfig(fs, file)
		if err == nil || !errors.As(err, new(usageError)) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %q", body, err, want)
		}
	}
}

// TestCLIConfigForEveryCommand: --config works through the shared code for
// receive and gateway too.
func TestCLIConfigForEveryCommand(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	for _, c := range []struct{ cmd, config, want string }{
		{"gateway", `{"url": "http://127.0.0.1:1/"}`, "h3m gateway: --url \"http://127.0.0.1:1/\": plain http"},
		{"receive", `{"url": "http://127.0.0.1:1/", "out": "` + dir + `"}`, "h3m receive: --url \"http://127.0.0.1:1/\": plain http"},
		{"receive", `{"outt": "x"}`, "unknown setting \"outt\" (did you mean \"out\"?)"},
		{"serve", `{"dir": "/nonexistent/h3m"}`, "h3m serve: --dir \"/nonexistent/h3m\": not a folder"},
		{"gateway", `{"log-level": "loud", "url": "https://127.0.0.1:1/"}`, "h3m gateway: --log-level \"loud\""},
	} {
		_, errOut, code := runH3M(t, c.cmd, "--config", write(c.cmd+".json", c.config))
		if code != exitUsage || !strings.HasPrefix(errOut, "h3m "+c.cmd+": ") || !strings.Contains(errOut, c.want) {
			t.Errorf("%s --config %s: exit %d, stderr %q; want %q", c.cmd, c.config, code, errOut, c.want)
		}
	}
	_, errOut, code := runH3M(t, "gateway", "--config", filepath.Join(dir, "missing.json"))
	if code != exitUsage || !strings.Contains(errOut, "--config: open") {
		t.Errorf("missing file: exit %d %q", code, errOut)
	}
}

// TestCLIServeCannotListen: serve binds its unicast listener before it
// pushes anything; when it cannot, it says so and exits 1 without having
// announced a session.
func TestCLIServeCannotListen(t *testing.T) {
	busy, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.LocalAddr().String()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.bin"), []byte("hello"), 0o644)
	out, errOut, code := runH3M(t, "serve", "--dir", src, "--listen", addr, "--group", "232.255.7.21", "--port", "5721")
	want := fmt.Sprintf("h3m serve: --listen %s: cannot listen for the unicast server: listen udp %s: bind: address already in use\n", addr, addr)
	if code != exitFailure || out != "" || !strings.HasSuffix(errOut, want) || strings.Contains(errOut, "pushed") {
		t.Errorf("exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}
}

// TestCLIGatewayConfigAndInterrupt: a gateway configured by --config
// alone (URL, listen address, CORS) serves players, and Ctrl-C stops it
// with exit code 130.
func TestCLIGatewayConfigAndInterrupt(t *testing.T) {
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.bin"), []byte("hello"), 0o644)
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	_, cert := startServer(t, nil, "--dir", src, "--listen", listen, "--group", "232.255.7.22", "--port", "5722")
	gwAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	config := filepath.Join(t.TempDir(), "gateway.json")
	os.WriteFile(config, []byte(fmt.Sprintf(`{"url": %q, "ca": %q, "listen": %q, "cors": "none", "hold": ["*.m4s"]}`,
		listen, cert, gwAddr)), 0o644)
	gw := start(t, nil, h3mBinary, "gateway", "--config", config)
	waitFor(t, "the gateway", 10*time.Second, func() bool { return strings.Contains(gw.output(), "player http://"+gwAddr) })
	var body string
	waitFor(t, "a.bin through the gateway", 20*time.Second, func() bool {
		req, _ := http.NewRequest("GET", "http://"+gwAddr+"/a.bin", nil)
		req.Header.Set("Origin", "http://127.0.0.1:1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("--cors none from the config, yet %v", resp.Header)
		}
		return resp.StatusCode == 200
	})
	if body != "hello" {
		t.Fatalf("got %q", body)
	}
	gw.cmd.Process.Signal(os.Interrupt)
	err := gw.wait(t, 20*time.Second)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupt {
		t.Fatalf("gateway after Ctrl-C: %v\n%s", err, gw.output())
	}
}

// TestCLIDemoInterrupt: Ctrl-C stops the demo cleanly with exit code 130;
// with its output not a terminal it prints no status line per second, and
// nothing it prints is in Go's map syntax.
func TestCLIDemoInterrupt(t *testing.T) {
	gwAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	demo := start(t, nil, h3mBinary, "demo", "--duration", "0", "--files", "3", "--size", "20000",
		"--group", "232.255.7.23", "--port", "5723", "--listen", listen, "--gateway", gwAddr)
	waitFor(t, "the demo", 20*time.Second, func() bool { return strings.Contains(demo.output(), "live DASH") })
	// Wait (by events, not time) until the generated files reached the
	// gateway, so that the demo has been running a while.
	waitFor(t, "the files at the gateway", 30*time.Second, func() bool {
		resp, err := http.Get("http://" + gwAddr + gateway.StatusJSONPath)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st gateway.Status
		json.NewDecoder(resp.Body).Decode(&st)
		n := 0
		for _, e := range st.Recent {
			if strings.HasPrefix(e.Path, "/files/") {
				n++
			}
		}
		return n == 3
	})
	if !strings.Contains(demo.output(), "in a browser: http://"+gwAddr+"/_h3m/player") && !strings.Contains(demo.output(), "placeholder") {
		t.Errorf("the demo does not say where to watch in a browser:\n%s", demo.output())
	}
	demo.cmd.Process.Signal(syscall.SIGINT)
	err := demo.wait(t, 30*time.Second)
	out := demo.output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupt {
		t.Fatalf("demo after Ctrl-C: %v\n%s", err, out)
	}
	if strings.Contains(out, "map[") || strings.Contains(out, "h3m demo: Get") || strings.Contains(out, "connection refused") {
		t.Errorf("demo output:\n%s", out)
	}
	if n := strings.Count(out, "gateway holds"); n != 1 || !strings.Contains(out, "h3m demo: stopped; gateway holds") {
		t.Errorf("%d status lines (want only the final one):\n%s", n, out)
	}
}
