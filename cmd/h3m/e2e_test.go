package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/netns"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
)

// h3mBinary is the command built once for the end-to-end tests.
var h3mBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "h3m-e2e-")
	if err != nil {
		panic(err)
	}
	h3mBinary = filepath.Join(dir, "h3m")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", h3mBinary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building h3m: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running h3m (or other) command whose output is kept.
type proc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	mu   sync.Mutex
	done chan error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs argv (in namespace ns when not nil) and kills it at the end
// of the test.
func start(t *testing.T, ns *netns.NS, argv ...string) *proc {
	t.Helper()
	if ns != nil {
		argv = append([]string{"ip", "netns", "exec", ns.Name}, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	p := &proc{cmd: exec.CommandContext(ctx, argv[0], argv[1:]...), done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.Dir = t.TempDir()
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait(); cancel() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s:\n%s", strings.Join(argv, " "), p.output())
		}
	})
	return p
}

// wait waits for the process to exit and returns its error.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(timeout):
		t.Fatalf("%v did not finish within %v:\n%s", p.cmd.Args, timeout, p.output())
		return nil
	}
}

// waitFor polls until cond is true.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// makeFolder writes files of assorted sizes, nested folders included.
func makeFolder(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sizes := []int{0, 1, 1199, 5000, 100_000, 1_000_000, 3_000_000}
	for i, n := range sizes {
		b := make([]byte, n)
		rand.Read(b)
		p := filepath.Join(dir, fmt.Sprintf("f%d.bin", i))
		if i%2 == 1 {
			p = filepath.Join(dir, "sub", "deeper", fmt.Sprintf("f%d.bin", i))
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>hello</h1>"), 0o644)
	return dir
}

// sameTree fails unless got holds exactly the files of want, byte for byte.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	files := map[string]bool{}
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(got, p)
			files[rel] = true
		}
		return nil
	})
	n := 0
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		a, _ := os.ReadFile(p)
		b, err := os.ReadFile(filepath.Join(got, rel))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: differs or missing (%v)", rel, err)
		}
		delete(files, rel)
		n++
		return nil
	})
	for extra := range files {
		t.Errorf("unexpected file %s in the output", extra)
	}
	if n == 0 {
		t.Fatal("empty source folder")
	}
}

// TestServeOnceReceive: `serve --once` on a folder, `receive` into another,
// over real loopback multicast: byte-identical, every file by multicast.
func TestServeOnceReceive(t *testing.T) {
	src, out := makeFolder(t), t.TempDir()
	listen := "127.0.0.1:24433"
	srv, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "2s", "--linger", "5s",
		"--group", "232.255.7.1", "--port", "5701", "--listen", listen, "--rate", "200000000")
	rcv := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert, "--out", out)
	if err := rcv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("receive: %v\n%s", err, rcv.output())
	}
	sameTree(t, src, out)
	if !strings.Contains(rcv.output(), "8 resources: 8 by multicast") {
		t.Errorf("not everything came by multicast:\n%s", rcv.output())
	}
	if err := srv.wait(t, 20*time.Second); err != nil {
		t.Fatalf("serve --once: %v", err)
	}
}

// TestServeWaitReceivers: with --wait-receivers 1 the first push goes as
// soon as the receiver has read the session description, not after --wait
// (far longer than the test waits); larger packets (--packet-size) arrive
// whole.
func TestServeWaitReceivers(t *testing.T) {
	src, out := makeFolder(t), t.TempDir()
	listen := "127.0.0.1:24436"
	srv, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "1h", "--wait-receivers", "1",
		"--packet-size", "1472", "--linger", "5s", "--group", "232.255.7.6", "--port", "5706", "--listen", listen)
	rcv := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert, "--out", out)
	if err := rcv.wait(t, 90*time.Second); err != nil {
		t.Fatalf("receive: %v\n%s", err, rcv.output())
	}
	sameTree(t, src, out)
	if !strings.Contains(srv.output(), "receivers have the session description; pushing") {
		t.Errorf("serve did not say it stopped waiting:\n%s", srv.output())
	}
}

