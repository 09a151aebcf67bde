package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// printHeader states the conditions.
func (r *PeersReport) printHeader(w io.Writer) {
	o := r.Options
	fmt.Fprintf(w, "peers: h3m and UFTP alternately on one bridge of network namespaces (sender 10.77.0.1, receivers 10.77.0.11…), eth0 veths, TTL 1\n")
	fmt.Fprintf(w, "  content: %.1f MB in %d files (pseudo-random), rate %.0f Mbit/s, receivers %v, loss %v %% (nftables: random drop of multicast UDP in each receiver's namespace), %d run(s) per tool and case\n",
		float64(r.ContentBytes)/1e6, r.Files, float64(o.Rate)/1e6, o.Receivers, o.Loss, o.Repeat)
	fmt.Fprintf(w, "  h3m:  %s\n        %s   (one per receiver, started once the server is up)\n", r.H3MServe, r.H3MReceive)
	fmt.Fprintf(w, "  UFTP: %s   (after every client listens)\n        %s   (one per receiver)\n", r.UFTPSender, r.UFTPClient)
	fmt.Fprintf(w, "  time: from starting the sender until every receiver holds every file and the tool has finished (h3m: the last receiver exits; UFTP: the sender exits); files checked byte for byte\n")
	fmt.Fprintf(w, "  CPU: user+system of the processes (wait4 rusage); sender per GB of content, receivers per GB received (content × receivers); wire: bytes all hosts transmitted onto the bridge (Ethernet frames), split into the sender's multicast (counted by nftables at the bridge), the sender's unicast and the receivers'\n\n")
}

// printRun prints one run as it finishes.
func (r *PeersReport) printRun(w io.Writer, run PeerRun) {
	status := "intact"
	if run.Err != nil {
		status = "FAILED: " + strings.ReplaceAll(run.Err.Error(), "\n", "; ")
	}
	how := ""
	if d := run.H3M; d != (h3mDeliveries{}) {
		how = fmt.Sprintf("; files by multicast %d, repaired %d (%.1f MB), by fallback %d", d.Multicast, d.Repaired, float64(d.RepairedBytes)/1e6, d.Fallback)
	}
	fmt.Fprintf(w, "  %-4s N=%d loss %2d%%: %7.2f s (last file %6.2f s), sender CPU %6.2f s, receivers CPU %6.2f s, wire %7.1f MB in %d packets (sender multicast %.1f MB, unicast %.2f MB; receivers %.2f MB), %d dropped%s: %s\n",
		run.Tool, run.Receivers, run.Loss, run.Done.Seconds(), run.LastFile.Seconds(), run.SenderCPU.Seconds(),
		run.ReceiverCPU.Seconds(), float64(run.WireBytes)/1e6, run.WirePackets, float64(run.SenderMulticastBytes)/1e6,
		float64(run.SenderBytes-min(run.SenderMulticastBytes, run.SenderBytes))/1e6, float64(run.WireBytes-run.SenderBytes)/1e6, run.Dropped, how, status)
}

// peerFigures are the compared figures of a set of runs (medians).
type peerFigures struct {
	done, lastFile, tail, goodput, senderCPUGB, receiverCPUGB, wireMB float64
	// The medians of wireMB's parts: the sender's multicast and unicast,
	// and what the receivers sent.
	multicastMB, senderUnicastMB, receiversMB float64
}

