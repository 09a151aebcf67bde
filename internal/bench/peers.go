package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/h3m-project/h3m/interop"
)

// The peer comparison runs h3m and UFTP (Debian's uftp/uftpd) alternately on
// one topology of network namespaces: a sender host and N receiver hosts on
// a bridge (interop.NewNetwork), with the same content, rate and random loss,
// and compares what each needs to get the files to every receiver intact.

// PeersOptions configure the comparison.
type PeersOptions struct {
	// H3M is the h3m binary; both its serve and receive commands run as
	// black boxes, one process per host.
	H3M string
	// Receivers lists the receiver counts to measure (e.g. 1 and 4).
	Receivers []int
	// Loss lists the random loss rates of multicast packets, in percent,
	// applied by nftables inside every receiver's namespace.
	Loss []int
	// Size is the total content in bytes, split over Files files of
	// different sizes.
	Size  int64
	Files int
	// Rate is the sending rate of both tools, bit/s.
	Rate uint64
	// Repeat runs each case this many times per tool, alternating which
	// tool goes first; the figures are the medians.
	Repeat int
	// Wait is h3m serve's --wait: time for the receivers, started when its
	// server is up, to discover the session and join before the first push.
	// It counts in h3m's time, as UFTP's announcement phase counts in UFTP's.
	Wait time.Duration
	// AwaitReceivers has h3m serve push as soon as the case's receivers
	// have all read the session description (--wait-receivers N), as UFTP
	// with -H starts once every listed client registered; Wait then only
	// bounds the wait.
	AwaitReceivers bool
	// PacketSize is h3m serve's --packet-size (0: its default).
	PacketSize int
	// UFTPArgs are more options for uftp (the sender), after the ones the
	// comparison sets.
	UFTPArgs []string
	// ServeArgs and ReceiveArgs are more options for h3m serve and h3m
	// receive, after the ones the comparison sets (the scale bench's FEC
	// and unicast-only runs).
	ServeArgs, ReceiveArgs []string
	// Timeout bounds each run; 0 picks one from the size and the rate.
	Timeout time.Duration
	// Dir holds the content and each run's logs (the received copies are
	// removed once checked). When empty a temporary folder is used and
	// removed at the end, unless a run failed: then its logs stay.
	Dir string
	// Out receives the report.
	Out io.Writer
	// Logger receives progress.
	Logger *slog.Logger
}

// Defaults of the comparison, as the issue that asked for it measured.
const (
	DefaultPeersSize  = 100 << 20
	DefaultPeersFiles = 50
	DefaultPeersRate  = 100_000_000
	DefaultPeersWait  = 250 * time.Millisecond
	// DefaultPeersAwaitWait bounds h3m serve's wait for its receivers when
	// it awaits them (AwaitReceivers), as uftp's announcement phase is
	// bounded: it pushes as soon as they have joined.
	DefaultPeersAwaitWait = 2 * time.Second
	// DefaultPeersPacketSize is the UDP payload of the data packets UFTP
	// sends with its default 1300-byte blocks (the block, its headers and
	// the GCM tag; 1352 bytes on the wire, by tcpdump): both tools then
	// send datagrams of one size.
	DefaultPeersPacketSize = 1352
)

// Addresses on the interop topology (the sender is 10.77.0.1, receivers
// 10.77.0.11 and up; h3m uses the network's group 232.77.0.1). UFTP
// announces on one group and moves data on another.
const (
	uftpPublic  = "232.77.0.2"
	uftpPrivate = "232.77.0.3"
	uftpPort    = 1044
)

// PeersAvailable reports why the comparison cannot run here, or nil.
func PeersAvailable() error {
	if err := interop.NetnsAvailable(); err != nil {
		return err
	}
	for _, tool := range []string{"uftp", "uftpd"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("UFTP is not installed (Debian package uftp): %w", err)
		}
	}
	return nil
}

// PeerRun is one tool's run of one case.
type PeerRun struct {
	Tool      string // "h3m" or "UFTP"
	Receivers int
	Loss      int
	// Done is from starting the sender until every receiver holds every
	// file and the tool knows it: for h3m the last receiver exits (it exits
	// 0 only with everything verified), for UFTP the sender exits (after
	// every client confirmed the group complete).
	Done time.Duration
	// LastFile is from starting the sender until the last receiver reported
	// its last file complete (a line in its output).
	LastFile time.Duration
	// SenderCPU and ReceiverCPU are user+system CPU of the sender process
	// and the sum over the receiver processes, from wait4's rusage.
	SenderCPU, ReceiverCPU time.Duration
	// WireBytes and WirePackets are what every host put on the bridge
	// (the sum of the hosts' eth0 transmit counters): multicast once,
	// unicast control and repairs both ways.
	WireBytes, WirePackets uint64
	// SenderBytes is the sender host's share of WireBytes, and
	// SenderMulticastBytes its multicast frames (data, repairs and control
	// sent to a group, counted as the bridge received them), so that the
	// rest of SenderBytes is its unicast (h3m: repairs, descriptions and
	// ACKs to the receivers; UFTP: little) and WireBytes-SenderBytes what
	// the receivers sent (requests, ACKs, handshakes, NAKs).
	SenderBytes, SenderMulticastBytes uint64
	// Dropped is the number of packets the loss rules dropped, summed over
	// the receivers.
	Dropped uint64
	// H3M is how h3m's receivers got the files, summed over them (from each
	// receiver's closing line; zero for UFTP).
	H3M h3mDeliveries
	// Err is why the run failed (not intact, a tool failed, timed out).
	Err error
}

