package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/h3m-project/h3m/interop"
)

// The scale bench measures what repair costs the origin as receivers grow,
// on the peer bench's topology (a sender host and N receiver hosts on a
// bridge of network namespaces, interop.NewNetwork) with the h3m binary
// run black-box: per receiver count, loss rate and kind, with and without
// FEC, the origin's unicast bytes (counted on the bridge, from the sender's
// port), its CPU time and the time until every receiver holds every file;
// and, in the same run, a unicast-only baseline: the same receivers
// fetching everything over HTTP/3.

// ScaleOptions configure the scale bench.
type ScaleOptions struct {
	// Peers carries the content, rate, timeouts and binary (its Receivers,
	// Loss, Repeat and UFTP fields are not used).
	Peers PeersOptions
	// Receivers are the receiver counts (up to 32 on a 2-core machine).
	Receivers []int
	// Loss are the multicast loss rates, in percent; each rate above 0 runs
	// independent (each receiver loses its own packets, nftables in its
	// namespace) and correlated (loss on the bridge before the multicast is
	// flooded: every receiver loses the same packets).
	Loss []int
	// FEC is the overhead of the runs with FEC (each case also runs
	// without); 0 sizes it for the loss rate (ScaleFEC).
	FEC float64
	// Baseline adds, per receiver count, the unicast-only run.
	Baseline bool
	// CacheTiers adds, per correlated loss rate (FEC off), a run through
	// an nginx cache on the bridge for each tier named (scale_cache.go):
	// TierSlice or TierExact.
	CacheTiers []string
	// CacheOnly leaves out the runs without a cache tier (but the
	// baseline, if asked): the cache tier's figures alone, in a fraction
	// of the time.
	CacheOnly bool
	// MulticastRepair, when above 0, adds to each correlated case a run
	// without FEC whose origin pushes once more on the session the ranges
	// that many receivers ask for (h3m serve --mcast-repair N).
	MulticastRepair int
	// RepairDelay is the receivers' --repair-delay in the multicast repair
	// runs (0: their default).
	RepairDelay time.Duration
}

// ScaleRun is one run.
type ScaleRun struct {
	Receivers  int
	Loss       int
	Correlated bool
	FEC        float64 // 0: none
	Baseline   bool    // unicast only
	// MulticastRepair is the serve --mcast-repair threshold (0: off).
	MulticastRepair int
	PeerRun
	// UnicastBytes and MulticastBytes are what the sender host put on the
	// bridge to unicast and to multicast destinations (IP packets, counted
	// at the bridge's port, before any loss rule).
	UnicastBytes, MulticastBytes uint64
	// ToCacheBytes is the part of UnicastBytes sent to the cache host;
	// SmallBytes and SmallPackets the IP packets under 100 bytes sent to
	// the receivers (acknowledgements, mostly). The origin's own log
	// (h3m serve --log-level debug in the cache runs: one "served" line
	// per request) says what the rest carried.
	ToCacheBytes, SmallBytes, SmallPackets uint64
	// LostBytes are the multicast bytes (IP packets) the bridge dropped
	// (correlated loss: lost upstream of every receiver).
	LostBytes uint64
	// Tier is "" (receivers repair from the origin) or the cache tier
	// they repair through (TierSlice, TierExact); Cache is what the cache
	// and the receivers report of it.
	Tier  string
	Cache CacheFigures
}

// ScaleReport is the outcome of Scale.
type ScaleReport struct {
	Options      ScaleOptions
	ContentBytes int64
	Runs         []ScaleRun
}

// Failed reports whether any run failed.
func (r *ScaleReport) Failed() bool {
	for _, run := range r.Runs {
		if run.Err != nil {
			return true
		}
	}
	return false
}

// ScaleAvailable reports why the scale bench cannot run here, or nil.
func ScaleAvailable() error {
	if err := interop.NetnsAvailable(); err != nil {
		return err
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("nftables is not installed: %w", err)
	}
	return nil
}

