package main

// End-to-end tests of the receive command's contract: its exit codes and
// messages (README, "h3m help receive"), and joining a session from its
// advertisement alone.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/pcapfile"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/h3m-project/h3m/unicast/client"
)

// exitCode is the exit code of a finished command (0 when err is nil).
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("not an exit: %v", err)
	return -1
}

// serveForever starts `serve` on src that pushes the folder once and keeps
// the session up, and returns it with its URL and certificate.
func serveForever(t *testing.T, src, listen, group, port string) (*proc, string, string) {
	t.Helper()
	srv, cert := startServer(t, nil, "--dir", src, "--group", group, "--port", port, "--listen", listen, "--rate", "200000000")
	return srv, "https://" + listen + "/", cert
}

// TestReceiveTimeoutExits1: --timeout reached before the session ends: exit
// code 1, and the message says so.
func TestReceiveTimeoutExits1(t *testing.T) {
	_, url, cert := serveForever(t, makeFolder(t), "127.0.0.1:24441", "232.255.7.11", "5711")
	rcv := start(t, nil, h3mBinary, "receive", "--url", url, "--ca", cert, "--out", t.TempDir(), "--timeout", "3s")
	err := rcv.wait(t, 60*time.Second)
	if code := exitCode(t, err); code != 1 || !strings.Contains(rcv.output(), "gave up after --timeout 3s before the session ended") {
		t.Fatalf("exit code %d:\n%s", code, rcv.output())
	}
}

// TestReceiveInterruptExits130: Ctrl-C (SIGINT) while receiving: exit code
// 130.
func TestReceiveInterruptExits130(t *testing.T) {
	_, url, cert := serveForever(t, makeFolder(t), "127.0.0.1:24442", "232.255.7.12", "5712")
	rcv := start(t, nil, h3mBinary, "receive", "--url", url, "--ca", cert, "--out", t.TempDir())
	waitFor(t, "the receiver to join", 20*time.Second, func() bool { return strings.Contains(rcv.output(), "joined multicast session") })
	if err := rcv.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, rcv.wait(t, 30*time.Second)); code != 130 {
		t.Fatalf("exit code %d:\n%s", code, rcv.output())
	}
	// SIGTERM is an interruption too.
	rcv2 := start(t, nil, h3mBinary, "receive", "--url", url, "--ca", cert, "--out", t.TempDir())
	waitFor(t, "the receiver to join", 20*time.Second, func() bool { return strings.Contains(rcv2.output(), "joined multicast session") })
	rcv2.cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, rcv2.wait(t, 30*time.Second)); code != 130 {
		t.Fatalf("SIGTERM: exit code %d:\n%s", code, rcv2.output())
	}
}

// TestReceiveUnknownAuthority: no --ca for a server with its own
// certificate: exit 1 at once, with the hint, not retries.
func TestReceiveUnknownAuthority(t *testing.T) {
	_, url, _ := serveForever(t, makeFolder(t), "127.0.0.1:24443", "232.255.7.13", "5713")
	rcv := start(t, nil, h3mBinary, "receive", "--url", url, "--out", t.TempDir())
	code := exitCode(t, rcv.wait(t, 30*time.Second))
	out := rcv.output()
	if code != 1 || !strings.Contains(out, "certificate is not trusted") || !strings.Contains(out, "--ca h3m-cert.pem") || strings.Contains(out, "retrying") {
		t.Fatalf("exit code %d:\n%s", code, out)
	}
}

// TestReceiveOriginGoneAfterEnd: `serve --once --linger 0s` ends the
// session and exits at once; the receiver, which has every file, does not
// wait for the origin until --timeout: it finishes with exit code 0.
func TestReceiveOriginGoneAfterEnd(t *testing.T) {
	src, out := makeFolder(t), t.TempDir()
	listen := "127.0.0.1:24444"
	srv, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "3s", "--linger", "0s",
		"--group", "232.255.7.14", "--port", "5714", "--listen", listen, "--rate", "200000000")
	rcv := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert,
		"--out", out, "--timeout", "90s")
	if err := srv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if code := exitCode(t, rcv.wait(t, 60*time.Second)); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, rcv.output())
	}
	sameTree(t, src, out)
}

// nghqCapture is the stored capture of nghq's sender and its files.
const nghqCapture = "../../internal/pcapfile/testdata/nghq"

// nghqAltSvc advertises the capture's session on group: h3m-07, NULL
// suite, session ID "Session ID", source 127.0.0.1.
func nghqAltSvc(group netip.AddrPort) string {
	return fmt.Sprintf(`h3m-07="%s"; source-address="127.0.0.1"; session-id=%x`, group, "Session ID")
}

