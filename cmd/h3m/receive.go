package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go/qlogwriter"
	"golang.org/x/sys/unix"
)

func receiveCommand() *command {
	return &command{
		name:  "receive",
		usage: "(--url URL | --alt-svc ADVERTISEMENT | --session FILE) --out DIR [flags]",
		short: "receive a session's resources into a folder",
		long: `receive discovers the multicast session that the unicast server at URL
announces, joins it on --interface, and writes every resource it receives
under DIR. A file only ever appears under its final name complete and
verified (it is written to DIR/.h3m-partial first). What multicast lost is
repaired with range requests over unicast; what it missed entirely is
fetched; if no packet arrives for --fallback-after, everything comes over
unicast until multicast returns.

Repairs and fetches go first to the HTTP caches the origin's description
lists (or --repair-url, repeatable, nearest first), over HTTP/3 when a cache
advertises it and HTTP/2 or HTTP/1.1 over TLS otherwise, and to the origin
when none answers. A cache is not trusted: every byte it serves is checked
against the digests the origin gave, and a cache that fails is skipped.
Repairs through caches ask for whole 64 KiB blocks, so that receivers ask
for the same ranges and the cache fetches each once.

A session announced elsewhere is joined from its advertisement alone:
--alt-svc 'h3m-07="232.1.2.3:2345"; source-address="192.0.2.1";
session-id=...' (an Alt-Svc field value, keys included) or --session FILE
(a session description: the JSON of /.well-known/h3m, or Alt-Svc lines).
With no --url there is then no unicast origin: nothing is repaired or
fetched, and what multicast did not deliver whole is reported missing.

It exits 0 once the session has ended and every announced resource is
complete and verified. It exits 1 with the list of what is missing when the
session ended without some (a resource that could not be repaired or
fetched, a push whose promise multicast lost and no catalogue names, what
the origin could not give because it stopped answering for 5 s after the
end), 1 when --timeout passes first, and 130 when interrupted. Each
delivery is reported on a line with how it came: multicast, repair (with
the repaired bytes) or fallback; on a terminal a status line shows the
rate and what is left.

In an asymmetric session (h3m serve --asymmetric) only packets listed in a
manifest signed with the advertised key are used; manifests lost in-band are
fetched from the server (--manifests). --require-asymmetric refuses to join
a symmetric session, whose packets any receiver could forge: its resources
then come over unicast. --require-signature accepts from multicast only
resources signed with a key the server publishes over TLS; others are
fetched over unicast.

Whatever the session's mode, a promised path that is not a plain origin-form
target (another host, "..", a hidden name) is refused: it is never fetched
and never written. Files are written only inside DIR, never through a link
already there. A resource that the catalogue lists in another version as
current (an older version replayed) is not delivered from multicast; the
current one is fetched instead. See SECURITY.md for what each mode protects
against.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var cf clientFlags
			cf.register(fs)
			out := fs.String("out", "", "folder to write resources into (required)")
			timeout := fs.Duration("timeout", 0, "give up after this long (0: wait for the session to end)")
			return func(ctx context.Context, e *env) error {
				if (cf.url == "" && cf.altSvc == "" && cf.sessionFile == "") || *out == "" {
					return usagef("--out and one of --url, --alt-svc or --session are required")
				}
				if err := cf.check(e); err != nil {
					return err
				}
				return runReceive(ctx, e, &cf, *out, *timeout)
			}
		},
	}
}

// clientFlags are the flags of the commands that receive.
type clientFlags struct {
	url, ca, iface string
	// altSvc and sessionFile announce sessions elsewhere; check parses
	// them into sessions.
	altSvc, sessionFile string
	sessions            *wellknown.Description
	fallbackAfter       time.Duration
	repairDelay         time.Duration
	catchUp             bool
	requireDigest       bool
	requireAsym         bool
	requireSig          bool
	manifests           string
	maxSize             int64
	qlogDir             string
	metricsListen       string
	repairURLs          repairURLs
	repairBlock         int64
	tracer              func(sessionID []byte) qlogwriter.Trace // set by check
	breaker             client.BreakerConfig                    // zero: on, with the defaults
	procs               int
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "https URL of the h3m unicast server, as h3m serve prints it")
	fs.StringVar(&c.ca, "ca", "", "PEM certificate(s) to trust for the server (e.g. the h3m-cert.pem serve generated); default: the system roots")
	fs.StringVar(&c.altSvc, "alt-svc", "", "join the session of this h3m Alt-Svc advertisement (keys included), announced elsewhere; with no --url, nothing is repaired or fetched")
	fs.StringVar(&c.sessionFile, "session", "", "join the sessions of this session description file (the JSON of /.well-known/h3m, or Alt-Svc lines); with no --url, nothing is repaired or fetched")
	fs.StringVar(&c.iface, "interface", "lo", "network interface to join multicast on")
	fs.DurationVar(&c.fallbackAfter, "fallback-after", 3*time.Second, "switch to unicast when no multicast packet arrives for this long")
	fs.DurationVar(&c.repairDelay, "repair-delay", client.DefaultRepairDelay, "wait a random time up to this long before asking to repair lost bytes (a multicast repair of them meanwhile cancels the request)")
	fs.BoolVar(&c.catchUp, "catch-up", true, "also fetch resources pushed before this receiver started")
	fs.BoolVar(&c.requireDigest, "require-digest", true, "refuse resources that carry no digest to verify")
	fs.BoolVar(&c.requireAsym, "require-asymmetric", false, "refuse to join symmetric sessions (their packets can be forged by any receiver); get their resources over unicast")
	fs.BoolVar(&c.requireSig, "require-signature", false, "accept from multicast only resources signed with a key the server publishes over TLS")
	fs.StringVar(&c.manifests, "manifests", "auto", "asymmetric sessions: fetch lost manifests over unicast: auto (when in-band ones are missing), stream (always) or off")
	fs.Int64Var(&c.maxSize, "max-resource-size", 0, "largest resource accepted, by multicast or unicast, in bytes (0: no cap when written to disk, 256 MiB when held in memory)")
	fs.Var(&c.repairURLs, "repair-url", "base https URL of an HTTP cache to repair and fall back through before the origin (repeatable, nearest first); replaces the repair URLs the origin's description lists. Every byte from a cache is checked against the session's digests")
	fs.Int64Var(&c.repairBlock, "repair-block", client.DefaultRepairBlock, "with caches, align repairs to blocks of this many bytes, so that receivers ask for the same ranges (1: ask for exactly the bytes lost)")
	qlogFlag(fs, &c.qlogDir, "receiver")
	fs.Var(negatedBool{&c.breaker.Disabled}, "breaker", "circuit breaker (default on): leave a session whose rate or loss says the network cannot carry it, fetch its resources over unicast, join again after a back-off")
	fs.Float64Var(&c.breaker.RateMargin, "breaker-rate-margin", client.DefaultBreakerRateMargin, "circuit breaker: trip when the session's measured rate exceeds its advertised peak flow rate by more than this fraction")
	fs.Float64Var(&c.breaker.LossThreshold, "breaker-loss", client.DefaultBreakerLoss, "circuit breaker: trip when the session loses more than this fraction of its packets")
	fs.DurationVar(&c.breaker.Sustain, "breaker-sustain", client.DefaultBreakerSustain, "circuit breaker: trip once the rate or the loss has stayed over its limit for this long")
	fs.DurationVar(&c.breaker.Backoff, "breaker-backoff", client.DefaultBreakerBackoff, "circuit breaker: join again this long after a trip (doubling while it keeps tripping, at most 5m)")
	registerMetricsFlag(fs, &c.metricsListen)
	fs.IntVar(&c.procs, "procs", 0, "Go processors (GOMAXPROCS) to use: 0 sizes them from the joined sessions' advertised rates, one per 250 Mbit/s (an idle processor costs CPU in wake-ups), and uses every CPU for a session with no rate or over unicast; the GOMAXPROCS environment variable also wins over 0")
}

// negatedBool is a boolean flag that sets the negation of its value
// (--breaker=false sets BreakerConfig.Disabled).
type negatedBool struct{ p *bool }

func (f negatedBool) String() string {
	if f.p == nil {
		return "true"
	}
	return strconv.FormatBool(!*f.p)
}

func (f negatedBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	*f.p = !v
	return nil
}

func (f negatedBool) IsBoolFlag() bool { return true }

// check validates the flags that config cannot report on, and prepares
// the qlog folder.
func (c *clientFlags) check(e *env) error {
	if c.url != "" {
		u, err := parseServerURL(c.url) // the same forms and message for receive and gateway
		if err != nil {
			return err
		}
		c.url = u.String()
	}
	if _, err := client.ParseManifestMode(c.manifests); err != nil {
		return usagef("--manifests: %v", err)
	}
	if c.repairBlock < 1 {
		return usagef("--repair-block %d: want a size in bytes (1: no alignment)", c.repairBlock)
	}
	if c.procs < 0 {
		return usagef("--procs %d: want a number of Go processors, or 0 to size them from the sessions' rates", c.procs)
	}
	if c.maxSize < 0 {
		return usagef("--max-resource-size %d: want a size in bytes, or 0 for the default", c.maxSize)
	}
	switch b := c.breaker; {
	case b.RateMargin <= 0:
		return usagef("--breaker-rate-margin %v: want a fraction above 0 (0.25: 25 %% over the peak flow rate)", b.RateMargin)
	case b.LossThreshold <= 0 || b.LossThreshold >= 1:
		return usagef("--breaker-loss %v: want a fraction between 0 and 1", b.LossThreshold)
	case b.Sustain <= 0:
		return usagef("--breaker-sustain %v: want a positive duration", b.Sustain)
	case b.Backoff <= 0:
		return usagef("--breaker-backoff %v: want a positive duration", b.Backoff)
	}
	if err := c.parseSessions(); err != nil {
		return err
	}
	var err error
	c.tracer, err = qlogSetup(c.qlogDir, "receiver", e.log)
	return err
}

// parseSessions reads --alt-svc and --session into c.sessions.
func (c *clientFlags) parseSessions() error {
	var d *wellknown.Description
	add := func(more *wellknown.Description) {
		if d == nil {
			d = more
			return
		}
		d.Sessions = append(d.Sessions, more.Sessions...)
	}
	if c.altSvc != "" {
		ad, err := client.DescribeAltSvc(c.altSvc)
		if err != nil {
			return usagef("--alt-svc: %v", err)
		}
		add(ad)
	}
	if c.sessionFile != "" {
		b, err := os.ReadFile(c.sessionFile)
		if err != nil {
			return usagef("--session: %v", err)
		}
		var sd *wellknown.Description
		if t := strings.TrimSpace(string(b)); strings.HasPrefix(t, "{") {
			sd, err = wellknown.Parse(b)
		} else {
			sd, err = client.DescribeAltSvc(strings.Split(t, "\n")...)
		}
		if err != nil {
			return usagef("--session %s: %v", c.sessionFile, err)
		}
		if len(sd.Sessions) == 0 {
			return usagef("--session %s: no session", c.sessionFile)
		}
		add(sd)
	}
	c.sessions = d
	return nil
}

func (c *clientFlags) config(e *env) client.Config {
	mode, _ := client.ParseManifestMode(c.manifests) // checked by check
	return client.Config{
		URL: c.url, CAFile: c.ca, Interface: c.iface, Sessions: c.sessions,
		FallbackAfter: c.fallbackAfter, RepairDelay: c.repairDelay, CatchUp: c.catchUp, RequireDigest: c.requireDigest,
		RequireAsymmetric: c.requireAsym, RequireSignature: c.requireSig, Manifests: mode, MaxResourceSize: c.maxSize,
		Verifier:   &h3m.Verifier{RequireDigest: c.requireDigest},
		RepairURLs: c.repairURLs, RepairBlock: c.repairBlock,
		Breaker: c.breaker,
		Tracer:  c.tracer,
		Logger:  e.log,
	}
}

// partialDir is the folder under --out where bodies are written until they
// are complete and verified.
const partialDir = ".h3m-partial"

// outputName maps a request path onto the slash-separated name it is stored
// under in the output folder, by the rule the client applies before it
// fetches anything (wellknown.ParseTarget): a path the client accepted is
// always stored, under a name that stays in the folder and is not hidden
// (so never in partialDir); the query takes no part.
func outputName(urlPath string) (string, error) {
	t, err := wellknown.ParseTarget(urlPath)
	if err != nil {
		return "", fmt.Errorf("path %q cannot be stored under the output folder: %w", wellknown.Truncate(urlPath), err)
	}
	return t.Name(), nil
}

func runReceive(ctx context.Context, e *env, cf *clientFlags, out string, timeout time.Duration) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	// Everything is written through root: no name, and no link already in
	// the folder, leads out of it.
	root, err := os.OpenRoot(out)
	if err != nil {
		return err
	}
	defer root.Close()
	// A folder of our own for the bodies being received, not whatever
	// (a link, say) the name held before.
	if err := root.RemoveAll(partialDir); err != nil {
		return fmt.Errorf("clearing %s: %w", filepath.Join(out, partialDir), err)
	}
	if err := root.Mkdir(partialDir, 0o700); err != nil {
		return err
	}
	defer root.RemoveAll(partialDir)
	partial := filepath.Join(out, partialDir)
	progress := newProgressLine(e.stdout)
	// Logs go through the status line, so that a log line never lands on
	// it on a terminal.
	e = &env{stdout: e.stdout, stderr: e.stderr, args: e.args, log: slog.New(progress.handler(e.log.Handler()))}
	cfg := cf.config(e)
	cfg.Storage = h3m.DirStorage{Dir: partial, MaxSize: max(cf.maxSize, 0)}
	cfg.ExitOnEnd = true
	var mu sync.Mutex
	var failures []string
	var bytes int64
	var count int
	cfg.OnResource = func(d client.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		if d.Err != nil {
			failures = append(failures, missingLine(d.Path, d.Err))
			progress.println(fmt.Sprintf("failed     %s", missingLine(d.Path, d.Err)))
			return
		}
		err := commit(root, d)
		if err != nil {
			failures = append(failures, missingLine(d.Path, fmt.Errorf("storing it: %w", err)))
			e.log.Error("storing a resource failed", "path", d.Path, "err", err)
			return
		}
		count++
		bytes += d.Size
		line := fmt.Sprintf("%-10s %s (%d bytes)", d.Via, d.Path, d.Size)
		if d.Via == client.ViaRepair {
			line += fmt.Sprintf(", %d bytes repaired", d.RepairBytes)
		}
		if cf.requireSig && d.Via != client.ViaFallback {
			// With --require-signature nothing from multicast is delivered
			// unless its signature verified; unicast is trusted through TLS.
			line += ", signature verified"
		}
		progress.println(line)
		e.log.Debug("delivered", "path", d.Path, "via", d.Via, "size", d.Size,
			"lost_bytes", d.LostBytes, "repair_bytes", d.RepairBytes, "fetch_bytes", d.FetchBytes)
	}
	rm := newReceiverMetrics(cf.metricsListen, &cfg)
	rc, err := client.New(cfg)
	if err != nil {
		return usageError{err.Error()}
	}
	stopMetrics, err := rm.start(ctx, e, rc)
	if err != nil {
		return err
	}
	defer stopMetrics()
	defer tuneProcs(ctx, e.log, rc, cf.procs)()
	runCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rate rateMeter
	stop := progress.run(func() string {
		st := rc.Stats()
		inProgress := rc.InProgress()
		left := rc.Outstanding()
		mu.Lock()
		defer mu.Unlock()
		got := bytes
		for _, p := range inProgress {
			got += p.Received
		}
		return statusText(statusFigures{
			resources: count, bytes: bytes, fallback: st.FallbackActive, repaired: st.Repaired, fetched: st.Fallback,
			failed: len(failures), rate: rate.add(time.Now(), got), left: left, inProgress: inProgress,
		})
	})
	err = rc.Run(runCtx)
	stop()
	st := rc.Stats()
	mu.Lock()
	defer mu.Unlock()
	breaker := ""
	if st.BreakerTrips > 0 {
		breaker = fmt.Sprintf(" (circuit breaker trips: %d)", st.BreakerTrips)
	}
	fmt.Fprintf(e.stdout, "h3m: %d resources: %d by multicast, %d repaired (%d bytes), %d by fallback%s, %d missing\n",
		count, st.Multicast, st.Repaired, st.RepairBytes, st.Fallback, breaker, len(failures))
	if st.CacheRequests > 0 {
		fmt.Fprintf(e.stdout, "h3m: caches: %d requests, %d bytes, %d failed, %d answers rejected\n",
			st.CacheRequests, st.CacheBytes, st.CacheErrors, st.CacheRejected)
	}
	switch {
	case errors.Is(err, client.ErrUntrustedServer):
		if cf.ca == "" {
			return fmt.Errorf("%w\n(is it an h3m serve with its own certificate? pass that certificate with --ca, e.g. --ca h3m-cert.pem)", err)
		}
		return fmt.Errorf("%w\n(the certificate given with --ca %s is not the server's, or not for its name)", err, cf.ca)
	case err != nil:
		return err
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted: %w", context.Canceled) // exit code 130
	case runCtx.Err() != nil:
		msg := fmt.Sprintf("gave up after --timeout %v before the session ended", timeout)
		if left := rc.Outstanding(); left.Resources > 0 {
			msg += fmt.Sprintf(" (%d resources, %s, still on their way)", left.Resources, humanBytes(left.Bytes))
		}
		return errors.New(msg + missingList(failures))
	case len(failures) > 0:
		return fmt.Errorf("the session ended with %d resources missing:%s", len(failures), missingList(failures))
	}
	return nil
}

// missingLine describes a resource that could not be received: its path,
// or (a push whose promise was lost) what the error says of it.
func missingLine(path string, err error) string {
	msg := strings.TrimPrefix(err.Error(), "client: ")
	if path == "" {
		return msg
	}
	return path + ": " + msg
}

// missingList formats the missing resources, one a line.
func missingList(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "\n  " + strings.Join(lines, "\n  ")
}

// commit moves a delivered body to its final name under root. Whatever
// fails, the body's temporary file is removed at once.
func commit(root *os.Root, d client.Delivery) error {
	name, err := outputName(d.Path)
	if err != nil {
		_ = d.Body.Discard()
		return err
	}
	if dir := path.Dir(name); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			_ = d.Body.Discard()
			return err
		}
	}
	var tmp string // the temporary file, relative to root
	if fb, ok := d.Body.(*h3m.FileBody); ok {
		// Committed where it is (written out, synced, given its mode),
		// then moved inside the root.
		tmp = path.Join(partialDir, filepath.Base(fb.Name()))
		if err := fb.Commit(fb.Name()); err != nil {
			_ = fb.Discard()
			return err
		}
	} else {
		// A body held elsewhere: copied through a temporary file.
		tmp = path.Join(partialDir, fmt.Sprintf(".h3m-commit-%016x.partial", rand.Uint64()))
		f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			_ = d.Body.Discard()
			return err
		}
		_, err = io.Copy(f, io.NewSectionReader(d.Body, 0, d.Size))
		_ = d.Body.Discard()
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			root.Remove(tmp)
			return err
		}
	}
	if err := root.Rename(tmp, name); err != nil {
		root.Remove(tmp)
		return err
	}
	return nil
}

// bar draws a progress bar of width characters.
func bar(done, total int64, width int) string {
	n := 0
	if total > 0 {
		n = int(min(done, total) * int64(width) / total)
	}
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// statusFigures are what the status line shows.
type statusFigures struct {
	resources                 int
	bytes                     int64
	fallback                  bool
	repaired, fetched, failed int
	rate                      float64 // bytes/s received lately
	left                      client.Outstanding
	inProgress                []client.Progress
}

// statusText is the status shown under the delivery lines: a bar for each
// large resource on its way (at most five), then the counts, the rate and,
// while the rate and what is left are known, the time left.
func statusText(f statusFigures) string {
	var b strings.Builder
	shown := 0
	for _, p := range f.inProgress {
		if p.Size < 1<<20 || shown == 5 {
			continue
		}
		shown++
		fmt.Fprintf(&b, "%s %3.0f%% %s\n", bar(p.Received, p.Size, 30), 100*float64(p.Received)/float64(p.Size), p.Path)
	}
	mode := "multicast"
	if f.fallback {
		mode = "FALLBACK (unicast)"
	}
	fmt.Fprintf(&b, "%d resources, %s; %s; repaired %d, fallback %d, failed %d; %s/s",
		f.resources, humanBytes(f.bytes), mode, f.repaired, f.fetched, f.failed, humanBytes(int64(f.rate)))
	if f.left.Resources > 0 {
		fmt.Fprintf(&b, ", %s to go", humanBytes(f.left.Bytes))
		if f.rate > 0 && f.left.Bytes > 0 {
			fmt.Fprintf(&b, " (about %v)", (time.Duration(float64(f.left.Bytes) / f.rate * float64(time.Second))).Round(time.Second))
		}
	}
	return b.String()
}

// humanBytes formats a byte count in decimal units.
func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// rateMeter is the rate of a growing byte count over the last few seconds.
type rateMeter struct {
	samples []rateSample
}

type rateSample struct {
	at    time.Time
	bytes int64
}

// rateWindow is how far back rateMeter looks.
const rateWindow = 5 * time.Second

// add records the count at now and returns the rate since the oldest
// sample kept (bytes/s; 0 until two samples).
func (m *rateMeter) add(now time.Time, bytes int64) float64 {
	m.samples = append(m.samples, rateSample{now, bytes})
	i := 0
	for i < len(m.samples)-2 && now.Sub(m.samples[i+1].at) >= rateWindow {
		i++
	}
	m.samples = append(m.samples[:0], m.samples[i:]...)
	first := m.samples[0]
	if d := now.Sub(first.at); d > 0 {
		return float64(bytes-first.bytes) / d.Seconds()
	}
	return 0
}

// progressLine keeps a status (one or more lines) at the bottom of a
// terminal, with report and log lines printed above it; elsewhere it prints
// the report lines only.
type progressLine struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	last string // the status shown
}

// clearLocked erases the status shown.
func (p *progressLine) clearLocked() {
	if p.last == "" {
		return
	}
	for range strings.Count(p.last, "\n") {
		fmt.Fprint(p.w, "\r\033[K\033[A")
	}
	fmt.Fprint(p.w, "\r\033[K")
}

func newProgressLine(w io.Writer) *progressLine {
	p := &progressLine{w: w}
	if f, ok := w.(*os.File); ok {
		_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		p.tty = err == nil
	}
	return p
}

func (p *progressLine) println(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		p.clearLocked()
		fmt.Fprintf(p.w, "%s\n%s", s, p.last)
		return
	}
	fmt.Fprintln(p.w, s)
}

// show replaces the status shown.
func (p *progressLine) show(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	p.last = s
	fmt.Fprint(p.w, s)
}

// run refreshes the status every 250 ms until the returned stop, which
// erases it.
func (p *progressLine) run(status func() string) (stop func()) {
	if !p.tty {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				p.show(status())
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
		p.mu.Lock()
		p.clearLocked()
		p.last = ""
		p.mu.Unlock()
	}
}

// handler wraps a log handler so that, on a terminal, each log line is
// written with the status erased, and the status drawn again below it.
func (p *progressLine) handler(h slog.Handler) slog.Handler {
	if !p.tty {
		return h
	}
	return &statusLogHandler{h: h, p: p}
}

type statusLogHandler struct {
	h slog.Handler
	p *progressLine
}

func (s *statusLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return s.h.Enabled(ctx, l)
}

func (s *statusLogHandler) Handle(ctx context.Context, r slog.Record) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.p.clearLocked()
	err := s.h.Handle(ctx, r)
	fmt.Fprint(s.p.w, s.p.last)
	return err
}

func (s *statusLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &statusLogHandler{h: s.h.WithAttrs(as), p: s.p}
}

func (s *statusLogHandler) WithGroup(name string) slog.Handler {
	return &statusLogHandler{h: s.h.WithGroup(name), p: s.p}
}
