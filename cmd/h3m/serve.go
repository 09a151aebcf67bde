package main

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/internal/dirwatch"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/unicast/metrics"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go/qlogwriter"
)

func serveCommand() *command {
	return &command{
		name:  "serve",
		usage: "--dir DIR [flags]",
		short: "push a folder over multicast and serve it over unicast HTTP/3",
		long: `serve runs a multicast session that pushes the files of DIR, and the unicast
HTTP/3 server that announces the session (Alt-Svc and /.well-known/h3m),
delivers its keys over TLS, repairs what receivers lost and serves everything
to receivers that cannot get multicast.

By default it pushes the folder once and then keeps the session and the server
up until interrupted. With --watch it also pushes files as they appear or
change (a live DASH folder written by ffmpeg or a packager), skipping files
still being written and pushing manifests after the segments they list. With
--once it pushes the folder, ends the session and exits after --linger.

--wait delays the first push, for receivers to join; with --wait-receivers N
the push starts as soon as N receivers have read the session description
(and a moment for them to join), --wait bounding the wait: for a known set
of receivers. A receiver that joins after the first push repairs what it
missed. --packet-size sets the UDP payload of full packets: 1200 bytes fit
any path; a LAN carries up to its MTU (1472 on Ethernet with IPv4), and
fewer, larger packets cost sender and receivers less.

Ctrl-C ends the session cleanly: the last push carries "connection: close" and
the session is marked ended in the session description.

Without --cert and --key, a self-signed certificate for the --listen host is
generated (or reused) at h3m-cert.pem / h3m-key.pem: point receivers at it
with --ca h3m-cert.pem. Keys and certificates must lie outside --dir (serve
refuses to start otherwise), and hidden names (.git, .env...) and writers'
temporary files (*.tmp, *.part, *~) are neither pushed nor served.

With --asymmetric, the session is asymmetric (spec/transport.md): every
packet is hashed, and signed manifests of the digests go in-band in MANIFEST
frames and are served over unicast at /.well-known/h3m/manifests/<session>,
so that receivers accept only packets the sender signed (the session key
alone lets any receiver forge packets). The advertisement pins the manifest
key: a fresh Ed25519 key per session, or --manifest-key (Ed25519 or P-256,
PEM), which implies --asymmetric.

With --sign-key, every push is signed (RFC 9421 HTTP Message Signatures by
default, --sign-format cavage for the draft's cavage-12 Signature field,
what nghq sends), and the public key is served over TLS at
/.well-known/h3m/keys/<key ID> and listed in /.well-known/h3m, where
receivers get it to verify the pushes (h3m receive --require-signature).

With --fec OVERHEAD (e.g. 5%), the session carries forward error correction
(spec/transport.md): repair packets over blocks of up to 200 packets, which
let receivers rebuild lost packets without asking the server; receivers
repair over unicast only what FEC could not rebuild. Receivers that do not
know the extension ignore it. With --fec auto, the session advertises up to
25 % but its sender starts with no repair packets (a lossless session pays
nothing): the server counts what each receiver asks to repair over a 2 s
window against what it pushed, and turns repair packets on once they cost
less on multicast than the unicast repair they save (several receivers
losing: at 4 receivers and 10 % loss about 17 %, at 1 receiver never),
sized for a typical receiver's loss with margin for a block's variance, and
down or off again once the loss goes (spec/transport.md, "The sender's
policy"). Each change is logged with the estimate behind it. Not with
--channels.

With --channels, each subfolder of --dir present at start is a channel with a
session of its own: one per rendition of a DASH ladder (ffmpeg's dash muxer
writes them with -init_seg_name and -media_seg_name 'r$RepresentationID$/...').
The files under a subfolder are pushed on its session only; the files
directly in --dir (the MPD) and in folders made later on the main session
(--group). Channel N (in name order, from 1) is sent to --group plus N (the
Nth next address) and --port plus N, so a snooping switch forwards each
rendition only to the hosts that joined it; every session gets its own
keys. The session description names each session's channel (its path
prefix, "/r0/"), and h3m gateway joins a channel's session only while a
player requests paths under it (--channel-idle).

With --repair-url URL (repeatable, nearest first), receivers repair and fall
back through those HTTP caches (a CDN's tier) before this server: the URLs
are listed in /.well-known/h3m, a resource's URL is the base followed by its
path, and receivers check every byte a cache serves against the session's
digests. Most caches fetch over HTTP/1.1 or HTTP/2 on TCP, not HTTP/3:
--tcp-listen ADDR serves the content over TLS on TCP for them (no Alt-Svc,
so no session keys, and no /.well-known/h3m there).

With --mcast-repair N, a byte range that N receivers ask to repair within
--mcast-repair-window is pushed once more on the session, as partial
content (206 with Content-Range), instead of being served N times over
unicast (spec/unicast.md, "Multicast repair"): the sign of a loss upstream
of many receivers. Receivers wait a random time before they ask, and those
the multicast repair reaches first do not ask at all. With --once, the
session then ends only once no repair was asked for that window.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var sf sessionFlags
			sf.register(fs)
			dir := fs.String("dir", "", "folder to serve and push (required)")
			listen := fs.String("listen", "127.0.0.1:4433", "UDP address of the unicast HTTP/3 server")
			certFile := fs.String("cert", "h3m-cert.pem", "TLS certificate (PEM); created self-signed when missing")
			keyFile := fs.String("key", "h3m-key.pem", "TLS private key (PEM); created when missing")
			watch := fs.Bool("watch", false, "push files as they appear or change")
			once := fs.Bool("once", false, "push the folder, end the session and exit")
			linger := fs.Duration("linger", 10*time.Second, "how long the unicast server stays up after the session ends (--once, or an interrupt), for repairs")
			settle := fs.Duration("settle", 300*time.Millisecond, "with --watch: how long a file must stay unchanged before it is pushed")
			rollover := fs.Duration("rollover", 0, "start a successor session with new keys this often (0: never)")
			wait := fs.Duration("wait", 0, "wait this long after announcing the session before the first push (time for receivers to join)")
			waitReceivers := fs.Int("wait-receivers", 0, "with --wait: push as soon as this many receivers have read the session description (and a moment to join), instead of waiting --wait out")
			packetSize := fs.Int("packet-size", mquic.DefaultMaxPacketSize, "UDP payload bytes of full multicast packets: 1200 fits any path; up to what the network's MTU carries (1472 on Ethernet with IPv4, 1452 with IPv6) means fewer packets")
			asymmetric := fs.Bool("asymmetric", false, "asymmetric session: sign manifests of packet digests (a new Ed25519 key per session unless --manifest-key)")
			manifestKey := fs.String("manifest-key", "", "PEM private key (Ed25519 or P-256) that signs the manifests; implies --asymmetric")
			signKey := fs.String("sign-key", "", "PEM private key (Ed25519, P-256 or RSA) that signs every push; its public key is served at /.well-known/h3m/keys/")
			signKeyID := fs.String("sign-key-id", "", "key ID of --sign-key in signatures and at /.well-known/h3m/keys/ (default: h3m- and a hash of the public key)")
			signFormat := fs.String("sign-format", "rfc9421", "push signature format: rfc9421 (HTTP Message Signatures) or cavage (draft-cavage-http-signatures-12, as nghq)")
			var repair repairURLs
			fs.Var(&repair, "repair-url", "base https URL of an HTTP cache that receivers repair and fall back through before this server (repeatable, nearest first), listed in /.well-known/h3m")
			tcpListen := fs.String("tcp-listen", "", "also serve the content over TLS on this TCP address (HTTP/2, HTTP/1.1), for caches to fetch from; no session keys, description or keys there")
			channels := fs.Bool("channels", false, "one session per subfolder of --dir (a channel: one rendition of a DASH ladder), each on the next group address and port after --group and --port; files outside them on the main session")
			fecFlag := fs.String("fec", "", "forward error correction: repair packets as a share of the packets (5% or 0.05), or auto: from the loss the receivers' repair requests show (empty: none)")
			mrepair := fs.Int("mcast-repair", 0, "push a byte range once more on the session when this many receivers ask to repair it (0: never)")
			mrepairWindow := fs.Duration("mcast-repair-window", origin.DefaultRepairWindow, "with --mcast-repair: how long the requests for a range are counted together, and the least time between two multicast repairs of it")
			var qlogDir, metricsListen string
			qlogFlag(fs, &qlogDir, "sender")
			registerMetricsFlag(fs, &metricsListen)
			return func(ctx context.Context, e *env) error {
				if *dir == "" {
					return usagef("--dir is required")
				}
				if *watch && *once {
					return usagef("--watch and --once exclude each other")
				}
				if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
					return usagef("--dir %q: not a folder", *dir)
				}
				ad, err := sf.advertisement()
				if err != nil {
					return err
				}
				autoFEC := *fecFlag == "auto"
				if autoFEC {
					if *channels {
						return usagef("--fec auto: not with --channels (each channel's session would send the maximum)")
					}
					if err := origin.AddFEC(&ad, origin.DefaultAutoFECMaxOverhead); err != nil {
						return usagef("--fec auto: %v", err)
					}
				} else if *fecFlag != "" {
					overhead, err := parseShare(*fecFlag)
					if err == nil {
						err = origin.AddFEC(&ad, overhead)
					}
					if err != nil {
						return usagef("--fec %q: %v", *fecFlag, err)
					}
				}
				if *waitReceivers < 0 || (*waitReceivers > 0 && *wait <= 0) {
					return usagef("--wait-receivers %d: want a count ≥ 0, and --wait to bound the wait", *waitReceivers)
				}
				if *packetSize < mquic.DefaultMaxPacketSize || *packetSize > maxPacketSize {
					return usagef("--packet-size %d: want %d to %d bytes", *packetSize, mquic.DefaultMaxPacketSize, maxPacketSize)
				}
				if *mrepair < 0 || *mrepairWindow <= 0 {
					return usagef("--mcast-repair %d, --mcast-repair-window %v: want a count ≥ 0 and a positive window", *mrepair, *mrepairWindow)
				}
				o := serveOptions{
					ad: ad, iface: sf.iface, ttl: sf.ttl, dir: *dir, listen: *listen, certFile: *certFile, keyFile: *keyFile,
					watch: *watch, once: *once, linger: *linger, settle: *settle, rollover: *rollover, wait: *wait,
					waitReceivers: *waitReceivers, packetSize: *packetSize,
					digests: splitList(sf.digests), asymmetric: *asymmetric || *manifestKey != "",
					mrepair:       origin.MulticastRepairConfig{Threshold: *mrepair, Window: *mrepairWindow},
					metricsListen: metricsListen,
					repairURLs:    repair, tcpListen: *tcpListen, channels: *channels,
					autoFEC: origin.AutoFECConfig{Enabled: autoFEC},
				}
				if o.tracer, err = qlogSetup(qlogDir, "sender", e.log); err != nil {
					return err
				}
				if *manifestKey != "" {
					if o.manifestKey, err = loadManifestKey(*manifestKey); err != nil {
						return err
					}
					o.privateFiles = append(o.privateFiles, *manifestKey)
				}
				if *signKey != "" {
					o.privateFiles = append(o.privateFiles, *signKey)
					if o.signer, err = loadSigner(*signKey, *signKeyID, *signFormat); err != nil {
						return err
					}
				} else if *signKeyID != "" {
					return usagef("--sign-key-id needs --sign-key")
				}
				return runServe(ctx, e, o)
			}
		},
	}
}

// loadManifestKey reads a manifest signing key (Ed25519 or P-256) from a
// PEM file.
func loadManifestKey(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--manifest-key: %v", err)
	}
	k, err := integrity.ParsePrivateKeyPEM(b)
	if err == nil {
		_, err = manifest.NewSigningKey(k, nil)
	}
	if err != nil {
		return nil, usagef("--manifest-key %s: %v", file, err)
	}
	return k, nil
}

// loadSigner builds the push signer of --sign-key in the given format.
func loadSigner(file, keyID, format string) (h3m.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--sign-key: %v", err)
	}
	k, err := integrity.ParsePrivateKeyPEM(b)
	if err != nil {
		return nil, usagef("--sign-key %s: %v", file, err)
	}
	if keyID == "" {
		if keyID, err = origin.DefaultKeyID(k.Public()); err != nil {
			return nil, usagef("--sign-key %s: %v", file, err)
		}
	}
	var s h3m.Signer
	switch format {
	case "rfc9421":
		s = h3m.MessageSigner{MessageSigner: &integrity.MessageSigner{
			Label: "h3m", KeyID: keyID, Key: k, Components: integrity.DefaultResponseComponents}}
	case "cavage":
		s = h3m.CavageSigner{CavageSigner: &integrity.CavageSigner{KeyID: keyID, Key: k}}
	default:
		return nil, usagef("--sign-format %q: want rfc9421 or cavage", format)
	}
	// Sign once now, so that a key the format cannot use fails here.
	m := &integrity.Message{Method: "GET", Scheme: "https", Authority: "h3m.invalid", Path: "/", Status: 200}
	if _, err := s.Sign(m); err != nil {
		return nil, usagef("--sign-key %s with --sign-format %s: %v", file, format, err)
	}
	return s, nil
}

// parseShare reads a share as "5%" or "0.05".
func parseShare(s string) (float64, error) {
	v, pct := strings.CutSuffix(strings.TrimSpace(s), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return 0, fmt.Errorf("want a percentage (5%%) or a fraction (0.05)")
	}
	if pct {
		f /= 100
	}
	return f, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// maxPacketSize is the largest --packet-size: what receivers read in one
// datagram without GRO.
const maxPacketSize = 4096

// joinAllowance is how long after the last awaited receiver read the
// session description the first push waits: the receiver joins the group
// as soon as it has read it, a moment the server cannot see. A receiver
// that joins later repairs what it missed.
const joinAllowance = 20 * time.Millisecond

// waitForReceivers waits up to limit, or until n receivers have read the
// session description since described were served (and joinAllowance
// more); with n = 0 it waits out limit.
func waitForReceivers(ctx context.Context, e *env, srv *origin.Server, described uint64, n int, limit time.Duration) {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	var poll <-chan time.Time
	if n > 0 {
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-poll:
			if srv.Stats().Descriptions-described < uint64(n) {
				continue
			}
			e.log.Info("receivers have the session description; pushing", "receivers", n)
			select {
			case <-time.After(joinAllowance):
			case <-ctx.Done():
			}
			return
		case <-deadline.C:
			if n > 0 {
				e.log.Warn("--wait passed before every awaited receiver read the session description; pushing", "receivers", n,
					"read", srv.Stats().Descriptions-described)
			}
			return
		case <-ctx.Done():
			return
		}
	}
}

type serveOptions struct {
	ad                altsvc.Advertisement
	iface             string
	ttl               int
	dir               string
	listen            string
	certFile, keyFile string
	watch, once       bool
	linger, settle    time.Duration
	rollover          time.Duration
	wait              time.Duration
	// waitReceivers ends the wait once this many receivers have read the
	// session description (0: wait out wait).
	waitReceivers int
	// packetSize is the UDP payload of full multicast packets.
	packetSize int
	digests    []string
	// repairURLs are listed in the description; tcpListen also serves the
	// content over TLS on TCP, for caches.
	repairURLs []string
	tcpListen  string
	// channels runs one more session per subfolder of dir (channels.go).
	channels bool
	// asymmetric makes the sessions asymmetric, signed with manifestKey
	// (nil: a new key per session).
	asymmetric  bool
	manifestKey crypto.Signer
	// signer, if set, signs every push.
	signer h3m.Signer
	// privateFiles are the key files given (--sign-key, --manifest-key):
	// like --cert and --key, never inside dir.
	privateFiles []string
	// tracer, if set, traces each session's packets (--qlog-dir).
	tracer func(sessionID []byte) qlogwriter.Trace
	// metricsListen, if set, is where Prometheus metrics are served.
	metricsListen string
	// ready, if set, is called once the server is up, with its URL.
	ready func(url string)
	// mrepair configures multicast repair (--mcast-repair).
	mrepair origin.MulticastRepairConfig
	// autoFEC steers the repair overhead (--fec auto).
	autoFEC origin.AutoFECConfig
}

func runServe(ctx context.Context, e *env, o serveOptions) error {
	host, _, err := net.SplitHostPort(o.listen)
	if err != nil {
		return usagef("--listen %q: %v", o.listen, err)
	}
	// Before the certificate is generated: never into the served folder.
	private := append([]string{o.certFile, o.keyFile}, o.privateFiles...)
	if err := origin.CheckOutside(o.dir, private...); err != nil {
		return usagef("%v (give --cert and --key paths outside --dir)", err)
	}
	var plans []channelPlan
	if o.channels {
		if plans, err = planChannels(o, e); err != nil {
			return err
		}
	}
	// Bind the unicast server first: a session whose server cannot listen
	// must not start pushing.
	conn, err := net.ListenPacket("udp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: cannot listen for the unicast server: %w", o.listen, err)
	}
	defer conn.Close()
	var tcpLn net.Listener
	if o.tcpListen != "" {
		if tcpLn, err = net.Listen("tcp", o.tcpListen); err != nil {
			return fmt.Errorf("--tcp-listen %s: %w", o.tcpListen, err)
		}
		defer tcpLn.Close()
	}
	cert, err := origin.LoadOrCreateCertificate(o.certFile, o.keyFile, []string{host, "localhost", "127.0.0.1", "::1"})
	if err != nil {
		return err
	}
	org, err := origin.New(origin.Config{
		Dir: o.dir, Addr: o.listen, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Digests: o.digests,
		Publisher: origin.PublisherConfig{
			Interface: o.iface, TTL: o.ttl, Signer: o.signer,
			Asymmetric: o.asymmetric, ManifestKey: o.manifestKey, Rollover: o.rollover,
			Sender: mquic.SenderConfig{Logger: e.log, MaxPacketSize: o.packetSize}, Tracer: o.tracer,
		},
		PrivateFiles:    private,
		RepairURLs:      o.repairURLs,
		MulticastRepair: o.mrepair,
		AutoFEC:         o.autoFEC,
		Logger:          e.log,
	})
	if err != nil {
		return err
	}
	defer org.Close(context.WithoutCancel(ctx))
	stopMetrics, err := startMetrics(ctx, e, o.metricsListen, metrics.NewOrigin(org))
	if err != nil {
		return err
	}
	defer stopMetrics()
	srvErr := make(chan error, 1)
	go func() {
		err := org.Server.Serve(conn)
		if errors.Is(err, origin.ErrServerClosed) {
			err = nil
		}
		srvErr <- err
	}()
	if tcpLn != nil {
		go func() {
			// It ends with the server; a failure leaves HTTP/3 up.
			if err := org.Server.ServeTCP(tcpLn); err != nil && !errors.Is(err, origin.ErrServerClosed) {
				e.log.Error("the TCP listener for caches failed", "addr", o.tcpListen, "err", err)
			}
		}()
	}
	pub := org.Publisher
	id, err := pub.Start(o.ad)
	if err != nil {
		return err
	}
	url := "https://" + o.listen + "/"
	ca, _ := filepath.Abs(o.certFile)
	fmt.Fprintf(e.stdout, "h3m: session %s (%s) on %s from %s via %s, %d bit/s\n",
		id, o.ad.ProtocolID, o.ad.Session.Group, o.ad.Session.Source, o.iface, o.ad.Session.PeakFlowRate)
	for _, x := range o.ad.Session.Extensions {
		if x.ID == fec.ExtensionID {
			fp, _ := fec.ParseParams(x.Value)
			if o.autoFEC.Enabled {
				fmt.Fprintf(e.stdout, "h3m: FEC auto: up to %d repair packets per block of up to %d packets, none until the receivers' repair requests show loss\n",
					fp.MaxRepairCount, fp.MaxSourceCount)
				continue
			}
			fmt.Fprintf(e.stdout, "h3m: FEC: %d repair packets per block of up to %d packets, blocks closed within %v\n",
				fp.MaxRepairCount, fp.MaxSourceCount, fp.BlockTime)
		}
	}
	if o.asymmetric {
		fmt.Fprintf(e.stdout, "h3m: asymmetric: packets authenticated by signed manifests (in-band and at %s)\n", wellknown.ManifestPath(id))
	}
	if kid, _, alg, ok := origin.SignerKey(o.signer); ok {
		fmt.Fprintf(e.stdout, "h3m: pushes signed (%s, key ID %s), public key at %s\n", alg, kid, wellknown.KeyPath(kid))
	}
	var chans *channelSet
	if o.channels {
		if chans, err = startChannels(org, o, plans, e); err != nil {
			return err
		}
	}
	described := org.Server.Stats().Descriptions
	fmt.Fprintf(e.stdout, "h3m: receivers: h3m receive --url %s --ca %s --out DIR\n", url, ca)
	if o.ready != nil {
		o.ready(url)
	}
	if o.wait > 0 {
		waitForReceivers(ctx, e, org.Server, described, o.waitReceivers, o.wait)
	}

	pushed := 0
	push := func(batch []dirwatch.File) error {
		for _, f := range batch {
			entry, err := chans.publisher(pub, f.Path).PushFile(ctx, "/"+f.Path)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				e.log.Warn("push failed", "path", f.Path, "err", err)
				continue
			}
			pushed++
			e.log.Info("pushed", "path", entry.Path, "bytes", entry.Size, "session", entry.Session, "push_id", entry.PushID)
		}
		return nil
	}
	// The push set skips exactly what the file server refuses to serve.
	w := dirwatch.New(o.dir, dirwatch.Options{Settle: o.settle, Skip: origin.Excluded})
	var runErr error
	switch {
	case o.watch:
		runErr = w.Watch(ctx, true, push)
	default:
		files, err := w.Scan(time.Now(), false)
		if err == nil {
			err = push(files)
		}
		if err != nil {
			runErr = err
			break
		}
		if !o.once {
			select {
			case <-ctx.Done():
				runErr = ctx.Err()
			case err := <-srvErr:
				runErr = err
			}
		}
	}
	if o.once && runErr == nil && org.Repair != nil {
		// What receivers ask for now can still go out on the session.
		org.Repair.WaitQuiet(ctx)
	}
	// End the session: its last push carries connection: close.
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := pub.Close(closeCtx); err != nil {
		e.log.Warn("ending the session", "err", err)
	}
	for _, p := range org.Channels() {
		if err := p.Close(closeCtx); err != nil {
			e.log.Warn("ending a channel's session", "channel", p.Channel(), "err", err)
		}
	}
	fmt.Fprintf(e.stdout, "h3m: session ended after %d pushes\n", pushed)
	if (o.once && runErr == nil) || errors.Is(runErr, context.Canceled) {
		// Stay up for the receivers' repairs and fallback fetches, and so
		// that they read the session's end in the description. A second
		// interrupt stops at once.
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(again)
		if ctx.Err() != nil {
			fmt.Fprintf(e.stdout, "h3m: keeping the unicast server up for %v for repairs (interrupt again to stop now)\n", o.linger)
		}
		deadline := time.After(o.linger)
		start := time.Now()
	wait:
		for {
			select {
			case <-deadline:
				break wait
			case <-again:
				// A second interrupt a moment after the first is the same
				// stop delivered twice (to the process group and by a
				// parent); only a later one means "now".
				if time.Since(start) >= time.Second {
					break wait
				}
			case err := <-srvErr:
				return err
			}
		}
	}
	if errors.Is(runErr, context.Canceled) {
		return nil // Ctrl-C: a clean end
	}
	return runErr
}