// Tail is how long the tool took to finish after the last file was
// complete: for h3m the receivers' wait for the session's end to be
// confirmed, for UFTP the sender's wait for every client's completion.
func (r *PeerRun) Tail() time.Duration { return r.Done - r.LastFile }

// h3mDeliveries counts how h3m receive got its resources.
type h3mDeliveries struct {
	Multicast, Repaired, Fallback, Failed int
	RepairedBytes                         int64
	// What the receivers asked of caches (h3m receive's "h3m: caches:"
	// line): requests, body bytes, failures, answers rejected.
	CacheRequests, CacheErrors, CacheRejected int
	CacheBytes                                int64
}

// total is the number of resources the counts cover.
func (d h3mDeliveries) total() int { return d.Multicast + d.Repaired + d.Fallback + d.Failed }

// add adds e's counts to d.
func (d *h3mDeliveries) add(e h3mDeliveries) {
	d.Multicast += e.Multicast
	d.Repaired += e.Repaired
	d.Fallback += e.Fallback
	d.Failed += e.Failed
	d.RepairedBytes += e.RepairedBytes
	d.CacheRequests += e.CacheRequests
	d.CacheErrors += e.CacheErrors
	d.CacheRejected += e.CacheRejected
	d.CacheBytes += e.CacheBytes
}

// parse reads one of h3m receive's closing lines into d and reports
// whether line was one: the counts ("h3m: 10 resources: 7 by multicast, 3
// repaired (1995 bytes), 0 by fallback, 0 missing"; a line whose counts do
// not add up to its total is not one) or what it asked of caches ("h3m:
// caches: 4 requests, 65536 bytes, 0 failed, 0 answers rejected").
func (d *h3mDeliveries) parse(line string) bool {
	if _, err := fmt.Sscanf(line, "h3m: caches: %d requests, %d bytes, %d failed, %d answers rejected",
		&d.CacheRequests, &d.CacheBytes, &d.CacheErrors, &d.CacheRejected); err == nil {
		return true
	}
	var total int
	var c h3mDeliveries
	// The last count is followed by "missing" (or, in older versions,
	// "failed"): the format stops before the word.
	if _, err := fmt.Sscanf(line, "h3m: %d resources: %d by multicast, %d repaired (%d bytes), %d by fallback, %d",
		&total, &c.Multicast, &c.Repaired, &c.RepairedBytes, &c.Fallback, &c.Failed); err != nil || c.total() != total {
		return false
	}
	d.Multicast, d.Repaired, d.Fallback, d.Failed, d.RepairedBytes = c.Multicast, c.Repaired, c.Fallback, c.Failed, c.RepairedBytes
	return true
}

// h3mReceiveOutput is what the comparison reads from one h3m receive's
// output: a line per resource stored, then the closing line.
type h3mReceiveOutput struct {
	stored   int           // lines "multicast|repair|fallback  /path (n bytes)"
	last     time.Duration // when the last of them came, from the run's start
	closing  h3mDeliveries // the closing line's counts
	closed   bool          // the closing line was read
	numLines int
}

// line takes one line of output, seen at since from the run's start.
func (o *h3mReceiveOutput) line(line string, since time.Duration) {
	o.numLines++
	for _, via := range []string{"multicast ", "repair ", "fallback "} {
		if strings.HasPrefix(line, via) {
			o.stored++
			o.last = max(o.last, since)
			return
		}
	}
	if o.closing.parse(line) {
		o.closed = true
	}
}

// check reports what the output lacks for the figures of a run of files
// files: the closing line, or a count that does not match.
func (o *h3mReceiveOutput) check(files int) error {
	switch {
	case !o.closed:
		return fmt.Errorf("its closing line (\"h3m: N resources: ... by multicast, ... repaired (... bytes), ... by fallback, ... failed\") is not among its %d lines of output", o.numLines)
	case o.closing.total() != files:
		return fmt.Errorf("its closing line counts %d resources, %d files were served", o.closing.total(), files)
	case o.stored != files-o.closing.Failed:
		return fmt.Errorf("it printed %d lines of resources stored, its closing line counts %d delivered", o.stored, files-o.closing.Failed)
	}
	return nil
}

