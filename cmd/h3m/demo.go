package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
)

func demoCommand() *command {
	return &command{
		name:     "demo",
		usage:    "[flags]",
		short:    "run sender, unicast server and player gateway on loopback with generated content",
		logLevel: "warn",
		long: `demo runs the whole job on a built-in default, in one process and on this
machine only: it generates a folder of files and a short live DASH stream
(encoded by ffmpeg when it is installed, placeholder segments otherwise), runs
"h3m serve --watch" on it (multicast on the loopback interface, group
232.255.1.1, TTL 1; unicast HTTP/3 on 127.0.0.1:4433) and "h3m gateway" for
players on 127.0.0.1:8080, and prints where to point a player (a browser:
the gateway's player page, /_h3m/player) and, on a terminal, a live status
line. The stream's MPD names the gateway's clock (/_h3m/time) as its
UTCTiming source. After --duration it checks that every file reached the
gateway intact over multicast, prints a summary and exits (0 if all is well);
Ctrl-C stops it at once (exit code 130).`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var o demoOptions
			fs.StringVar(&o.group, "group", "232.255.1.1", "multicast group (on loopback)")
			fs.IntVar(&o.port, "port", 5000, "multicast UDP port")
			fs.StringVar(&o.listen, "listen", "127.0.0.1:4433", "address of the unicast HTTP/3 server")
			fs.StringVar(&o.gateway, "gateway", "127.0.0.1:8080", "address of the gateway for players")
			fs.DurationVar(&o.duration, "duration", 30*time.Second, "how long the live stream runs (0: until interrupted)")
			fs.IntVar(&o.files, "files", 10, "number of generated files")
			fs.IntVar(&o.size, "size", 2<<20, "size of the largest generated file")
			fs.Uint64Var(&o.rate, "rate", 200_000_000, "peak flow rate in bit/s")
			fs.StringVar(&o.dir, "dir", "", "folder for the generated content (default: a temporary folder, removed at exit)")
			fs.StringVar(&o.dashJS, "dashjs-url", gateway.DefaultDashJSURL, "where the gateway's player page loads dash.js from")
			return func(ctx context.Context, e *env) error { return runDemo(ctx, e, o) }
		},
	}
}

type demoOptions struct {
	group, listen, gateway, dir string
	dashJS                      string
	port, files, size           int
	duration                    time.Duration
	rate                        uint64
}