// TestReceiveSizesProcsFromRate: a receiver of a 20 Mbit/s session runs
// it on one Go processor (--procs 0, the default) and says so. The push
// starts once the receiver has joined (--wait-receivers) and, paced, lasts
// at least 1.6 s, several of the tuner's looks at the sessions.
func TestReceiveSizesProcsFromRate(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" || runtime.NumCPU() < 2 {
		t.Skip("GOMAXPROCS is set in the environment, or one CPU: nothing to size")
	}
	src, out := makeFolder(t), t.TempDir()
	listen := "127.0.0.1:24445"
	_, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "1h", "--wait-receivers", "1",
		"--linger", "5s", "--group", "232.255.7.15", "--port", "5715", "--listen", listen, "--rate", "20000000")
	rcv := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert, "--out", out)
	if err := rcv.wait(t, 90*time.Second); err != nil {
		t.Fatalf("receive: %v\n%s", err, rcv.output())
	}
	sameTree(t, src, out)
	if !strings.Contains(rcv.output(), "Go processors sized for the sessions' advertised rate\" gomaxprocs=1") {
		t.Errorf("the receiver did not run its 20 Mbit/s session on one Go processor:\n%s", rcv.output())
	}
}

// TestServeOnceReceiveWithLoss runs sender and receiver in two network
// namespaces and drops 5% of the multicast packets in the receiver's with
// nftables: the output folder is still byte-identical, by repair.
func TestServeOnceReceiveWithLoss(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nftables (nft) is not installed")
	}
	a, b := netns.New(t, "e2es"), netns.New(t, "e2er")
	ifA, ifB := netns.Veth(t, a, b, netip.MustParsePrefix("10.99.7.1/24"), netip.MustParsePrefix("10.99.7.2/24"))
	// Segment GSO super-packets before the link, as a NIC would, so that
	// the drop rule sees (and drops) single datagrams.
	a.MustRun("ip", "link", "set", ifA, "gso_max_segs", "1")
	b.MustRun("nft", "add table inet h3mloss")
	b.MustRun("nft", "add chain inet h3mloss in { type filter hook input priority 0 ; }")
	b.MustRun("nft", "add rule inet h3mloss in ip daddr 232.0.0.0/8 udp dport 5702 numgen random mod 100 < 5 counter drop")

	src, out := makeFolder(t), t.TempDir()
	listen := "10.99.7.1:4433"
	_, cert := startServer(t, a, "--dir", src, "--once", "--wait", "2s", "--linger", "10s",
		"--group", "232.255.7.2", "--port", "5702", "--interface", ifA, "--listen", listen, "--rate", "100000000")
	rcv := start(t, b, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert, "--out", out, "--interface", ifB)
	if err := rcv.wait(t, 90*time.Second); err != nil {
		t.Fatalf("receive: %v\n%s", err, rcv.output())
	}
	sameTree(t, src, out)
	drops := b.MustRun("nft", "list chain inet h3mloss in")
	t.Logf("receiver:\n%s\nnftables: %s", rcv.output(), drops)
	if !strings.Contains(rcv.output(), "repair") {
		t.Errorf("nothing was repaired although multicast packets were dropped")
	}
}