// uftpClientOutput is what the comparison reads from one uftpd's output.
type uftpClientOutput struct {
	completed map[string]bool // the files of "[group/00:file]: File transfer complete" lines
	last      time.Duration   // when the last came, from the run's start
	numLines  int
}

// line takes one line of output, seen at since from the run's start. uftpd
// may say a file is complete twice (a late DONE): the file is counted once.
func (o *uftpClientOutput) line(line string, since time.Duration) {
	o.numLines++
	before, ok := strings.CutSuffix(line, ": File transfer complete")
	if !ok {
		return
	}
	if i := strings.LastIndexByte(before, '['); i >= 0 && strings.HasSuffix(before, "]") {
		if o.completed == nil {
			o.completed = map[string]bool{}
		}
		o.completed[before[i:]] = true
		o.last = max(o.last, since)
	}
}

// check reports what the output lacks for the figures of a run of files
// files.
func (o *uftpClientOutput) check(files int) error {
	if len(o.completed) != files {
		return fmt.Errorf("%d files said complete (\"[group/00:file]: File transfer complete\") among its %d lines of output, want %d", len(o.completed), o.numLines, files)
	}
	return nil
}

// PeersCase is one (receivers, loss) case: each tool's runs.
type PeersCase struct {
	Receivers, Loss int
	H3M, UFTP       []PeerRun
}

// PeersReport is the outcome of Peers.
type PeersReport struct {
	Options      PeersOptions
	ContentBytes int64
	Files        int
	UFTPVersion  string
	H3MServe     string // the command lines, with placeholders for paths
	H3MReceive   string
	UFTPSender   string
	UFTPClient   string
	Cases        []PeersCase
}

// Failed reports whether any run failed.
func (r *PeersReport) Failed() bool {
	for _, c := range r.Cases {
		for _, run := range append(slices.Clone(c.H3M), c.UFTP...) {
			if run.Err != nil {
				return true
			}
		}
	}
	return false
}

