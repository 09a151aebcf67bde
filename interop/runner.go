package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Runner runs test cases for every sender × receiver pair.
type Runner struct {
	// Registry holds the implementations.
	Registry Registry
	// Senders and Receivers are the implementation names to pair.
	Senders, Receivers []string
	// Tests are the test cases and measurements to run, in order.
	Tests []*TestCase
	// LogDir receives logs/<sender>_<receiver>/<test>/….
	LogDir string
	// Mode is netns, loopback or auto.
	Mode Mode
	// Network is the kind of bridge the hosts share in netns mode:
	// NetworkFlood ("" too) floods multicast to every host unless a case
	// asks for snooping; NetworkSnooping runs every case on a switch that
	// snoops IGMPv3/MLDv2 (switch.go).
	Network NetworkKind
	// H3M is the path of the h3m binary ({h3m} in templates).
	H3M string
	// MeasureMB is the measurements' file size in MiB (default 16).
	MeasureMB int
	// Progress receives one line per test (nil: discarded).
	Progress io.Writer
	// KeepFiles keeps the www and downloads folders of passing tests
	// (they are always kept for failing ones).
	KeepFiles bool
	// Forger makes the integrity case's attacker a key holder too: besides
	// re-sending tampered packets, it reads the session's keys over TLS
	// like any receiver and forges pushes that receivers must refuse even
	// from a key holder (forgery.go). Off by default: receivers of other
	// implementations may not refuse them yet.
	Forger bool
}

// Run checks compliance, runs the matrix and returns the results.
func (r *Runner) Run(ctx context.Context) (*Results, error) {
	mode := r.Mode
	if mode == "" || mode == ModeAuto {
		mode = ModeNetns
		if err := NetnsAvailable(); err != nil {
			r.progress("netns unavailable (%v): running in loopback mode", err)
			mode = ModeLoopback
		}
	}
	if mode == ModeNetns {
		if err := NetnsAvailable(); err != nil {
			return nil, err
		}
	}
	switch r.Network {
	case "", NetworkFlood, NetworkSnooping:
	default:
		return nil, fmt.Errorf("interop: network %q: want %s or %s", r.Network, NetworkFlood, NetworkSnooping)
	}
	if r.H3M == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		r.H3M = exe
	}
	if r.MeasureMB <= 0 {
		r.MeasureMB = 16
	}
	for _, name := range append(append([]string(nil), r.Senders...), r.Receivers...) {
		if r.Registry[name] == nil {
			return nil, fmt.Errorf("interop: unknown implementation %q", name)
		}
	}
	for _, name := range r.Senders {
		if !r.Registry[name].CanSend() {
			return nil, fmt.Errorf("interop: %q cannot be a sender (role %s)", name, r.Registry[name].Role)
		}
	}
	for _, name := range r.Receivers {
		if !r.Registry[name].CanReceive() {
			return nil, fmt.Errorf("interop: %q cannot be a receiver (role %s)", name, r.Registry[name].Role)
		}
	}
	if err := os.MkdirAll(r.LogDir, 0o755); err != nil {
		return nil, err
	}
	res := newResults(r, mode)
	compliant := map[string]error{}
	check := func(name string, role Role) {
		key := name + "/" + string(role)
		if _, done := compliant[key]; done {
			return
		}
		err := r.compliance(ctx, r.Registry[name], role)
		compliant[key] = err
		if err != nil {
			r.progress("%s is not compliant as %s: %v", name, role, err)
		}
	}
	for _, s := range r.Senders {
		check(s, RoleSender)
	}
	for _, c := range r.Receivers {
		check(c, RoleReceiver)
	}
	for _, rcv := range r.Receivers {
		for _, snd := range r.Senders {
			var results []CaseResult
			var measurements []MeasurementResult
			for _, tc := range r.Tests {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				var cr CaseResult
				cerr := errors.Join(compliant[snd+"/sender"], compliant[rcv+"/receiver"])
				if cerr != nil {
					cr = CaseResult{Abbr: tc.Abbr, Name: tc.Name, Result: Failed, Reason: "not compliant: " + cerr.Error()}
				} else {
					cr = r.runCase(ctx, mode, r.Registry[snd], r.Registry[rcv], tc)
				}
				r.progress("%-10s %-10s %-15s %-11s %s", snd, rcv, tc.Name, cr.Result, cr.Details)
				if tc.Measurement {
					measurements = append(measurements, MeasurementResult{Name: tc.Name, Abbr: tc.Abbr, Result: cr.Result, Details: cr.Details})
				} else {
					results = append(results, cr)
				}
			}
			res.add(snd, rcv, results, measurements)
		}
	}
	res.EndTime = time.Now()
	return res, nil
}