// TestLiveDASHThroughGateway: ffmpeg writes a live DASH stream into the
// served folder, `serve --watch` pushes it, `gateway` serves it, and a real
// player (ffmpeg) decodes at least 10 s of it through the gateway; the
// gateway's counters show the segments came by multicast.
func TestLiveDASHThroughGateway(t *testing.T) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg is not installed (.ci/run installs it)")
	}
	live := t.TempDir()
	listen := "127.0.0.1:24435"
	_, cert := startServer(t, nil, "--dir", live, "--watch", "--settle", "150ms",
		"--group", "232.255.7.3", "--port", "5703", "--listen", listen, "--rate", "50000000")
	gw := start(t, nil, h3mBinary, "gateway", "--url", "https://"+listen+"/", "--ca", cert, "--listen", "127.0.0.1:28435")
	waitFor(t, "the gateway", 10*time.Second, func() bool { return strings.Contains(gw.output(), "gateway for") })
	time.Sleep(time.Second) // let the gateway join before the stream starts

	start(t, nil, ffmpeg, "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x180:rate=25", "-t", "25",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
		"-f", "dash", "-seg_duration", "1", "-window_size", "30", "-streaming", "0",
		filepath.Join(live, "manifest.mpd"))
	waitFor(t, "the first segments", 20*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(live, "chunk-stream0-00002.m4s"))
		return err == nil
	})
	player := start(t, nil, ffmpeg, "-hide_banner", "-loglevel", "error", "-i", "http://127.0.0.1:28435/manifest.mpd",
		"-t", "10", "-f", "null", "-progress", "pipe:1", "-")
	if err := player.wait(t, 60*time.Second); err != nil {
		t.Fatalf("the player failed: %v\n%s", err, player.output())
	}
	// -progress reports out_time_us; the last one is how much was decoded.
	var decoded time.Duration
	for _, line := range strings.Split(player.output(), "\n") {
		if v, ok := strings.CutPrefix(line, "out_time_us="); ok {
			var us int64
			fmt.Sscan(v, &us)
			decoded = time.Duration(us) * time.Microsecond
		}
		if strings.Contains(strings.ToLower(line), "error") {
			t.Errorf("player: %s", line)
		}
	}
	if decoded < 9900*time.Millisecond {
		t.Fatalf("the player decoded only %v:\n%s", decoded, player.output())
	}
	resp, err := http.Get("http://127.0.0.1:28435/_h3m/status.json")
	if err != nil {
		t.Fatal(err)
	}
	var st gateway.Status
	json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	t.Logf("decoded %v; gateway: served %v, held %d (arrived %d, fetched %d), passed through %d",
		decoded, st.Served, st.Held, st.HeldArrived, st.HeldTimeout, st.Passthrough)
	if st.Served[client.ViaMulticast] < 10 {
		t.Fatalf("only %d requests were served from multicast: %+v", st.Served[client.ViaMulticast], st)
	}
}

// TestServeAsymmetricSignedReceive: `serve --asymmetric --sign-key` (a
// fresh manifest key, pushes signed with RFC 9421 under a PEM Ed25519 key)
// and `receive --require-asymmetric --require-signature`: byte-identical,
// every file by multicast, and a receiver that requires asymmetric sessions
// refuses a symmetric one and gets everything over unicast.
func TestServeAsymmetricSignedReceive(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "sign.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	src, out := makeFolder(t), t.TempDir()
	listen := "127.0.0.1:24436"
	srv, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "2s", "--linger", "5s",
		"--group", "232.255.7.4", "--port", "5704", "--listen", listen, "--rate", "200000000",
		"--asymmetric", "--sign-key", keyFile)
	if !strings.Contains(srv.output(), "asymmetric") || !strings.Contains(srv.output(), "pushes signed (ed25519") {
		t.Fatalf("serve does not say the session is asymmetric and signed:\n%s", srv.output())
	}
	rcv := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert, "--out", out,
		"--require-asymmetric", "--require-signature")
	if err := rcv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("receive: %v\n%s", err, rcv.output())
	}
	sameTree(t, src, out)
	if !strings.Contains(rcv.output(), "8 resources: 8 by multicast") {
		t.Errorf("not everything came by multicast:\n%s", rcv.output())
	}
	if err := srv.wait(t, 20*time.Second); err != nil {
		t.Fatalf("serve --once: %v", err)
	}

	// A symmetric session: refused, everything over unicast.
	out2 := t.TempDir()
	listen2 := "127.0.0.1:24437"
	_, cert2 := startServer(t, nil, "--dir", src, "--once", "--wait", "2s", "--linger", "8s",
		"--group", "232.255.7.5", "--port", "5705", "--listen", listen2, "--rate", "200000000")
	rcv2 := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen2+"/", "--ca", cert2,
		"--out", out2, "--require-asymmetric")
	if err := rcv2.wait(t, 60*time.Second); err != nil {
		t.Fatalf("receive: %v\n%s", err, rcv2.output())
	}
	sameTree(t, src, out2)
	if !strings.Contains(rcv2.output(), "refusing to join a symmetric multicast session") || !strings.Contains(rcv2.output(), "8 by fallback") {
		t.Errorf("the symmetric session was not refused:\n%s", rcv2.output())
	}
}

// startServer starts `h3m serve` with args (in ns; nil: here), waits until
// it serves, and returns it with the certificate it made for its unicast
// server.
func startServer(t *testing.T, ns *netns.NS, args ...string) (*proc, string) {
	t.Helper()
	srv := start(t, ns, append([]string{h3mBinary, "serve"}, args...)...)
	waitFor(t, "the server", 10*time.Second, func() bool { return strings.Contains(srv.output(), "receivers:") })
	return srv, filepath.Join(srv.cmd.Dir, "h3m-cert.pem")
}