// prepare checks the options the peers and scale benches share and fills
// their defaults; name prefixes the errors.
func (o *PeersOptions) prepare(name string) error {
	if o.H3M == "" {
		return fmt.Errorf("%s: no h3m binary given", name)
	}
	if o.Files < 1 || o.Size < int64(o.Files) {
		return fmt.Errorf("%s: %d bytes cannot make %d files", name, o.Size, o.Files)
	}
	if o.Rate == 0 {
		return fmt.Errorf("%s: a sending rate is needed: a run over namespaces is paced", name)
	}
	if o.Timeout == 0 {
		// Ten times the time at the nominal rate, at least a minute.
		o.Timeout = max(time.Minute, 10*time.Duration(float64(o.Size)*8/float64(o.Rate)*float64(time.Second)))
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Peers runs the comparison: for each receiver count a fresh topology, for
// each loss rate Repeat runs of each tool, alternating which goes first.
// A run that fails is reported and the comparison goes on.
func Peers(ctx context.Context, o PeersOptions) (*PeersReport, error) {
	if err := PeersAvailable(); err != nil {
		return nil, err
	}
	if o.Rate == 0 {
		return nil, errors.New("peers: an unpaced rate cannot be compared (UFTP's -R needs a rate)")
	}
	if err := o.prepare("peers"); err != nil {
		return nil, err
	}
	o.Repeat = max(o.Repeat, 1)
	rep := &PeersReport{Options: o, ContentBytes: o.Size}
	dir, cleanup, err := o.workDir("h3m-peers-", rep.Failed)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	content := filepath.Join(dir, "content")
	files, err := writeContent(content, o.Size, o.Files)
	if err != nil {
		return nil, err
	}
	rep.Files = len(files)
	rep.H3MServe = strings.Join(h3mServeArgs(o, "N", "DIR", "CERT", "KEY", "URL"), " ")
	rep.H3MReceive = strings.Join(h3mReceiveArgs(o, "URL", "CERT", "OUT"), " ")
	rep.UFTPSender = strings.Join(uftpArgs(o, []string{"0x0a4d000b"}, []string{"FILES..."}), " ")
	rep.UFTPClient = strings.Join(uftpdArgs("0x0a4d000b", "OUT"), " ")
	rep.printHeader(o.Out)

	for _, n := range o.Receivers {
		if err := o.runTopology(ctx, rep, dir, files, n); err != nil {
			return rep, err
		}
	}
	rep.printSummary(o.Out)
	return rep, nil
}

// workDir returns o.Dir, or a temporary folder (named from prefix) and the
// function that removes it at the end: all of it, or, when failed says a
// run failed, the content only, so that the logs stay for a look.
func (o *PeersOptions) workDir(prefix string, failed func() bool) (string, func(), error) {
	if o.Dir != "" {
		return o.Dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	return tmp, func() {
		if failed() {
			os.RemoveAll(filepath.Join(tmp, "content"))
			fmt.Fprintf(o.Out, "the logs are kept in %s\n", tmp)
			return
		}
		os.RemoveAll(tmp)
	}, nil
}

// runTopology builds the network for n receivers and runs every loss rate
// on it.
func (o *PeersOptions) runTopology(ctx context.Context, rep *PeersReport, dir string, files []contentFile, n int) error {
	net, err := interop.NewNetwork(ctx, interop.ModeNetns, interop.Topology{Receivers: n})
	if err != nil {
		return fmt.Errorf("peers: building the network: %w", err)
	}
	defer net.Close()
	for _, loss := range o.Loss {
		c := PeersCase{Receivers: n, Loss: loss}
		for i := range o.Repeat {
			runs := []string{"h3m", "UFTP"}
			if i%2 == 1 {
				runs = []string{"UFTP", "h3m"}
			}
			for _, tool := range runs {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				runDir := filepath.Join(dir, fmt.Sprintf("n%d-loss%d-%d-%s", n, loss, i+1, strings.ToLower(tool)))
				o.Logger.Info("peers: run", "tool", tool, "receivers", n, "loss", loss, "repeat", i+1)
				var r PeerRun
				if tool == "h3m" {
					r = o.runH3M(ctx, net, runDir, files, loss)
				} else {
					r = o.runUFTP(ctx, net, runDir, files, loss, rep)
				}
				r.Tool, r.Receivers, r.Loss = tool, n, loss
				rep.printRun(o.Out, r)
				if tool == "h3m" {
					c.H3M = append(c.H3M, r)
				} else {
					c.UFTP = append(c.UFTP, r)
				}
			}
		}
		rep.Cases = append(rep.Cases, c)
		rep.printCase(o.Out, c)
	}
	return nil
}

// contentFile is one generated file.
type contentFile struct {
	Name string
	Size int64
}

// writeContent writes files of pseudo-random bytes (incompressible, the
// same on every run) into dir, of sizes that double from the smallest to
// 128 times it and again, so that small files (where per-file overhead
// shows) and large ones (where rate shows) are both there.
func writeContent(dir string, total int64, n int) ([]contentFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var weights int64
	for i := range n {
		weights += 1 << (i % 8)
	}
	unit := total / weights
	rng := rand.NewChaCha8([32]byte{'h', '3', 'm', 'p', 'e', 'e', 'r', 's'})
	files := make([]contentFile, n)
	var left = total
	buf := make([]byte, 1<<20)
	for i := range n {
		size := unit << (i % 8)
		if i == n-1 {
			size = left
		}
		left -= size
		files[i] = contentFile{Name: fmt.Sprintf("file-%03d.bin", i+1), Size: size}
		f, err := os.Create(filepath.Join(dir, files[i].Name))
		if err != nil {
			return nil, err
		}
		for rest := size; rest > 0; {
			b := buf[:min(int64(len(buf)), rest)]
			rng.Read(b)
			if _, err := f.Write(b); err != nil {
				f.Close()
				return nil, err
			}
			rest -= int64(len(b))
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// verify compares every file byte for byte with its copy under dir.
func verify(content string, files []contentFile, dir string) error {
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, f := range files {
		if err := sameFile(filepath.Join(content, f.Name), filepath.Join(dir, f.Name), a, b); err != nil {
			return err
		}
	}
	return nil
}

func sameFile(want, got string, a, b []byte) error {
	fw, err := os.Open(want)
	if err != nil {
		return err
	}
	defer fw.Close()
	fg, err := os.Open(got)
	if err != nil {
		return fmt.Errorf("missing: %w", err)
	}
	defer fg.Close()
	sw, err := fw.Stat()
	if err != nil {
		return err
	}
	sg, err := fg.Stat()
	if err != nil {
		return err
	}
	if sw.Size() != sg.Size() {
		return fmt.Errorf("%s has %d bytes, the original %d", got, sg.Size(), sw.Size())
	}
	for off := int64(0); off < sw.Size(); {
		n, err := io.ReadFull(fw, a[:min(int64(len(a)), sw.Size()-off)])
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(fg, b[:n]); err != nil {
			return fmt.Errorf("%s: %w", got, err)
		}
		if !bytes.Equal(a[:n], b[:n]) {
			return fmt.Errorf("%s differs from the original in the %d bytes at offset %d", got, n, off)
		}
		off += int64(n)
	}
	return nil
}

// h3mServeArgs is the sender's command line for receivers receivers.
func h3mServeArgs(o PeersOptions, receivers, dir, cert, key, listen string) []string {
	argv := []string{"h3m", "serve", "--once", "--dir", dir,
		"--interface", "eth0", "--source", "10.77.0.1", "--ttl", "1",
		"--group", "232.77.0.1", "--port", "7700", "--listen", listen,
		"--rate", strconv.FormatUint(o.Rate, 10), "--suite", "1301",
		"--wait", o.Wait.String()}
	if o.AwaitReceivers {
		argv = append(argv, "--wait-receivers", receivers)
	}
	if o.PacketSize > 0 {
		argv = append(argv, "--packet-size", strconv.Itoa(o.PacketSize))
	}
	argv = append(argv, "--linger", (o.Timeout + time.Minute).String(), "--cert", cert, "--key", key)
	return append(argv, o.ServeArgs...)
}

// h3mReceiveArgs is a receiver's command line.
func h3mReceiveArgs(o PeersOptions, url, cert, out string) []string {
	return append([]string{"h3m", "receive", "--url", url, "--ca", cert, "--interface", "eth0",
		"--out", out, "--timeout", o.Timeout.String()}, o.ReceiveArgs...)
}

// uftpArgs is UFTP's sender command line: AES-128-GCM (which authenticates
// each packet, as h3m's AEAD does) keyed by an ECDH exchange signed with
// ECDSA P-256 (the server's key is generated for the run), SHA-256 for key
// derivation, a fixed rate in Kbit/s, TTL 1 out of eth0, and closed group
// membership (-H) so that the sender starts as soon as every receiver has
// registered instead of waiting out the announcement period, and an
// initial group round-trip time of 50 ms (-r 0.05) to suit a LAN: with
// the default 500 ms a lost KEYINFO is sent again only after 1.5 s, when
// the clients that got theirs have already timed out and aborted (1 or 3
// of 4 clients in 2 of 6 runs at 2 and 10 % loss; none in 24 runs with
// 50 ms).
func uftpArgs(o PeersOptions, clients, files []string) []string {
	return append([]string{"uftp", "-I", "eth0", "-t", "1",
		"-M", uftpPublic, "-P", uftpPrivate, "-p", strconv.Itoa(uftpPort),
		"-R", strconv.FormatUint(o.Rate/1000, 10), "-r", "0.05",
		"-Y", "aes128-gcm", "-h", "sha256", "-e", "ecdh_ecdsa",
		"-H", strings.Join(clients, ",")}, append(slices.Clone(o.UFTPArgs), files...)...)
}

// uftpdArgs is a UFTP client's command line: in the foreground (-d), no
// name lookups (-q), joined on eth0, each file received into a temporary
// name and renamed when complete (-t, as h3m receive does), with a P-256
// key generated for the run (ECDH key exchange needs an EC key).
func uftpdArgs(uid, out string) []string {
	return []string{"uftpd", "-d", "-q", "-I", "eth0", "-M", uftpPublic, "-p", strconv.Itoa(uftpPort),
		"-U", uid, "-D", out, "-t", "-K", "ec:prime256v1"}
}

// runH3M runs h3m serve --once in the sender's namespace and h3m receive
// in every receiver's, once the server is up.
func (o *PeersOptions) runH3M(ctx context.Context, net *interop.Network, dir string, files []contentFile, loss int) (r PeerRun) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	content := filepath.Join(filepath.Dir(dir), "content")
	cert, key := filepath.Join(filepath.Dir(dir), "h3m-cert.pem"), filepath.Join(filepath.Dir(dir), "h3m-key.pem")
	outs, err := prepareRun(ctx, net, dir, loss)
	if err != nil {
		r.Err = err
		return r
	}
	before, err := wireCounters(ctx, net)
	if err != nil {
		r.Err = err
		return r
	}
	url := "https://" + net.Server.String() + "/"
	ready := make(chan struct{})
	var once sync.Once
	start := time.Now()
	serve, err := startPeerProc(ctx, net.Sender, "serve", exe(o.H3M, h3mServeArgs(*o, strconv.Itoa(len(net.Receivers)), content, cert, key, net.Server.String())), dir,
		func(line string) {
			if strings.HasPrefix(line, "h3m: receivers:") {
				once.Do(func() { close(ready) })
			}
		})
	if err != nil {
		r.Err = err
		return r
	}
	defer serve.kill()
	select {
	case <-ready:
	case <-serve.done:
		r.Err = fmt.Errorf("h3m serve exited before its server was up (exit %d; see %s)", serve.exitCode(), serve.logPath)
		return r
	case <-ctx.Done():
		r.Err = fmt.Errorf("h3m serve not up: %w", ctx.Err())
		return r
	}
	recvs := make([]*peerProc, len(net.Receivers))
	var mu sync.Mutex
	outputs := make([]h3mReceiveOutput, len(net.Receivers))
	for i, h := range net.Receivers {
		p, err := startPeerProc(ctx, h, "receive-"+h.Name, exe(o.H3M, h3mReceiveArgs(*o, url, cert, outs[i])), dir, func(line string) {
			mu.Lock()
			defer mu.Unlock()
			outputs[i].line(line, time.Since(start))
		})
		if err != nil {
			r.Err = err
			return r
		}
		defer p.kill()
		recvs[i] = p
	}
	var errs []error
	for i, p := range recvs {
		<-p.done
		if code := p.exitCode(); code != 0 {
			errs = append(errs, fmt.Errorf("%s: h3m receive exited %d (see %s)", net.Receivers[i].Name, code, p.logPath))
		}
		r.Done = max(r.Done, p.exited.Sub(start))
		r.ReceiverCPU += p.cpu
		errs = append(errs, p.cpuErr)
	}
	mu.Lock()
	for i, out := range outputs {
		if err := out.check(len(files)); err != nil {
			errs = append(errs, fmt.Errorf("%s: h3m receive: %w (see %s)", net.Receivers[i].Name, err, recvs[i].logPath))
		}
		r.H3M.add(out.closing)
		r.LastFile = max(r.LastFile, out.last)
	}
	mu.Unlock()
	// The server lingers for repairs: what it spent until now is the cost.
	serve.kill()
	r.SenderCPU = serve.cpu
	errs = append(errs, serve.cpuErr)
	o.finishRun(ctx, net, &r, loss, before, content, files, outs, errs)
	return r
}

// runUFTP starts uftpd in every receiver's namespace, then uftp in the
// sender's, and waits for uftp to finish.
func (o *PeersOptions) runUFTP(ctx context.Context, net *interop.Network, dir string, files []contentFile, loss int, rep *PeersReport) (r PeerRun) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	content := filepath.Join(filepath.Dir(dir), "content")
	outs, err := prepareRun(ctx, net, dir, loss)
	if err != nil {
		r.Err = err
		return r
	}
	clients := make([]string, len(net.Receivers))
	daemons := make([]*peerProc, len(net.Receivers))
	var mu sync.Mutex
	outputs := make([]uftpClientOutput, len(net.Receivers))
	var start time.Time // set before the sender starts, and so before any file completes
	for i, h := range net.Receivers {
		clients[i] = uftpID(h.Addr)
		p, err := startPeerProc(ctx, h, "uftpd-"+h.Name, uftpdArgs(clients[i], outs[i]), dir, func(line string) {
			mu.Lock()
			defer mu.Unlock()
			outputs[i].line(line, time.Since(start))
		})
		if err != nil {
			r.Err = err
			return r
		}
		defer p.kill()
		daemons[i] = p
	}
	// The clients must listen before the first announcement.
	for i, h := range net.Receivers {
		for {
			ok, err := h.Listening(ctx, uftpPort)
			if ok {
				break
			}
			if err != nil || ctx.Err() != nil {
				r.Err = fmt.Errorf("%s: uftpd not listening: %v %v (see %s)", h.Name, err, ctx.Err(), daemons[i].logPath)
				return r
			}
			select {
			case <-daemons[i].done:
				r.Err = fmt.Errorf("%s: uftpd exited %d (see %s)", h.Name, daemons[i].exitCode(), daemons[i].logPath)
				return r
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = filepath.Join(content, f.Name)
	}
	before, err := wireCounters(ctx, net)
	if err != nil {
		r.Err = err
		return r
	}
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	groupComplete := false
	sender, err := startPeerProc(ctx, net.Sender, "uftp", uftpArgs(*o, clients, names), dir, func(line string) {
		if v, ok := strings.CutPrefix(line, "UFTP version "); ok && rep.UFTPVersion == "" {
			rep.UFTPVersion, _, _ = strings.Cut(v, " ")
		}
		if strings.HasSuffix(line, "Group complete") {
			groupComplete = true
		}
	})
	if err != nil {
		r.Err = err
		return r
	}
	defer sender.kill()
	<-sender.done
	r.Done = sender.exited.Sub(start)
	r.SenderCPU = sender.cpu
	errs := []error{sender.cpuErr}
	if code := sender.exitCode(); code != 0 {
		errs = append(errs, fmt.Errorf("uftp exited %d (see %s)", code, sender.logPath))
	}
	// The sender's output is complete once done closed.
	if !groupComplete {
		errs = append(errs, fmt.Errorf("uftp: no \"Group complete\" line in its output (see %s)", sender.logPath))
	}
	if rep.UFTPVersion == "" {
		errs = append(errs, fmt.Errorf("uftp: no \"UFTP version\" line in its output (see %s)", sender.logPath))
	}
	for i, p := range daemons {
		p.kill()
		r.ReceiverCPU += p.cpu
		errs = append(errs, p.cpuErr)
		mu.Lock()
		if err := outputs[i].check(len(files)); err != nil {
			errs = append(errs, fmt.Errorf("%s: uftpd: %w (see %s)", net.Receivers[i].Name, err, p.logPath))
		}
		r.LastFile = max(r.LastFile, outputs[i].last)
		mu.Unlock()
	}
	o.finishRun(ctx, net, &r, loss, before, content, files, outs, errs)
	return r
}

// prepareRun empties each receiver's folder, sets its loss rate (which
// also zeroes the drop counter) and zeroes the multicast counter.
func prepareRun(ctx context.Context, net *interop.Network, dir string, loss int) ([]string, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := countMulticast(ctx, net); err != nil {
		return nil, err
	}
	outs := make([]string, len(net.Receivers))
	for i, h := range net.Receivers {
		outs[i] = filepath.Join(dir, h.Name)
		if err := os.MkdirAll(outs[i], 0o755); err != nil {
			return nil, err
		}
		if err := setLoss(ctx, h, loss); err != nil {
			return nil, err
		}
	}
	return outs, nil
}

// finishRun reads the counters (the loss rules' at loss percent) and checks
// every receiver's files.
func (o *PeersOptions) finishRun(ctx context.Context, net *interop.Network, r *PeerRun, loss int, before []ifaceCounters, content string, files []contentFile, outs []string, errs []error) {
	if ctx.Err() != nil {
		errs = append(errs, fmt.Errorf("run stopped after %v: %w", o.Timeout, ctx.Err()))
	}
	// The counters are read even when the run's time is up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	after, err := wireCounters(ctx, net)
	errs = append(errs, err)
	for i := range after {
		if i >= len(before) || after[i].bytes < before[i].bytes || after[i].packets < before[i].packets {
			errs = append(errs, fmt.Errorf("the transmit counters of host %d went back or vanished (%+v, then %+v)", i, before, after))
			break
		}
		r.WireBytes += after[i].bytes - before[i].bytes
		r.WirePackets += after[i].packets - before[i].packets
		if i == 0 {
			r.SenderBytes = after[i].bytes - before[i].bytes
		}
	}
	mc, err := multicastBytes(ctx, net)
	r.SenderMulticastBytes = mc
	errs = append(errs, err)
	for i, h := range net.Receivers {
		n, err := dropped(ctx, h, loss)
		r.Dropped += n
		errs = append(errs, err)
		if err := verify(content, files, outs[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s: not intact: %w", h.Name, err))
		}
		// Checked: only the logs are worth keeping.
		os.RemoveAll(outs[i])
	}
	r.Err = errors.Join(errs...)
}

// uftpID is a UFTP client ID from the host's IPv4 address, the ID uftpd
// would pick itself.
func uftpID(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("0x%08x", binary.BigEndian.Uint32(b[:]))
}

// exe puts the h3m binary in place of argv[0].
func exe(bin string, argv []string) []string {
	return append([]string{bin}, argv[1:]...)
}

// lossTable is the nftables table that drops multicast UDP at random in a
// receiver's namespace, before anything else sees it: every multicast
// packet of both tools (h3m's data, keep-alives and session end; UFTP's
// announcements, data and control), never unicast.
const lossTable = "h3m_peers_loss"

// setLoss replaces the receiver's loss rule (none for 0 %).
func setLoss(ctx context.Context, h interop.Host, percent int) error {
	script := fmt.Sprintf("table inet %s {}\ndelete table inet %s\n", lossTable, lossTable)
	if percent > 0 {
		script += fmt.Sprintf(`table inet %s {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		ip daddr 224.0.0.0/4 meta l4proto udp numgen random mod 100 < %d counter drop
	}
}
`, lossTable, percent)
	}
	cmd := h.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: nft: %v: %s", h.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// dropped reads the loss rule's packet counter (0 without a rule, at 0 %
// loss).
func dropped(ctx context.Context, h interop.Host, loss int) (uint64, error) {
	if loss == 0 {
		return 0, nil
	}
	out, err := h.Run(ctx, "nft", "list", "table", "inet", lossTable)
	if err != nil {
		return 0, fmt.Errorf("%s: reading the loss rule's counter: %w", h.Name, err)
	}
	return parseDropped(string(out))
}

// parseDropped reads the packet count of the loss rule's counter from the
// listing of its table.
func parseDropped(listing string) (uint64, error) {
	_, rest, ok := strings.Cut(listing, "counter packets ")
	if !ok {
		return 0, fmt.Errorf("no \"counter packets\" in the loss table's listing: %q", listing)
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return 0, fmt.Errorf("no count after \"counter packets\" in the loss table's listing: %q", listing)
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("the loss rule's counter: %w", err)
	}
	return n, nil
}

// wireTable is the nftables table of the bridge's namespace that counts
// the multicast frames the sender puts on the bridge.
const wireTable = "h3m_peers_wire"

// countMulticast replaces the bridge's multicast counter with a zeroed one:
// every IPv4 multicast frame that enters the bridge from the sender's port,
// counted once before the bridge floods it (and before the receivers' loss
// rules drop their copies).
func countMulticast(ctx context.Context, net *interop.Network) error {
	sw := net.Switch()
	script := fmt.Sprintf(`table bridge %s {}
delete table bridge %s
table bridge %s {
	counter multicast {}
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		iifname %q ip daddr 224.0.0.0/4 counter name "multicast"
	}
}
`, wireTable, wireTable, wireTable, net.Sender.Port)
	cmd := sw.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: nft: %v: %s", sw.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// multicastBytes reads the multicast counter, as Ethernet frames (the
// bridge counts from the IP header on).
func multicastBytes(ctx context.Context, net *interop.Network) (uint64, error) {
	sw := net.Switch()
	out, err := sw.Run(ctx, "nft", "-j", "list", "counter", "bridge", wireTable, "multicast")
	if err != nil {
		return 0, fmt.Errorf("reading the multicast counter: %w", err)
	}
	return parseMulticastCounter(out)
}

// parseMulticastCounter reads the frames' bytes from nft's JSON listing of
// the multicast counter: its bytes and 14 bytes of Ethernet header per
// packet.
func parseMulticastCounter(listing []byte) (uint64, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name           string
				Packets, Bytes uint64
			}
		}
	}
	if err := json.Unmarshal(listing, &doc); err != nil {
		return 0, fmt.Errorf("the multicast counter's listing: %w", err)
	}
	for _, o := range doc.Nftables {
		if c := o.Counter; c != nil && c.Name == "multicast" {
			return c.Bytes + 14*c.Packets, nil
		}
	}
	return 0, fmt.Errorf("no multicast counter in %q", listing)
}

// ifaceCounters are an interface's transmit counters.
type ifaceCounters struct{ bytes, packets uint64 }

// wireCounters reads eth0's transmit counters of the sender and then of
// every receiver.
func wireCounters(ctx context.Context, net *interop.Network) ([]ifaceCounters, error) {
	hosts := append([]interop.Host{net.Sender}, net.Receivers...)
	c := make([]ifaceCounters, len(hosts))
	for i, h := range hosts {
		for j, field := range []string{"tx_bytes", "tx_packets"} {
			path := "/sys/class/net/" + h.Iface + "/statistics/" + field
			out, err := h.Run(ctx, "cat", path)
			if err != nil {
				return nil, fmt.Errorf("%s: reading %s: %w", h.Name, path, err)
			}
			v, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", h.Name, path, err)
			}
			if j == 0 {
				c[i].bytes = v
			} else {
				c[i].packets = v
			}
		}
	}
	return c, nil
}

// peerProc is one process of a run: started through `ip netns exec`,
// which replaces itself with the program, so the rusage of the process it
// started is the program's.
type peerProc struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	// Set before done closes.
	exited time.Time
	cpu    time.Duration
	cpuErr error // why cpu is unknown
}

// startPeerProc starts argv on host with its stdout and stderr in
// dir/name.log; onLine, if set, sees every line as it comes.
func startPeerProc(ctx context.Context, h interop.Host, name string, argv []string, dir string, onLine func(string)) (*peerProc, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := h.Command(ctx, argv...)
	// Its own process group: an interrupt at the terminal reaches the
	// bench, which stops its processes itself.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		lf.Close()
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("%s: start %s: %w", h.Name, strings.Join(argv, " "), err)
	}
	pw.Close()
	p := &peerProc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	lines := make(chan struct{})
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(lf, "%s %s\n", time.Now().Format("15:04:05.000000"), sc.Bytes())
			if onLine != nil {
				onLine(sc.Text())
			}
		}
		io.Copy(io.Discard, pr) // a line too long for the scanner: keep the pipe flowing
	}()
	go func() {
		cmd.Wait()
		exited := time.Now()
		<-lines // the process's output is complete once its pipe closes
		pr.Close()
		lf.Close()
		p.exited = exited
		if st := cmd.ProcessState; st != nil {
			p.cpu = st.UserTime() + st.SystemTime()
		}
		if p.cpu <= 0 {
			p.cpuErr = fmt.Errorf("%s: no CPU time of %s from wait4 (see %s)", h.Name, argv[0], logPath)
		}
		close(p.done)
	}()
	return p, nil
}

// exitCode is the process's exit status (-1 when killed by a signal).
func (p *peerProc) exitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// kill stops the process (if it still runs) and waits for it.
func (p *peerProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}