func runDemo(ctx context.Context, e *env, o demoOptions) error {
	dir := o.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "h3m-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(filepath.Join(www, "live"), 0o755); err != nil {
		return err
	}
	static, err := writeDemoFiles(www, o.files, o.size)
	if err != nil {
		return err
	}
	// The components log warnings only; the demo prints its own story.
	quiet := &env{stdout: io.Discard, stderr: e.stderr, log: e.log}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	sf := sessionFlags{group: o.group, port: o.port, iface: "lo", ttl: 1, rate: o.rate, profile: "h3m-11",
		suite: "1301", keys: "secret", idle: 30 * time.Second, maxConcurrent: 16, digests: "SHA-256"}
	ad, err := sf.advertisement()
	if err != nil {
		return err
	}
	serverUp := make(chan string, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- runServe(ctx, quiet, serveOptions{
			ad: ad, iface: "lo", ttl: 1, dir: www, listen: o.listen,
			certFile: filepath.Join(dir, "cert.pem"), keyFile: filepath.Join(dir, "key.pem"),
			watch: true, settle: 200 * time.Millisecond, wait: 3 * time.Second, digests: []string{"SHA-256"},
			ready: func(u string) { serverUp <- u },
		})
	}()
	// stopAll stops the components; an interrupt is reported as such.
	stopAll := func() error {
		interrupted := ctx.Err()
		cancel()
		wg.Wait()
		return interrupted
	}
	var url string
	select {
	case url = <-serverUp:
	case err := <-errs:
		stopAll()
		return fmt.Errorf("sender: %w", err)
	case <-ctx.Done():
		return stopAll()
	}
	gwUp := make(chan string, 1)
	cf := clientFlags{url: url, ca: filepath.Join(dir, "cert.pem"), iface: "lo", fallbackAfter: 3 * time.Second, requireDigest: true}
	cf.catchUp = true
	var gwStatus func() gateway.Status
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- runGateway(ctx, quiet, &cf, gatewayOptions{listen: o.gateway, hold: gateway.DefaultHoldPatterns,
			holdTimeout: 4 * time.Second, cache: 512 << 20, cors: gateway.DefaultCORS(o.gateway), dashJS: o.dashJS,
			ready: func(u string) { gwUp <- u }, status: func(f func() gateway.Status) { gwStatus = f }})
	}()
	var gw string
	select {
	case gw = <-gwUp:
	case err := <-errs:
		stopAll()
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
		return stopAll()
	}

	fmt.Fprintf(e.stdout, "h3m demo: session %x (%s) on %s:%d over the loopback interface\n",
		ad.Session.SessionID, ad.ProtocolID, o.group, o.port)
	fmt.Fprintf(e.stdout, "  content:        %s\n", www)
	fmt.Fprintf(e.stdout, "  unicast server: %s (certificate %s)\n", url, cf.ca)
	fmt.Fprintf(e.stdout, "  gateway:        %s   status: %s%s\n", gw, gw, gateway.StatusPath[1:])
	live, how := startLive(ctx, e, filepath.Join(www, "live"), o.duration, gw+gateway.TimePath[1:])
	if live != nil {
		fmt.Fprintf(e.stdout, "  live DASH (%s): %slive/manifest.mpd\n", how, gw)
		fmt.Fprintf(e.stdout, "    in a browser: %s%s\n", gw, gateway.PlayerPath[1:])
		fmt.Fprintf(e.stdout, "    ffplay %slive/manifest.mpd   or   vlc %slive/manifest.mpd\n", gw, gw)
	} else {
		fmt.Fprintf(e.stdout, "  live DASH: %s\n", how)
	}
	// With ffmpeg, a player of our own watches a few seconds of the stream
	// through the gateway, as ffplay or VLC would.
	playerResult := make(chan string, 1)
	if ff, err := exec.LookPath("ffmpeg"); err == nil && live != nil && (o.duration == 0 || o.duration >= 15*time.Second) {
		go func() { playerResult <- playDemo(ctx, ff, gw+"live/manifest.mpd") }()
	}

	deadline := time.After(o.duration)
	if o.duration == 0 {
		deadline = nil
	}
	// On a terminal a status line is kept up to date; elsewhere (a log, a
	// pipe) only the summary is printed at the end.
	progress := newProgressLine(e.stdout)
	status := func() string {
		if gwStatus == nil {
			return ""
		}
		st := gwStatus()
		return fmt.Sprintf("gateway holds %d resources (%.1f MB); served to players: %d by multicast, %d repaired, %d by fallback, %d over unicast (%.0f%% of the bytes from multicast); held requests %d",
			st.Store.Entries, float64(st.Store.Bytes)/1e6, st.Served[client.ViaMulticast], st.Served[client.ViaRepair],
			st.Served[client.ViaFallback], st.Served[gateway.ViaUnicast], 100*st.MulticastShare, st.Held)
	}
	stopProgress := progress.run(status)
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-deadline:
			break loop
		case runErr = <-errs:
			break loop
		}
	}
	stopProgress()
	if live != nil {
		live()
	}
	if ctx.Err() != nil || runErr != nil {
		// Interrupted (or a component failed): stop now, with the figures
		// so far; the gateway is going away, so there is nothing to check.
		fmt.Fprintf(e.stdout, "h3m demo: stopped; %s\n", status())
		if err := stopAll(); err != nil {
			return err
		}
		return runErr
	}
	// Check what players get: every static file, through the gateway.
	bad := 0
	via := map[string]int{}
	names := make([]string, 0, len(static))
	for name := range static {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := static[name]
		resp, err := http.Get(strings.TrimSuffix(gw, "/") + name)
		if err != nil {
			return err
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		via[resp.Header.Get("X-H3m-Via")]++
		if resp.StatusCode != 200 || !bytes.Equal(got, want) {
			bad++
			fmt.Fprintf(e.stdout, "  %s: %d, %d bytes (want %d)\n", name, resp.StatusCode, len(got), len(want))
		}
	}
	select {
	case r := <-playerResult:
		fmt.Fprintf(e.stdout, "h3m demo: %s\n", r)
	default:
	}
	var by []string
	for _, v := range []string{client.ViaMulticast, client.ViaRepair, client.ViaFallback, gateway.ViaUnicast} {
		if via[v] > 0 {
			by = append(by, fmt.Sprintf("%d by %s", via[v], v))
		}
	}
	fmt.Fprintf(e.stdout, "h3m demo: %d files checked through the gateway: %d intact (%s), %d wrong\n",
		len(static), len(static)-bad, strings.Join(by, ", "), bad)
	fmt.Fprintf(e.stdout, "h3m demo: %s\n", status())
	stopAll()
	if bad > 0 {
		return fmt.Errorf("%d files did not arrive intact", bad)
	}
	return nil
}