// Scale runs the bench.
func Scale(ctx context.Context, o ScaleOptions) (*ScaleReport, error) {
	if err := ScaleAvailable(); err != nil {
		return nil, err
	}
	p := &o.Peers
	if err := p.prepare("scale"); err != nil {
		return nil, err
	}
	rep := &ScaleReport{Options: o, ContentBytes: p.Size}
	dir, cleanup, err := p.workDir("h3m-scale-", rep.Failed)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	files, err := writeContent(filepath.Join(dir, "content"), p.Size, p.Files)
	if err != nil {
		return nil, err
	}
	if len(o.CacheTiers) > 0 {
		if err := prepareCacheRuns(dir, o.CacheTiers); err != nil {
			return nil, err
		}
	}
	fecNote := "sized for the loss (twice the loss rate, at least 5 %)"
	if o.FEC > 0 {
		fecNote = fmt.Sprintf("%g %%", o.FEC*100)
	}
	fmt.Fprintf(p.Out, "scale: %.1f MB in %d files at %.0f Mbit/s, N receivers on a bridge of network namespaces; FEC runs: h3m serve --fec %s; origin unicast bytes counted on the bridge (IP packets the sender host sent to unicast addresses); origin CPU is h3m serve's until the last receiver exits\n",
		float64(p.Size)/1e6, len(files), float64(p.Rate)/1e6, fecNote)
	rep.printHeader(p.Out)
	for _, n := range o.Receivers {
		if err := o.runScale(ctx, rep, dir, files, n); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// scaleCase is one configuration of a run.
type scaleCase struct {
	loss       int
	correlated bool
	fec        float64
	baseline   bool
	tier       string // a cache tier ("": none)
	mrepair    int
}

func (o *ScaleOptions) cases() []scaleCase {
	var cs []scaleCase
	if o.Baseline {
		cs = append(cs, scaleCase{baseline: true})
	}
	for _, loss := range o.Loss {
		for _, corr := range []bool{false, true} {
			if corr && loss == 0 {
				continue
			}
			f := o.FEC
			if f == 0 {
				f = ScaleFEC(loss)
			}
			for _, f := range []float64{0, f} {
				if !o.CacheOnly {
					cs = append(cs, scaleCase{loss: loss, correlated: corr, fec: f})
				}
			}
			if corr {
				for _, tier := range o.CacheTiers {
					cs = append(cs, scaleCase{loss: loss, correlated: true, tier: tier})
				}
			}
			if corr && o.MulticastRepair > 0 && !o.CacheOnly {
				cs = append(cs, scaleCase{loss: loss, correlated: corr, mrepair: o.MulticastRepair})
			}
		}
	}
	return cs
}

// ScaleFEC is the FEC overhead sized for a loss rate in percent: twice the
// rate, at least 5 % (5 % at 2 % loss, 20 % at 10 %: blocks of 200 then
// fail once in a few thousand; spec/transport.md).
func ScaleFEC(lossPercent int) float64 { return max(0.05, 2*float64(lossPercent)/100) }

// runScale builds the network for n receivers and runs every case on it.
func (o *ScaleOptions) runScale(ctx context.Context, rep *ScaleReport, dir string, files []contentFile, n int) error {
	net, err := interop.NewNetwork(ctx, interop.ModeNetns, interop.Topology{Receivers: n})
	if err != nil {
		return fmt.Errorf("scale: building the network: %w", err)
	}
	defer net.Close()
	sw := switchHost(net)
	var cacheHost interop.Host
	if len(o.CacheTiers) > 0 {
		if cacheHost, err = net.AddCache(ctx); err != nil {
			return fmt.Errorf("scale: the cache host: %w", err)
		}
	}
	for _, c := range o.cases() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p := o.Peers
		var label string
		switch {
		case c.baseline:
			// The receivers refuse the (symmetric) session and fetch
			// everything over HTTP/3; nothing multicast reaches them.
			p.ReceiveArgs = append(p.ReceiveArgs, "--require-asymmetric")
			label = "unicast"
		case c.fec > 0:
			p.ServeArgs = append(p.ServeArgs, "--fec", strconv.FormatFloat(c.fec, 'f', -1, 64))
			label = "fec"
		case c.tier != "":
			label = "cache-" + c.tier
		case c.mrepair > 0:
			p.ServeArgs = append(p.ServeArgs, "--mcast-repair", strconv.Itoa(c.mrepair))
			if o.RepairDelay > 0 {
				p.ReceiveArgs = append(p.ReceiveArgs, "--repair-delay", o.RepairDelay.String())
			}
			label = "mrepair"
		default:
			label = "nofec"
		}
		kind := "ind"
		if c.correlated {
			kind = "cor"
		}
		runDir := filepath.Join(dir, fmt.Sprintf("n%d-%s-loss%d%s", n, label, c.loss, kind))
		p.Logger.Info("scale: run", "receivers", n, "loss", c.loss, "correlated", c.correlated, "fec", c.fec, "baseline", c.baseline)
		bridgeLoss := 0
		switch {
		case c.baseline:
			bridgeLoss = 100
		case c.correlated:
			bridgeLoss = c.loss
		}
		if err := setBridgeRules(ctx, sw, bridgeLoss); err != nil {
			return err
		}
		recvLoss := c.loss
		if c.correlated || c.baseline {
			recvLoss = 0
		}
		run := ScaleRun{Receivers: n, Loss: c.loss, Correlated: c.correlated, FEC: c.fec, Baseline: c.baseline, Tier: c.tier, MulticastRepair: c.mrepair}
		var cache *interop.NginxCache
		if c.tier != "" {
			if cache, err = startTier(ctx, cacheHost, dir, runDir, c.tier, &p); err != nil {
				return err
			}
		}
		run.PeerRun = p.runH3M(ctx, net, runDir, files, recvLoss)
		if cache != nil {
			cache.Stop()
			run.Cache.read(cache, &run.PeerRun)
		}
		run.Tool, run.PeerRun.Receivers, run.PeerRun.Loss = "h3m", n, c.loss
		run.UnicastBytes, run.MulticastBytes = bridgeCounters(ctx, sw)
		run.ToCacheBytes, _ = bridgeCounter(ctx, sw, "to-cache")
		run.SmallBytes, run.SmallPackets = bridgeCounter(ctx, sw, "small")
		if c.correlated {
			run.Dropped = bridgeDropped(ctx, sw)
			run.LostBytes, _ = bridgeCounter(ctx, sw, "drop")
		}
		rep.Runs = append(rep.Runs, run)
		rep.printRun(p.Out, run)
	}
	return nil
}

// switchHost returns the bridge's namespace as a host.
func switchHost(net *interop.Network) interop.Host {
	for _, ns := range net.Namespaces() {
		if strings.HasSuffix(ns, "-sw") {
			return interop.Host{Name: "switch", NS: ns}
		}
	}
	return interop.Host{Name: "switch"}
}

// scaleTable is the nftables table on the bridge: it counts what the
// sender host sends to multicast and to unicast addresses, and drops a
// share of the multicast before the bridge floods it (correlated loss).
const scaleTable = "h3m_scale"

// setBridgeRules replaces the bridge's table (zeroing its counters), with
// percent of the sender's multicast packets dropped.
func setBridgeRules(ctx context.Context, sw interop.Host, percent int) error {
	drop := ""
	switch {
	case percent >= 100:
		drop = "\t\tiifname \"p-sender\" ether type ip ip daddr 224.0.0.0/4 meta l4proto udp counter drop comment \"drop\"\n"
	case percent > 0:
		drop = fmt.Sprintf("\t\tiifname \"p-sender\" ether type ip ip daddr 224.0.0.0/4 meta l4proto udp numgen random mod 100 < %d counter drop comment \"drop\"\n", percent)
	}
	script := fmt.Sprintf(`table bridge %[1]s {}
delete table bridge %[1]s
table bridge %[1]s {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		iifname "p-sender" ether type ip ip daddr 224.0.0.0/4 counter comment "multicast"
		iifname "p-sender" ether type ip ip daddr != 224.0.0.0/4 counter comment "unicast"
		iifname "p-sender" ether type ip ip daddr 10.77.0.2 counter comment "to-cache"
		iifname "p-sender" ether type ip ip daddr != 224.0.0.0/4 ip daddr != 10.77.0.2 ip length < 100 counter comment "small"
%[2]s	}
}
`, scaleTable, drop)
	cmd := sw.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("bridge: nft: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// bridgeCounter reads the bytes and packets of the rule with comment name.
func bridgeCounter(ctx context.Context, sw interop.Host, name string) (bytes, packets uint64) {
	out, err := sw.Run(context.WithoutCancel(ctx), "nft", "list", "table", "bridge", scaleTable)
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, `comment "`+name+`"`) {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			switch f[i] {
			case "packets":
				packets, _ = strconv.ParseUint(f[i+1], 10, 64)
			case "bytes":
				bytes, _ = strconv.ParseUint(f[i+1], 10, 64)
			}
		}
	}
	return bytes, packets
}

func bridgeCounters(ctx context.Context, sw interop.Host) (unicast, multicast uint64) {
	unicast, _ = bridgeCounter(ctx, sw, "unicast")
	multicast, _ = bridgeCounter(ctx, sw, "multicast")
	return unicast, multicast
}

func bridgeDropped(ctx context.Context, sw interop.Host) uint64 {
	_, n := bridgeCounter(ctx, sw, "drop")
	return n
}

func (r *ScaleReport) printHeader(w io.Writer) {
	fmt.Fprintln(w, "| receivers | loss | FEC | origin unicast / content | per receiver | origin CPU s | done s | multicast / content | deliveries (multicast/repaired/fallback) | intact | repair via | origin unicast / bytes lost upstream | cache: origin fetches (most of one range) / receivers' requests, rejected; origin bytes for repairs / lost |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")
}

func (run ScaleRun) label() (loss, fec string) {
	switch {
	case run.Baseline:
		return "unicast only", "—"
	case run.Loss == 0:
		loss = "0 %"
	case run.Correlated:
		loss = fmt.Sprintf("%d %% correlated", run.Loss)
	default:
		loss = fmt.Sprintf("%d %% independent", run.Loss)
	}
	fec = "off"
	switch {
	case run.FEC > 0:
		fec = fmt.Sprintf("%g %%", run.FEC*100)
	case run.MulticastRepair > 0:
		fec = fmt.Sprintf("off, multicast repair at %d", run.MulticastRepair)
	}
	return loss, fec
}

func (r *ScaleReport) printRun(w io.Writer, run ScaleRun) {
	loss, fec := run.label()
	content := float64(r.ContentBytes)
	intact := "yes"
	if run.Err != nil {
		intact = "NO: " + run.Err.Error()
	}
	via, perLost, cache := "origin", "—", "—"
	if run.Tier != "" {
		via = "cache (" + run.Tier + ")"
		cache = fmt.Sprintf("%d (%d) / %d, %d", run.Cache.OriginFetches, run.Cache.MostFetches, run.H3M.CacheRequests, run.H3M.CacheRejected)
		if run.LostBytes > 0 {
			cache += fmt.Sprintf("; repairs / lost %.2f", float64(run.Cache.UpstreamBytes-run.Cache.WholeBytes-run.Cache.EntryBytes)/float64(run.LostBytes))
		}
		if run.Cache.WholeBytes > 0 {
			cache += fmt.Sprintf("; whole %.2f × lost", float64(run.Cache.WholeBytes)/float64(run.LostBytes))
		}
		if run.Cache.Entries > 0 {
			cache += fmt.Sprintf("; %d signed entries, %.1f kB", run.Cache.Entries, float64(run.Cache.EntryBytes)/1e3)
		}
	}
	if run.LostBytes > 0 {
		perLost = fmt.Sprintf("%.2f", float64(run.UnicastBytes)/float64(run.LostBytes))
		if run.Tier != "" {
			// To the cache (repairs, fallback, signed catalogue entries)
			// and to the receivers (handshakes, descriptions, keys).
			toRecv := run.UnicastBytes - run.ToCacheBytes
			perLost += fmt.Sprintf(" (cache %.3f + receivers %.3f: %.1f kB each, %d packets under 100 B)",
				float64(run.ToCacheBytes)/float64(run.LostBytes), float64(toRecv)/float64(run.LostBytes),
				float64(toRecv)/1e3/float64(run.Receivers), run.SmallPackets)
		}
	}
	fmt.Fprintf(w, "| %d | %s | %s | %.4f | %.5f | %.2f | %.1f | %.3f | %d/%d/%d | %s | %s | %s | %s |\n",
		run.Receivers, loss, fec, float64(run.UnicastBytes)/content, float64(run.UnicastBytes)/content/float64(run.Receivers),
		run.SenderCPU.Seconds(), run.Done.Seconds(), float64(run.MulticastBytes)/content,
		run.H3M.Multicast, run.H3M.Repaired, run.H3M.Fallback, intact, via, perLost, cache)
}