// replayNGHQ sends the capture's datagrams to group through a real socket
// (loopback, explicit interface, TTL 1), but those drop selects.
func replayNGHQ(t *testing.T, group netip.AddrPort, drop func(payload []byte) bool) {
	t.Helper()
	pkts, err := pcapfile.ReadFile(filepath.Join(nghqCapture, "capture.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := mcast.ListenSender(mcast.Config{Group: group, Source: netip.MustParseAddr("127.0.0.1"), Interface: "lo", TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dst := net.UDPAddrFromAddrPort(group)
	for _, p := range pkts {
		if drop != nil && drop(p.Payload) {
			continue
		}
		if _, err := conn.WriteTo(p.Payload, dst); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond) // as paced as nghq's sender was
	}
}

// TestReceiveNGHQCaptureFromAltSvc: a receiver joins nghq's session from
// its advertisement alone (--alt-svc, no origin) and the stored capture of
// nghq's sender is replayed into it through a real socket: every file
// byte for byte, exit code 0. Replayed again, the advertisement given in a
// session file (--session) and the packet that carries one push's promise
// dropped: that push is reported missing (its promise was lost and nothing
// names it) and the exit code is 1.
func TestReceiveNGHQCaptureFromAltSvc(t *testing.T) {
	group := netip.MustParseAddrPort("232.255.7.15:5715")
	out := t.TempDir()
	rcv := start(t, nil, h3mBinary, "receive", "--alt-svc", nghqAltSvc(group), "--out", out, "--timeout", "60s")
	waitFor(t, "the receiver to join", 20*time.Second, func() bool { return strings.Contains(rcv.output(), "joined multicast session") })
	replayNGHQ(t, group, nil)
	if code := exitCode(t, rcv.wait(t, 60*time.Second)); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, rcv.output())
	}
	sameTree(t, filepath.Join(nghqCapture, "files"), out)
	if !strings.Contains(rcv.output(), "4 resources: 4 by multicast") {
		t.Errorf("not everything by multicast:\n%s", rcv.output())
	}

	// The second promise (push 1) is the first STREAM frame of stream 0
	// at an offset other than 0; its packet carries nothing else.
	dropped := false
	secondPromise := func(pkt []byte) bool {
		var promise, other bool
		frames(t, pkt, func(f *wire.Frame) {
			switch {
			case f.Type.IsStream() && f.Stream.StreamID == 0 && f.Stream.Offset > 0:
				promise = true
			case f.Type.IsStream():
				other = true
			}
		})
		if dropped || !promise {
			return false
		}
		if other {
			t.Fatal("the packet of the second promise carries push stream data too")
		}
		dropped = true
		return true
	}
	out2 := t.TempDir()
	group2 := netip.MustParseAddrPort("232.255.7.16:5716")
	// This time the advertisement comes in a session description file.
	desc := filepath.Join(t.TempDir(), "session.txt")
	if err := os.WriteFile(desc, []byte(nghqAltSvc(group2)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rcv2 := start(t, nil, h3mBinary, "receive", "--session", desc, "--out", out2, "--timeout", "60s")
	waitFor(t, "the receiver to join", 20*time.Second, func() bool { return strings.Contains(rcv2.output(), "joined multicast session") })
	replayNGHQ(t, group2, secondPromise)
	code := exitCode(t, rcv2.wait(t, 60*time.Second))
	o := rcv2.output()
	if code != 1 || !strings.Contains(o, "the session ended with 1 resources missing") || !strings.Contains(o, "push 1 of session 53657373696f6e204944: promise lost") {
		t.Fatalf("exit code %d:\n%s", code, o)
	}
	files, _ := os.ReadDir(out2)
	if len(files) != 3 {
		t.Errorf("%d files received, want the 3 whose promises came", len(files))
	}
}

// frames calls f with the frames of a packet of the capture's session
// (NULL suite: the payload follows the 12-byte short header in clear).
func frames(t *testing.T, pkt []byte, f func(*wire.Frame)) {
	t.Helper()
	payload := pkt[1+len("Session ID")+1:]
	var fr wire.Frame
	for len(payload) > 0 {
		n, err := wire.ParseFrame(payload, &fr)
		if err != nil {
			t.Fatalf("capture packet: %v", err)
		}
		payload = payload[n:]
		f(&fr)
	}
}

// TestProgressLineKeepsLogsOffTheStatus: on a terminal, a log line and the
// status never share a line: rendered as a terminal shows them, every log
// line stands alone and the status is the last line.
func TestProgressLineKeepsLogsOffTheStatus(t *testing.T) {
	var screen bytes.Buffer
	p := &progressLine{w: &screen, tty: true}
	logger, err := newLogger(&screen, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	log := p.handler(logger.Handler())
	p.show("STATUS 1 resources, 12.3 MB/s, 4.0 MB to go (about 0s)")
	logLine(t, log, "first log line")
	p.println("multicast  /a (3 bytes)")
	p.show("two lines\nSTATUS 2 resources")
	logLine(t, log, "second log line")
	lines := render(screen.String())
	n := len(lines)
	for _, l := range lines[:n-2] {
		if strings.Contains(l, "STATUS") || strings.Contains(l, "two lines") {
			t.Errorf("a status left above the status: %q", l)
		}
	}
	if lines[n-2] != "two lines" || lines[n-1] != "STATUS 2 resources" {
		t.Errorf("last lines %q, want the status", lines[n-2:])
	}
	var logs int
	for _, l := range lines {
		if strings.Contains(l, "log line") {
			logs++
			if !strings.HasPrefix(l, "time=") {
				t.Errorf("a log line shares its line: %q", l)
			}
		}
	}
	if logs != 2 {
		t.Errorf("%d log lines on screen:\n%s", logs, strings.Join(lines, "\n"))
	}
}

// TestStatusTextShowsRateAndTimeLeft: the status has the rate and, with a
// rate and something left, the time left.
func TestStatusTextShowsRateAndTimeLeft(t *testing.T) {
	var m rateMeter
	t0 := time.Unix(1000, 0)
	m.add(t0, 0)
	rate := m.add(t0.Add(2*time.Second), 20e6)
	s := statusText(statusFigures{resources: 3, bytes: 20e6, rate: rate})
	if !strings.Contains(s, "10.0 MB/s") || strings.Contains(s, "to go") {
		t.Errorf("status %q", s)
	}
	s = statusText(statusFigures{resources: 3, bytes: 20e6, rate: rate, left: clientOutstanding(2, 50e6)})
	if !strings.Contains(s, "50.0 MB to go (about 5s)") {
		t.Errorf("status %q", s)
	}
	// Samples older than the window are dropped: the rate is recent.
	if r := m.add(t0.Add(20*time.Second), 20e6); r != 0 {
		t.Errorf("rate %v after 18 s without progress", r)
	}
}

func logLine(t *testing.T, h slog.Handler, msg string) {
	t.Helper()
	if err := h.Handle(context.Background(), slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)); err != nil {
		t.Fatal(err)
	}
}

func clientOutstanding(n int, b int64) client.Outstanding {
	return client.Outstanding{Resources: n, Bytes: b}
}

// render plays what was written to a terminal — text, "\n", "\r", erase
// to the end of the line (ESC [ K) and cursor up (ESC [ A) — and returns
// the lines the screen shows.
func render(s string) []string {
	lines := [][]rune{nil}
	row, col := 0, 0
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		switch {
		case rs[i] == '\n':
			row, col = row+1, 0
			if row == len(lines) {
				lines = append(lines, nil)
			}
		case rs[i] == '\r':
			col = 0
		case rs[i] == '\033' && i+2 < len(rs) && rs[i+1] == '[' && rs[i+2] == 'K':
			if col < len(lines[row]) {
				lines[row] = lines[row][:col]
			}
			i += 2
		case rs[i] == '\033' && i+2 < len(rs) && rs[i+1] == '[' && rs[i+2] == 'A':
			row = max(row-1, 0)
			i += 2
		default:
			for len(lines[row]) <= col {
				lines[row] = append(lines[row], ' ')
			}
			lines[row][col] = rs[i]
			col++
		}
	}
	var out []string
	for _, l := range lines {
		if s := strings.TrimRight(string(l), " "); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// TestSessionFlags: --alt-svc and --session (Alt-Svc lines, or the JSON
// of /.well-known/h3m) give the sessions to join; bad ones are usage
// errors.
func TestSessionFlags(t *testing.T) {
	ad := nghqAltSvc(netip.MustParseAddrPort("232.255.7.17:5717"))
	d, err := client.DescribeAltSvc(ad)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{"alt-svc.txt": ad + "\n", "h3m.json": string(doc), "empty.json": `{"version":1,"sessions":[]}`, "bad.txt": "h3m-07=nope"}
	for name, body := range files {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644)
	}
	for _, c := range []struct {
		flags clientFlags
		ok    bool
	}{
		{clientFlags{altSvc: ad}, true},
		{clientFlags{sessionFile: filepath.Join(dir, "alt-svc.txt")}, true},
		{clientFlags{sessionFile: filepath.Join(dir, "h3m.json")}, true},
		{clientFlags{sessionFile: filepath.Join(dir, "empty.json")}, false},
		{clientFlags{sessionFile: filepath.Join(dir, "bad.txt")}, false},
		{clientFlags{altSvc: "h3m-07=nope"}, false},
		{clientFlags{sessionFile: filepath.Join(dir, "missing")}, false},
	} {
		err := c.flags.parseSessions()
		switch {
		case c.ok && (err != nil || len(c.flags.sessions.Sessions) != 1 || c.flags.sessions.Sessions[0].ID != "53657373696f6e204944"):
			t.Errorf("%+v: %v %+v", c.flags, err, c.flags.sessions)
		case !c.ok && !errors.As(err, new(usageError)):
			t.Errorf("%+v: %v, want a usage error", c.flags, err)
		}
	}
}