func (r *Runner) progress(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, format+"\n", args...)
	}
}

// compliance starts the endpoint with a random test case name and
// requires exit code 127 within 10 s, as the QUIC interop runner does.
func (r *Runner) compliance(ctx context.Context, impl *Implementation, role Role) error {
	dir, err := os.MkdirTemp("", "h3m-interop-compliance-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	name := "unsupported-" + strconv.FormatUint(rand.Uint64(), 36)
	lo := netip.MustParseAddr("127.0.0.1")
	vars := map[string]string{
		"h3m": r.H3M, "ROLE": string(role), "TESTCASE": name,
		"WWW": filepath.Join(dir, "www"), "DOWNLOADS": filepath.Join(dir, "downloads"), "CERTS": filepath.Join(dir, "certs"),
		"LOGDIR": dir, "QLOGDIR": filepath.Join(dir, "qlog"), "SSLKEYLOGFILE": filepath.Join(dir, "keys.log"),
		"GROUP": "232.77.255.1", "PORT": "7700", "SOURCE": lo.String(), "IFACE": "lo",
		"SERVER": "127.0.0.1:4433", "URL": "https://127.0.0.1:4433/", "RATE": "1000000", "RECEIVER": "1",
		"GATEWAY": "127.0.0.1:8080", "ROLLOVER": "2s",
	}
	for _, d := range []string{"www", "downloads", "certs", "qlog"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	argv, env, err := impl.Endpoint(role).Command(vars)
	if err != nil {
		return err
	}
	p, err := startProc(Host{Name: "compliance"}, impl.Name, argv, endpointEnv(vars, env), dir, filepath.Join(dir, "log.txt"))
	if err != nil {
		return err
	}
	if !p.wait(ctx, 10*time.Second) {
		p.stop(time.Second)
		return errors.New("still running 10 s after start with an unknown test case (want exit 127)")
	}
	if _, code, _ := p.result(); code != 127 {
		out, _ := os.ReadFile(filepath.Join(dir, "log.txt"))
		return fmt.Errorf("exit code %d for unknown test case %q (want 127): %s", code, name, lastLines(out, 5))
	}
	return nil
}

// endpointEnv builds a process environment: PATH and HOME of the runner,
// the runner's variables, then the entry's own.
func endpointEnv(vars map[string]string, extra []string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		if k != "h3m" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+vars[k])
	}
	return append(env, extra...)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// caseRun is the state of one test case for one pair.
type caseRun struct {
	ctx      context.Context
	r        *Runner
	tc       *TestCase
	mode     Mode
	snd, rcv *Implementation
	dir      string
	out      *os.File
	net      *Network

	www, staging, certs string
	downloads           []string
	files               []genFile
	sums                map[string][32]byte
	released            map[string]time.Time
	marks               map[string]time.Time

	sender    *proc
	receivers []*proc
	joined    []time.Time
	captures  []*proc
	pcaps     map[string]string // host name → capture file
	attacker  *Relay
	forgery   *forgery // the key holder, with Runner.Forger
	gateway   string

	mu         sync.Mutex
	completeAt []map[string]time.Time // per receiver: file → when verified
	details    string
	senderEnd  time.Time
	senderCPU  time.Duration
	dash       dashResult
}

func (c *caseRun) logf(format string, args ...any) {
	fmt.Fprintf(c.out, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
}

// errUnsupported marks a case that an endpoint (exit 127) or the runner's
// mode cannot run.
type errUnsupported struct{ why string }

func (e errUnsupported) Error() string { return e.why }

func (r *Runner) runCase(ctx context.Context, mode Mode, snd, rcv *Implementation, tc *TestCase) CaseResult {
	res := CaseResult{Abbr: tc.Abbr, Name: tc.Name}
	dir := filepath.Join(r.LogDir, snd.Name+"_"+rcv.Name, tc.Name)
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.Result, res.Reason = Failed, err.Error()
		return res
	}
	out, err := os.Create(filepath.Join(dir, "output.txt"))
	if err != nil {
		res.Result, res.Reason = Failed, err.Error()
		return res
	}
	defer out.Close()
	c := &caseRun{r: r, tc: tc, mode: mode, snd: snd, rcv: rcv, dir: dir, out: out,
		sums: map[string][32]byte{}, released: map[string]time.Time{}, marks: map[string]time.Time{}, pcaps: map[string]string{}}
	c.logf("test case %s (%s): %s", tc.Name, tc.Abbr, tc.Desc)
	c.logf("sender %s, receiver %s, mode %s", snd.Name, rcv.Name, mode)
	err = c.run(ctx)
	var unsup errUnsupported
	switch {
	case err == nil:
		res.Result = Succeeded
	case errors.As(err, &unsup):
		res.Result = Unsupported
	default:
		res.Result = Failed
	}
	if err != nil {
		res.Reason = err.Error()
		c.logf("RESULT %s: %v", res.Result, err)
	} else {
		c.logf("RESULT %s", res.Result)
	}
	res.Details = c.details
	if res.Result == Succeeded && !r.KeepFiles {
		for _, d := range []string{"www", "staging", "downloads"} {
			os.RemoveAll(filepath.Join(dir, d))
		}
	}
	return res
}

func (c *caseRun) run(ctx context.Context) (err error) {
	tc := c.tc
	if c.mode == ModeLoopback && (tc.NeedsNetns || tc.Topology.IPv6 || tc.Topology.Attacker) {
		return errUnsupported{"needs network namespaces; the runner is in loopback mode"}
	}
	if tc.Name == "dash" {
		if _, lerr := execLookPath("ffmpeg"); lerr != nil {
			return errUnsupported{"the runner needs ffmpeg for this case"}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, tc.Timeout+20*time.Second)
	defer cancel()
	c.ctx = ctx

	topo := tc.Topology
	if c.r.Network == NetworkSnooping {
		topo.Snooping = true
	}
	if c.mode == ModeLoopback && (topo.Snooping || len(topo.Bottleneck) > 0) {
		return errUnsupported{"needs network namespaces (a snooping switch or a bottleneck); the runner is in loopback mode"}
	}
	n, err := NewNetwork(ctx, c.mode, topo)
	if err != nil {
		return fmt.Errorf("network: %w", err)
	}
	c.net = n
	defer func() {
		if cerr := n.Close(); cerr != nil {
			c.logf("clean-up: %v", cerr)
			err = errors.Join(err, cerr)
		}
	}()
	c.logf("network: sender %s %s%s, server %s, group [%s]:%d%s", n.Sender.Addr, n.Sender.Iface, nsNote(n.Sender), n.Server, n.Group, n.Port, switchNote(n))
	for i, h := range n.Receivers {
		c.logf("network: receiver %d %s %s%s loss %d%%", i+1, h.Addr, h.Iface, nsNote(h), lossOf(tc.Topology, i))
	}
	if err := c.prepareFiles(); err != nil {
		return err
	}
	if err := c.startCaptures(); err != nil {
		return err
	}
	defer c.stopCaptures()
	for i, h := range n.Receivers {
		if l := lossOf(tc.Topology, i); l > 0 {
			if err := h.SetLoss(ctx, n.Group, n.Port, l, n.AttackerMAC); err != nil {
				return err
			}
		}
	}
	if n.Attacker != nil {
		if err := c.startAttacker(); err != nil {
			return err
		}
	}
	defer c.stopAll()
	if err := c.startSender(); err != nil {
		return err
	}
	c.receivers = make([]*proc, len(n.Receivers))
	c.joined = make([]time.Time, len(n.Receivers))
	c.completeAt = make([]map[string]time.Time, len(n.Receivers))
	for i := range c.completeAt {
		c.completeAt[i] = map[string]time.Time{}
	}
	late := tc.Later
	for i := 0; i < len(n.Receivers)-late; i++ {
		if err := c.startReceiver(i); err != nil {
			return err
		}
	}
	for i := 0; i < len(n.Receivers)-late; i++ {
		if err := c.waitJoined(i); err != nil {
			return err
		}
	}
	driveErr := tc.drive(c)
	c.finish()
	if err := c.unsupportedByEndpoint(); err != nil {
		return err
	}
	if driveErr != nil {
		return driveErr
	}
	c.stopCaptures()
	return tc.check(c)
}

func nsNote(h Host) string {
	if h.NS == "" {
		return ""
	}
	return " (netns " + h.NS + ")"
}

func lossOf(t Topology, i int) int {
	if i < len(t.Loss) {
		return t.Loss[i]
	}
	return 0
}

// prepareFiles creates the folders, the certificates and the case's files
// (in staging, moved into www when released).
func (c *caseRun) prepareFiles() error {
	c.www = filepath.Join(c.dir, "www")
	c.staging = filepath.Join(c.dir, "staging")
	c.certs = filepath.Join(c.dir, "certs")
	for _, d := range []string{c.www, c.staging, c.certs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for i := range c.net.Receivers {
		d := filepath.Join(c.dir, "downloads", fmt.Sprintf("receiver-%d", i+1))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		c.downloads = append(c.downloads, d)
	}
	if err := writeCerts(c.certs, c.net.Server.Addr(), c.tc.Name == "signature"); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if c.tc.files == nil {
		return nil
	}
	var seed [32]byte
	copy(seed[:], c.tc.Name)
	rng := rand.New(rand.NewChaCha8(seed))
	c.files = c.tc.files(rng, c.r.MeasureMB)
	buf := make([]byte, 0, 1<<20)
	for _, f := range c.files {
		p := filepath.Join(c.staging, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if cap(buf) < f.Size {
			buf = make([]byte, f.Size)
		}
		b := buf[:f.Size]
		for i := 0; i+8 <= len(b); i += 8 {
			v := rng.Uint64()
			for k := 0; k < 8; k++ {
				b[i+k] = byte(v >> (8 * k))
			}
		}
		for i := len(b) &^ 7; i < len(b); i++ {
			b[i] = byte(rng.Uint32())
		}
		c.sums[f.Path] = sha256.Sum256(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	c.logf("files: %d generated, %d bytes", len(c.files), c.contentBytes(-1))
	return nil
}

// vars returns the variables for one endpoint.
func (c *caseRun) endpointVars(role Role, idx int) map[string]string {
	n := c.net
	host := n.Sender
	side := "sender"
	if role == RoleReceiver {
		host = n.Receivers[idx]
		side = fmt.Sprintf("receiver-%d", idx+1)
	}
	logdir := filepath.Join(c.dir, side)
	os.MkdirAll(filepath.Join(logdir, "qlog"), 0o755)
	v := map[string]string{
		"h3m":           c.r.H3M,
		"ROLE":          string(role),
		"TESTCASE":      c.tc.endpointName(),
		"WWW":           c.www,
		"CERTS":         c.certs,
		"LOGDIR":        logdir,
		"QLOGDIR":       filepath.Join(logdir, "qlog"),
		"SSLKEYLOGFILE": filepath.Join(logdir, "keys.log"),
		"GROUP":         n.Group.String(),
		"PORT":          strconv.Itoa(int(n.Port)),
		"SOURCE":        n.Sender.Addr.String(),
		"IFACE":         host.Iface,
		"SERVER":        n.Server.String(),
		"URL":           "https://" + n.Server.String() + "/",
		"RATE":          strconv.FormatUint(c.tc.Rate, 10),
		"RECEIVER":      "0",
		"DOWNLOADS":     "",
		"GATEWAY":       "",
		"ROLLOVER":      "",
	}
	if c.tc.Name == "rollover" {
		v["ROLLOVER"] = "2s"
	}
	if role == RoleReceiver {
		v["RECEIVER"] = strconv.Itoa(idx + 1)
		v["DOWNLOADS"] = c.downloads[idx]
		if c.tc.Name == "dash" {
			v["GATEWAY"] = c.gatewayAddr(idx)
		}
	}
	return v
}

// gatewayAddr is where the dash case's receiver serves players: port 8080
// on the receiver host's own loopback, or a free port in loopback mode.
func (c *caseRun) gatewayAddr(int) string {
	if c.gateway == "" {
		c.gateway = "127.0.0.1:8080"
		if c.mode == ModeLoopback {
			p, _ := freeUDPPort()
			c.gateway = fmt.Sprintf("127.0.0.1:%d", p)
		}
	}
	return c.gateway
}

func (c *caseRun) startEndpoint(role Role, idx int) (*proc, error) {
	impl := c.snd
	host := c.net.Sender
	side := "sender"
	if role == RoleReceiver {
		impl = c.rcv
		host = c.net.Receivers[idx]
		side = fmt.Sprintf("receiver-%d", idx+1)
	}
	vars := c.endpointVars(role, idx)
	argv, env, err := impl.Endpoint(role).Command(vars)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", impl.Name, role, err)
	}
	c.logf("start %s on %s: %s", side, host.Name, strings.Join(argv, " "))
	return startProc(host, side, argv, endpointEnv(vars, env), vars["LOGDIR"], filepath.Join(vars["LOGDIR"], "output.txt"))
}

func (c *caseRun) startSender() error {
	p, err := c.startEndpoint(RoleSender, 0)
	if err != nil {
		return err
	}
	c.sender = p
	// The sender is ready when its unicast server listens.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if exited, code, _ := p.result(); exited {
			if code == 127 {
				return errUnsupported{"sender exited with 127: " + c.tail("sender")}
			}
			return fmt.Errorf("sender exited with %d before its server listened: %s", code, c.tail("sender"))
		}
		ok, err := c.net.Sender.Listening(c.ctx, c.net.Server.Port())
		if err == nil && ok {
			c.logf("sender's server listens on %s", c.net.Server)
			return nil
		}
		if time.Now().After(deadline) || c.ctx.Err() != nil {
			return fmt.Errorf("sender's server not listening on %s after 15 s: %s", c.net.Server, c.tail("sender"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *caseRun) startReceiver(i int) error {
	p, err := c.startEndpoint(RoleReceiver, i)
	if err != nil {
		return err
	}
	c.receivers[i] = p
	return nil
}

// waitJoined waits until receiver i's host is a member of the group (its
// interface lists the group; in loopback mode, as many sockets as
// receivers started so far).
func (c *caseRun) waitJoined(i int) error {
	h := c.net.Receivers[i]
	want := 1
	if c.mode == ModeLoopback {
		want = 0
		for _, p := range c.receivers {
			if p != nil {
				want++
			}
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if exited, code, _ := c.receivers[i].result(); exited {
			if code == 127 {
				return errUnsupported{fmt.Sprintf("receiver %d exited with 127: %s", i+1, c.tail(fmt.Sprintf("receiver-%d", i+1)))}
			}
			return fmt.Errorf("receiver %d exited with %d before joining: %s", i+1, code, c.tail(fmt.Sprintf("receiver-%d", i+1)))
		}
		users, err := h.Joined(c.ctx, c.net.Group)
		if err == nil && users >= want && c.switchForwards(h) {
			c.joined[i] = time.Now()
			c.logf("receiver %d joined %s (%v after start)", i+1, c.net.Group, time.Since(c.receivers[i].started).Round(time.Millisecond))
			return nil
		}
		if time.Now().After(deadline) || c.ctx.Err() != nil {
			return fmt.Errorf("receiver %d did not join %s within 15 s: %s", i+1, c.net.Group, c.tail(fmt.Sprintf("receiver-%d", i+1)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tail returns the last lines of an endpoint's output.
func (c *caseRun) tail(side string) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, side, "output.txt"))
	return lastLines(b, 4)
}

// release moves the files of batch b (all files when b < 0) from staging
// into www, each by one rename, so that a sender never sees a partial file.
func (c *caseRun) release(b int) error {
	now := time.Now()
	c.marks[fmt.Sprintf("release-%d", b)] = now
	cnt := 0
	for _, f := range c.files {
		if b >= 0 && f.Batch != b {
			continue
		}
		dst := filepath.Join(c.www, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(c.staging, filepath.FromSlash(f.Path)), dst); err != nil {
			return err
		}
		c.released[f.Path] = now
		cnt++
	}
	c.logf("released batch %d: %d files", b, cnt)
	return nil
}

func (c *caseRun) batchFiles(b int) []genFile {
	var out []genFile
	for _, f := range c.files {
		if b < 0 || f.Batch == b {
			out = append(out, f)
		}
	}
	return out
}

// contentBytes sums the sizes of batch b (all when b < 0).
func (c *caseRun) contentBytes(b int) int64 {
	var n int64
	for _, f := range c.batchFiles(b) {
		n += int64(f.Size)
	}
	return n
}

// waitFiles waits until every listed receiver holds every file of batch b
// (all when b < 0) byte-exact, or the case times out. A file whose size is
// right but whose content stays wrong for 3 s ends the wait.
func (c *caseRun) waitFiles(rcvs []int, b int) error {
	files := c.batchFiles(b)
	deadline := c.startedDeadline()
	wrongSince := map[string]time.Time{}
	for {
		missing := 0
		var firstMissing string
		for _, i := range rcvs {
			for _, f := range files {
				c.mu.Lock()
				_, done := c.completeAt[i][f.Path]
				c.mu.Unlock()
				if done {
					continue
				}
				p := filepath.Join(c.downloads[i], filepath.FromSlash(f.Path))
				st, err := os.Stat(p)
				if err == nil && st.Size() == int64(f.Size) {
					data, err := os.ReadFile(p)
					if err == nil && sha256.Sum256(data) == c.sums[f.Path] {
						c.mu.Lock()
						c.completeAt[i][f.Path] = time.Now()
						c.mu.Unlock()
						continue
					}
					key := fmt.Sprintf("%d/%s", i, f.Path)
					if t, ok := wrongSince[key]; !ok {
						wrongSince[key] = time.Now()
					} else if time.Since(t) > 3*time.Second {
						return fmt.Errorf("receiver %d: %s has the right size but wrong content", i+1, f.Path)
					}
				}
				missing++
				if firstMissing == "" {
					firstMissing = fmt.Sprintf("receiver %d: %s", i+1, f.Path)
				}
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) || c.ctx.Err() != nil {
			return fmt.Errorf("%d files missing or incomplete at the timeout (first: %s)", missing, firstMissing)
		}
		for _, i := range rcvs {
			if exited, code, _ := c.receivers[i].result(); exited {
				if code == 127 {
					return errUnsupported{fmt.Sprintf("receiver %d exited with 127", i+1)}
				}
				if !c.receiverDone(i, files) {
					return fmt.Errorf("receiver %d exited with %d with files missing (%s): %s", i+1, code, firstMissing, c.tail(fmt.Sprintf("receiver-%d", i+1)))
				}
			}
		}
		if exited, code, _ := c.sender.result(); exited && code == 127 {
			return errUnsupported{"sender exited with 127"}
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (c *caseRun) receiverDone(i int, files []genFile) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range files {
		if _, ok := c.completeAt[i][f.Path]; !ok {
			return false
		}
	}
	return true
}

func (c *caseRun) startedDeadline() time.Time {
	return c.sender.started.Add(c.tc.Timeout)
}

func allIdx(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// finish ends the session: SIGTERM to the sender, which must end the
// session and exit within 15 s (it may keep its unicast server up a little
// for the receivers' last repairs); the receivers get 10 s to exit by
// themselves. Anything still running then is stopped.
func (c *caseRun) finish() {
	if c.sender == nil {
		return
	}
	c.senderEnd = time.Now()
	c.sender.signal(sigTERM)
	wait := 10 * time.Second
	if c.tc.Name == "dash" {
		wait = 0 // a gateway keeps serving its players
	}
	deadline := c.senderEnd.Add(wait)
	for i, p := range c.receivers {
		if p == nil {
			continue
		}
		if !p.wait(context.Background(), time.Until(deadline)) {
			if wait > 0 {
				// SIGQUIT first: a Go program prints every goroutine's
				// stack into its log, which shows where it hangs.
				c.logf("receiver %d still running %v after the session ended: SIGQUIT, then stopping it", i+1, wait)
				p.signal(syscall.SIGQUIT)
				p.wait(context.Background(), time.Second)
			}
			p.stop(2 * time.Second)
		}
		_, code, stopped := p.result()
		c.logf("receiver %d: exit code %d (stopped by the runner: %v) at +%v", i+1, code, stopped, p.exitedAt().Sub(c.senderEnd).Round(time.Millisecond))
	}
	if !c.sender.wait(context.Background(), time.Until(c.senderEnd.Add(15*time.Second))) {
		c.logf("sender still running 15 s after SIGTERM: killing it")
		c.sender.stop(0)
	}
	_, code, _ := c.sender.result()
	c.logf("sender exited with %d at +%v", code, c.sender.exitedAt().Sub(c.senderEnd).Round(time.Millisecond))
}

// stopAll stops every process still running (on early returns).
func (c *caseRun) stopAll() {
	if c.sender != nil {
		c.sender.stop(2 * time.Second)
	}
	for _, p := range c.receivers {
		if p != nil {
			p.stop(2 * time.Second)
		}
	}
	if c.forgery != nil && c.forgery.conn != nil {
		c.forgery.conn.Close()
	}
	if c.attacker != nil {
		c.attacker.Close()
	}
}

// unsupportedByEndpoint reports an endpoint that exited with 127.
func (c *caseRun) unsupportedByEndpoint() error {
	if c.sender != nil {
		if exited, code, stopped := c.sender.result(); exited && code == 127 && !stopped {
			return errUnsupported{"sender exited with 127"}
		}
	}
	for i, p := range c.receivers {
		if p == nil {
			continue
		}
		if exited, code, _ := p.result(); exited && code == 127 {
			return errUnsupported{fmt.Sprintf("receiver %d exited with 127", i+1)}
		}
	}
	return nil
}

func (p *proc) exitedAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exited
}

// startCaptures runs tcpdump on every host's interface (one capture of
// "lo" in loopback mode) into sim/<host>.pcap.
func (c *caseRun) startCaptures() error {
	if _, err := execLookPath("tcpdump"); err != nil {
		c.logf("no tcpdump: no packet captures (checks that need them fail)")
		return nil
	}
	hosts := append([]Host{c.net.Sender}, c.net.Receivers...)
	if c.mode == ModeLoopback {
		hosts = []Host{{Name: "lo", Iface: "lo"}}
	}
	sim := filepath.Join(c.dir, "sim")
	if err := os.MkdirAll(sim, 0o755); err != nil {
		return err
	}
	for _, h := range hosts {
		file := filepath.Join(sim, h.Name+".pcap")
		argv := []string{"tcpdump", "-i", h.Iface, "-n", "-U", "-s", "0", "-B", "16384", "-Z", "root", "-w", file, "udp"}
		p, err := startProc(h, "tcpdump-"+h.Name, argv, []string{"PATH=" + os.Getenv("PATH")}, sim, filepath.Join(sim, h.Name+".tcpdump.txt"))
		if err != nil {
			return err
		}
		c.captures = append(c.captures, p)
		c.pcaps[h.Name] = file
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(filepath.Join(sim, h.Name+".tcpdump.txt"))
			if bytes.Contains(b, []byte("listening on")) {
				break
			}
			if exited, code, _ := p.result(); exited {
				return fmt.Errorf("tcpdump on %s exited with %d: %s", h.Name, code, lastLines(b, 3))
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("tcpdump on %s not ready after 5 s", h.Name)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func (c *caseRun) stopCaptures() {
	for _, p := range c.captures {
		p.stop(3 * time.Second)
	}
	c.captures = nil
}

// startAttacker runs the integrity case's attacker: a relay on the
// attacker host that re-sends every packet of the session with one bit
// flipped, from the sender's address.
func (c *caseRun) startAttacker() error {
	h := *c.net.Attacker
	cfg := RelayConfig{Group: netip.AddrPortFrom(c.net.Group, c.net.Port), Source: c.net.Sender.Addr,
		InInterface: h.Iface, OutInterface: h.Iface, FlipMiddle: true}
	if c.r.Forger {
		c.forgery = &forgery{}
		cfg.Observe = c.forgery.observe
	}
	var rl *Relay
	err := h.Do(func() error {
		var err error
		rl, err = NewRelay(cfg)
		return err
	})
	if err != nil {
		return fmt.Errorf("attacker: %w", err)
	}
	c.attacker = rl
	go rl.Run(c.ctx)
	c.logf("attacker on %s re-sends every packet with a bit flipped", h.NS)
	return nil
}