func (r *PeersReport) figures(runs []PeerRun) peerFigures {
	gb := float64(r.ContentBytes) / 1e9
	med := func(f func(PeerRun) float64) float64 {
		var v []float64
		for _, run := range runs {
			if run.Err == nil {
				v = append(v, f(run))
			}
		}
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return peerFigures{
		done:          med(func(p PeerRun) float64 { return p.Done.Seconds() }),
		lastFile:      med(func(p PeerRun) float64 { return p.LastFile.Seconds() }),
		tail:          med(func(p PeerRun) float64 { return p.Tail().Seconds() }),
		goodput:       med(func(p PeerRun) float64 { return float64(r.ContentBytes) * 8 / p.Done.Seconds() / 1e6 }),
		senderCPUGB:   med(func(p PeerRun) float64 { return p.SenderCPU.Seconds() / gb }),
		receiverCPUGB: med(func(p PeerRun) float64 { return p.ReceiverCPU.Seconds() / gb / float64(p.Receivers) }),
		wireMB:        med(func(p PeerRun) float64 { return float64(p.WireBytes) / 1e6 }),
		multicastMB:   med(func(p PeerRun) float64 { return float64(p.SenderMulticastBytes) / 1e6 }),
		senderUnicastMB: med(func(p PeerRun) float64 {
			return float64(p.SenderBytes-min(p.SenderMulticastBytes, p.SenderBytes)) / 1e6
		}),
		receiversMB: med(func(p PeerRun) float64 { return float64(p.WireBytes-p.SenderBytes) / 1e6 }),
	}
}

// peerRatio is a/b, or n/a where a figure is missing.
func peerRatio(a, b float64) string {
	if a == 0 || b == 0 {
		return "   n/a"
	}
	return fmt.Sprintf("%6.2f", a/b)
}

// printCase prints one case's figures side by side.
func (r *PeersReport) printCase(w io.Writer, c PeersCase) {
	h, u := r.figures(c.H3M), r.figures(c.UFTP)
	fmt.Fprintf(w, "N=%d, loss %d %%                      h3m       UFTP   h3m/UFTP\n", c.Receivers, c.Loss)
	row := func(name, unit string, a, b float64) {
		fmt.Fprintf(w, "  %-26s %9.2f  %9.2f    %s  %s\n", name, a, b, peerRatio(a, b), unit)
	}
	row("time to all intact", "s", h.done, u.done)
	row("  last file complete", "s", h.lastFile, u.lastFile)
	fmt.Fprintf(w, "  %-26s %9.2f  %9.2f  s\n", "  then until finished", h.tail, u.tail)
	row("goodput", "Mbit/s", h.goodput, u.goodput)
	row("sender CPU per GB", "s", h.senderCPUGB, u.senderCPUGB)
	row("receiver CPU per GB", "s", h.receiverCPUGB, u.receiverCPUGB)
	row("bytes on the wire", "MB", h.wireMB, u.wireMB)
	// The parts, without a ratio: the tools split their bytes differently
	// (UFTP's sender sends next to no unicast).
	part := func(name string, a, b float64) {
		fmt.Fprintf(w, "  %-26s %9.2f  %9.2f           MB\n", name, a, b)
	}
	part("  sender's multicast", h.multicastMB, u.multicastMB)
	part("  sender's unicast", h.senderUnicastMB, u.senderUnicastMB)
	part("  receivers'", h.receiversMB, u.receiversMB)
	fmt.Fprintln(w)
}

// printSummary prints every case's ratios as a Markdown table.
func (r *PeersReport) printSummary(w io.Writer) {
	v := r.UFTPVersion
	if v == "" {
		v = "?"
	}
	fmt.Fprintf(w, "summary, h3m / UFTP %s (below 1: h3m ahead), %.0f MB in %d files at %.0f Mbit/s:\n\n", v, float64(r.ContentBytes)/1e6, r.Files, float64(r.Options.Rate)/1e6)
	fmt.Fprintln(w, "| receivers | loss | time to all intact (h3m / UFTP) | ratio | last file complete | then until finished (h3m / UFTP) | goodput | sender CPU/GB | receiver CPU/GB | wire bytes |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range r.Cases {
		h, u := r.figures(c.H3M), r.figures(c.UFTP)
		fmt.Fprintf(w, "| %d | %d %% | %.2f s / %.2f s | %s | %s | %.2f s / %.2f s | %s | %s | %s | %s |\n", c.Receivers, c.Loss, h.done, u.done,
			strings.TrimSpace(peerRatio(h.done, u.done)), strings.TrimSpace(peerRatio(h.lastFile, u.lastFile)), h.tail, u.tail,
			strings.TrimSpace(peerRatio(h.goodput, u.goodput)),
			strings.TrimSpace(peerRatio(h.senderCPUGB, u.senderCPUGB)), strings.TrimSpace(peerRatio(h.receiverCPUGB, u.receiverCPUGB)),
			strings.TrimSpace(peerRatio(h.wireMB, u.wireMB)))
	}
	if r.Failed() {
		fmt.Fprintln(w, "\nsome runs FAILED (above); their figures are left out of the medians")
	}
}