// writeDemoFiles generates files of random content; the largest is size bytes.
func writeDemoFiles(www string, n, size int) (map[string][]byte, error) {
	files := map[string][]byte{}
	index := "<!doctype html><title>h3m demo</title><h1>h3m demo</h1><p>These files were pushed over multicast QUIC.</p><ul>"
	for i := range n {
		b := make([]byte, max(1, size>>(i%8)))
		rand.Read(b)
		name := fmt.Sprintf("/files/file-%02d.bin", i)
		files[name] = b
		index += fmt.Sprintf(`<li><a href="%s">%s</a> (%d bytes)`, name, name, len(b))
	}
	files["/index.html"] = []byte(index + `</ul><p><a href="/_h3m/player?src=/live/manifest.mpd">watch the live stream</a> (<a href="/live/manifest.mpd">its MPD</a>) · <a href="/_h3m/status">gateway status</a></p>`)
	for name, b := range files {
		p := filepath.Join(www, filepath.FromSlash(strings.TrimPrefix(name, "/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// startLive writes a live DASH stream into dir: encoded by ffmpeg when it is
// installed, else placeholder segments that show the delivery path (not
// playable). Its MPD names timeURL (the gateway's clock) as the UTCTiming
// source. It returns a function that stops it, and how it is made.
func startLive(ctx context.Context, e *env, dir string, d time.Duration, timeURL string) (stop func(), how string) {
	if d == 0 {
		d = 24 * time.Hour
	}
	if ff, err := exec.LookPath("ffmpeg"); err == nil {
		cmd := exec.CommandContext(ctx, ff, "-hide_banner", "-loglevel", "error", "-re",
			"-f", "lavfi", "-i", "testsrc=size=640x360:rate=25",
			"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
			"-t", fmt.Sprintf("%.0f", d.Seconds()),
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "50", "-pix_fmt", "yuv420p",
			"-c:a", "aac", "-b:a", "64k",
			"-f", "dash", "-seg_duration", "2", "-window_size", "10", "-streaming", "0",
			"-utc_timing_url", timeURL,
			filepath.Join(dir, "manifest.mpd"))
		cmd.Stderr = e.stderr
		if err := cmd.Start(); err == nil {
			return func() {
				cmd.Process.Signal(os.Interrupt)
				done := make(chan struct{})
				go func() { cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(3 * time.Second):
					cmd.Process.Kill()
					<-done
				}
			}, "encoded by ffmpeg"
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for i := 1; ; i++ {
			seg := make([]byte, 50_000)
			rand.Read(seg)
			name := fmt.Sprintf("chunk-stream0-%05d.m4s", i)
			if err := writeAtomic(filepath.Join(dir, name), seg); err != nil {
				return
			}
			mpd := fmt.Sprintf(`<?xml version="1.0"?><MPD type="dynamic" xmlns="urn:mpeg:dash:schema:mpd:2011"><!-- placeholder: %d segments, not playable --><UTCTiming schemeIdUri="%s" value="%s"/></MPD>`,
				i, gateway.UTCTimingScheme, html.EscapeString(timeURL))
			if err := writeAtomic(filepath.Join(dir, "manifest.mpd"), []byte(mpd)); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }, "placeholder segments (install ffmpeg for a playable stream)"
}

func writeAtomic(name string, b []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, name)
}

// playDemo waits for the stream to have a few segments, then decodes five
// seconds of it through the gateway with ffmpeg, and says how it went.
func playDemo(ctx context.Context, ffmpeg, url string) string {
	select {
	case <-time.After(8 * time.Second):
	case <-ctx.Done():
		return "the player did not start"
	}
	cmd := exec.CommandContext(ctx, ffmpeg, "-hide_banner", "-loglevel", "error", "-i", url, "-t", "5", "-f", "null", "-")
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("a player (ffmpeg) could not decode the live stream through the gateway: %v %s", err, bytes.TrimSpace(out))
	}
	return "a player (ffmpeg) decoded 5 s of the live stream through the gateway"
}
