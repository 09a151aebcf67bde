package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
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
		usage: "--url URL --out DIR [flags]",
		short: "receive a session's resources into a folder",
		long: `receive discovers the multicast session that the unicast server at URL
announces, joins it on --interface, and writes every resource it receives
under DIR. A file only ever appears under its final name complete and
verified (it is written to DIR/.h3m-partial first). What multicast lost is
repaired with range requests over unicast; what it missed entirely is
fetched; if no packet arrives for --fallback-after, everything comes over
unicast until multicast returns.

It exits 0 once the session has ended and every announced resource is
complete and verified, and 1 with the reason otherwise (or when --timeout
passes). Each delivery is reported on a line with how it came: multicast,
repair (with the repaired bytes) or fallback.

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
				if cf.url == "" || *out == "" {
					return usagef("--url and --out are required")
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
	fallbackAfter  time.Duration
	catchUp        bool
	requireDigest  bool
	requireAsym    bool
	requireSig     bool
	manifests      string
	maxSize        int64
	qlogDir        string
	metricsListen  string
	tracer         func(sessionID []byte) qlogwriter.Trace // set by check
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "https URL of the h3m unicast server, as h3m serve prints it")
	fs.StringVar(&c.ca, "ca", "", "PEM certificate(s) to trust for the server (e.g. the h3m-cert.pem serve generated); default: the system roots")
	fs.StringVar(&c.iface, "interface", "lo", "network interface to join multicast on")
	fs.DurationVar(&c.fallbackAfter, "fallback-after", 3*time.Second, "switch to unicast when no multicast packet arrives for this long")
	fs.BoolVar(&c.catchUp, "catch-up", true, "also fetch resources pushed before this receiver started")
	fs.BoolVar(&c.requireDigest, "require-digest", true, "refuse resources that carry no digest to verify")
	fs.BoolVar(&c.requireAsym, "require-asymmetric", false, "refuse to join symmetric sessions (their packets can be forged by any receiver); get their resources over unicast")
	fs.BoolVar(&c.requireSig, "require-signature", false, "accept from multicast only resources signed with a key the server publishes over TLS")
	fs.StringVar(&c.manifests, "manifests", "auto", "asymmetric sessions: fetch lost manifests over unicast: auto (when in-band ones are missing), stream (always) or off")
	fs.Int64Var(&c.maxSize, "max-resource-size", 0, "largest resource accepted, by multicast or unicast, in bytes (0: no cap when written to disk, 256 MiB when held in memory)")
	qlogFlag(fs, &c.qlogDir, "receiver")
	registerMetricsFlag(fs, &c.metricsListen)
}

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
	if c.maxSize < 0 {
		return usagef("--max-resource-size %d: want a size in bytes, or 0 for the default", c.maxSize)
	}
	var err error
	c.tracer, err = qlogSetup(c.qlogDir, "receiver", e.log)
	return err
}

func (c *clientFlags) config(e *env) client.Config {
	mode, _ := client.ParseManifestMode(c.manifests) // checked by check
	return client.Config{
		URL: c.url, CAFile: c.ca, Interface: c.iface,
		FallbackAfter: c.fallbackAfter, CatchUp: c.catchUp, RequireDigest: c.requireDigest,
		RequireAsymmetric: c.requireAsym, RequireSignature: c.requireSig, Manifests: mode, MaxResourceSize: c.maxSize,
		Verifier: &h3m.Verifier{RequireDigest: c.requireDigest},
		Tracer:   c.tracer,
		Logger:   e.log,
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
	cfg := cf.config(e)
	cfg.Storage = h3m.DirStorage{Dir: partial, MaxSize: max(cf.maxSize, 0)}
	cfg.ExitOnEnd = true
	var mu sync.Mutex
	var failures []string
	var bytes int64
	var count int
	progress := newProgressLine(e.stdout)
	cfg.OnResource = func(d client.Delivery) {
		mu.Lock()
		defer mu.Unlock()
		if d.Err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", d.Path, d.Err))
			progress.println(fmt.Sprintf("failed     %s: %v", d.Path, d.Err))
			e.log.Error("resource failed", "path", d.Path, "err", d.Err)
			return
		}
		err := commit(root, d)
		if err != nil {
			failures = append(failures, fmt.Sprintf("%s: %v", d.Path, err))
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
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	stop := progress.run(func() string {
		st := rc.Stats()
		mu.Lock()
		defer mu.Unlock()
		mode := "multicast"
		if st.FallbackActive {
			mode = "FALLBACK (unicast)"
		}
		var b strings.Builder
		// A bar for each large resource on its way (at most five).
		shown := 0
		for _, p := range rc.InProgress() {
			if p.Size < 1<<20 || shown == 5 {
				continue
			}
			shown++
			fmt.Fprintf(&b, "%s %3.0f%% %s\n", bar(p.Received, p.Size, 30), 100*float64(p.Received)/float64(p.Size), p.Path)
		}
		fmt.Fprintf(&b, "%d resources, %.1f MB; %s; repaired %d, fallback %d, failed %d",
			count, float64(bytes)/1e6, mode, st.Repaired, st.Fallback, st.Failed)
		return b.String()
	})
	err = rc.Run(ctx)
	stop()
	st := rc.Stats()
	fmt.Fprintf(e.stdout, "h3m: %d resources: %d by multicast, %d repaired (%d bytes), %d by fallback, %d failed\n",
		count, st.Multicast, st.Repaired, st.RepairBytes, st.Fallback, len(failures))
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("gave up after --timeout %v before the session ended", timeout)
	case err != nil:
		return err
	case len(failures) > 0:
		return fmt.Errorf("%d resources failed: %s", len(failures), strings.Join(failures, "; "))
	}
	return nil
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

// progressLine keeps a status (one or more lines) at the bottom of a
// terminal, with report lines printed above it; elsewhere it prints the
// report lines only.
type progressLine struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	last string // the status shown
}

// clearLocked erases the status shown.
func (p *progressLine) clearLocked() {
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

// run refreshes the status line every 250 ms until the returned stop.
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
				s := status()
				p.mu.Lock()
				p.clearLocked()
				p.last = s
				fmt.Fprint(p.w, s)
				p.mu.Unlock()
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
