package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
)

// DefaultAsymRates are the paced rates of the asymmetric comparison when
// Options.AsymRates is nil: rates both modes should sustain, so that the
// ratio measures the cost of authentication, not of a saturated CPU.
var DefaultAsymRates = []uint64{1_000_000_000, 2_000_000_000}

// AsymRun is one transfer of the asymmetric comparison.
type AsymRun struct {
	Asymmetric bool
	TransferRun
}

// TransferRun is one timed stream transfer (transfer).
type TransferRun struct {
	Rate     uint64 // paced rate, bit/s (0: unpaced)
	Stream   Rate   // stream data delivered to the handler
	Sent     uint64 // stream bytes written
	Sender   mquic.SenderStats
	Receiver mquic.ReceiverStats
	// CPU is the process's CPU time over the transfer: sender and
	// receiver together.
	CPU time.Duration
}

// Complete reports whether every byte written was delivered.
func (r TransferRun) Complete() bool { return r.Stream.Bytes == r.Sent }

// AsymResult compares symmetric and asymmetric sessions in the same run, at
// paced rates and unpaced.
type AsymResult struct {
	Paced [][2]AsymRun // per rate: symmetric, asymmetric
	// Unpaced are AsymRounds pairs of unpaced runs, symmetric and
	// asymmetric, alternating which goes first (see pairs): each pair's
	// ratio is taken, and their median reported.
	Unpaced [][2]AsymRun
}

// AsymRounds is how many unpaced pairs the comparison runs.
const AsymRounds = 5

// ratio is the asymmetric stream throughput over the symmetric one.
func ratio(runs [2]TransferRun) float64 { return runs[1].Stream.Gbps() / runs[0].Stream.Gbps() }

// cpuRatio is the CPU per packet delivered, symmetric over asymmetric.
func cpuRatio(runs [2]TransferRun) float64 { return cpuPerPacket(runs[0]) / cpuPerPacket(runs[1]) }

// transferRuns returns the transfers of the unpaced rounds.
func (r AsymResult) transferRuns() [][2]TransferRun {
	out := make([][2]TransferRun, len(r.Unpaced))
	for i, runs := range r.Unpaced {
		out[i] = transfers(runs)
	}
	return out
}

// transfers returns the transfers of a symmetric and an asymmetric run.
func transfers(runs [2]AsymRun) [2]TransferRun {
	return [2]TransferRun{runs[0].TransferRun, runs[1].TransferRun}
}

// UnpacedRatio is the median of the unpaced rounds' throughput ratios.
func (r AsymResult) UnpacedRatio() float64 { return medianRatio(r.transferRuns(), ratio) }

// Asymmetric measures stream throughput in a symmetric and an asymmetric
// session (signed manifests, spec/transport.md), one after the other on
// fresh sockets, for o.Duration each: after a warm-up, paced at each of
// o.AsymRates, then AsymRounds pairs unpaced, alternating which mode goes
// first (see pairs). Report gives the per-packet cost of hashing, signing
// and verifying.
func Asymmetric(ctx context.Context, o Options) (AsymResult, error) {
	var res AsymResult
	rates := o.AsymRates
	if rates == nil {
		rates = DefaultAsymRates
	}
	p := pairs{port: o.Group.Port() + 4, phase: func(o Options, port uint16, which int, rate uint64) (TransferRun, error) {
		r, err := o.asymTransfer(ctx, port, which == 1, rate)
		return r.TransferRun, err
	}}
	asymRuns := func(runs [2]TransferRun) [2]AsymRun {
		return [2]AsymRun{{TransferRun: runs[0]}, {Asymmetric: true, TransferRun: runs[1]}}
	}
	if err := p.warmUp(o); err != nil {
		return res, err
	}
	for _, rate := range rates {
		runs, err := p.pair(o, rate, false)
		if err != nil {
			return res, err
		}
		res.Paced = append(res.Paced, asymRuns(runs))
	}
	rounds, err := p.alternate(o, AsymRounds)
	for _, runs := range rounds {
		res.Unpaced = append(res.Unpaced, asymRuns(runs))
	}
	return res, err
}

// asymTransfer writes stream data for o.Duration at rate and times it from
// the first write to the last byte delivered.
func (o *Options) asymTransfer(ctx context.Context, port uint16, asym bool, rate uint64) (AsymRun, error) {
	run := AsymRun{Asymmetric: asym}
	params := o.params(port)
	var sc *manifest.SignerConfig
	if asym {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return run, err
		}
		prof, err := manifest.NewProfile(priv.Public(), 0x68336d31)
		if err != nil {
			return run, err
		}
		params.Extensions = append(params.Extensions, mquic.Extension{ID: manifest.ExtensionID, Value: prof.Value()})
		sc = &manifest.SignerConfig{Key: priv}
	}
	var err error
	run.TransferRun, err = o.transfer(ctx, port, params, mquic.SenderConfig{Manifests: sc}, rate)
	return run, err
}

// transfer writes one stream's data for o.Duration at rate (0: unpaced) in
// the session params on fresh sockets, and times it from the first write
// to the last byte delivered.
func (o *Options) transfer(ctx context.Context, port uint16, params mquic.Params, sc mquic.SenderConfig, rate uint64) (TransferRun, error) {
	run := TransferRun{Rate: rate}
	params.PeakFlowRate = rate
	h := &countingHandler{}
	x, err := o.startSession(ctx, port, params, h, sc)
	if err != nil {
		return run, err
	}
	defer x.stop()
	s := x.s
	st, err := s.OpenStream()
	if err != nil {
		s.Close()
		return run, err
	}
	chunk := make([]byte, s.MaxChunk())
	cpu0 := processCPU()
	start := time.Now()
	for time.Since(start) < o.Duration && ctx.Err() == nil {
		for range 16 {
			if err := st.WriteChunk(chunk); err != nil {
				s.Close()
				return run, err
			}
			run.Sent += uint64(len(chunk))
		}
	}
	s.Flush()
	err = s.Close() // every packet listed in a manifest
	run.Sender = s.Stats()
	// Let the receiver drain its socket (and release what the last
	// manifests list).
	for last := h.bytes.Load(); ; {
		time.Sleep(200 * time.Millisecond)
		if now := h.bytes.Load(); now == last || now == run.Sent {
			break
		} else {
			last = now
		}
	}
	x.stop()
	run.CPU = processCPU() - cpu0
	run.Receiver = x.r.Stats()
	run.Stream = Rate{Packets: run.Receiver.Packets, Bytes: h.bytes.Load(), Elapsed: time.Duration(h.last.Load() - start.UnixNano())}
	return run, err
}

// Report prints the comparison: throughput of both modes and their ratio,
// paced and unpaced, and what authentication costs per packet.
func (r AsymResult) Report(w io.Writer, o Options) {
	fmt.Fprintf(w, "asymmetric authentication (signed manifests) over %s, %d-byte packets, %v per phase, GSO %v, GRO %v, %s\n",
		o.link(), o.PacketSize, o.Duration, o.GSO, o.GRO, o.Suite)
	line := func(name string, runs [2]AsymRun, note string) {
		fmt.Fprintf(w, "  %-22s symmetric %6.2f Gbit/s   asymmetric %6.2f Gbit/s   ratio %.3f %s\n",
			name, runs[0].Stream.Gbps(), runs[1].Stream.Gbps(), ratio(transfers(runs)), note)
		for _, run := range runs {
			au := run.Receiver.Auth
			fmt.Fprintf(w, "  %-22s   %-10s: %d of %d stream bytes delivered, %d packets lost, %d held packets expired, %d evicted, %d manifests over the verification budget\n",
				"", mode(run.Asymmetric), run.Stream.Bytes, run.Sent, run.Receiver.LostPackets, au.Expired, au.Evicted, au.RateLimited)
		}
	}
	for _, runs := range r.Paced {
		line(fmt.Sprintf("paced at %.1f Gbit/s", float64(runs[0].Rate)/1e9), runs, "(stream data; target >= 0.9, nothing lost or expired)")
	}
	for i, runs := range r.Unpaced {
		line(fmt.Sprintf("unpaced, round %d", i+1), runs, "")
	}
	rounds := r.transferRuns()
	rs := sortedRatios(rounds, ratio)
	fmt.Fprintf(w, "  unpaced: median of the %d rounds' ratios %.3f (from %.3f to %.3f; target >= 0.35: sender and receiver share this machine's cores, so the CPU per packet is the limit)\n",
		len(rs), r.UnpacedRatio(), rs[0], rs[len(rs)-1])
	cpu := func(which int) float64 {
		return medianRatio(rounds, func(runs [2]TransferRun) float64 { return cpuPerPacket(runs[which]) })
	}
	if c0, c1 := cpu(0), cpu(1); c0 > 0 && c1 > 0 {
		cs := sortedRatios(rounds, cpuRatio)
		// Whatever share of the machine the process got: sender and
		// receiver share the cores, so this ratio bounds the unpaced one.
		fmt.Fprintf(w, "  unpaced: CPU per packet delivered (sender and receiver), medians: symmetric %.2f µs, asymmetric %.2f µs; symmetric / asymmetric median %.3f (from %.3f to %.3f)\n",
			c0, c1, medianRatio(rounds, cpuRatio), cs[0], cs[len(cs)-1])
	}
	// Medians of the asymmetric runs' costs.
	asymCost := func(f func(TransferRun) float64) float64 {
		return medianRatio(rounds, func(runs [2]TransferRun) float64 { return f(runs[1]) })
	}
	fmt.Fprintf(w, "  unpaced, medians per packet: sender hash %.2f µs, sign %.2f µs; receiver verify %.2f µs (%.0f %% of the signatures in batches)\n",
		asymCost(func(t TransferRun) float64 { return perPacket(t.Sender.Manifests.HashTime, t.Sender.Manifests.Hashed) }),
		asymCost(func(t TransferRun) float64 { return perPacket(t.Sender.Manifests.SignTime, t.Sender.Manifests.Hashed) }),
		asymCost(func(t TransferRun) float64 {
			return perPacket(t.Receiver.Auth.VerifyTime, t.Receiver.Auth.Authenticated)
		}),
		asymCost(func(t TransferRun) float64 {
			return 100 * float64(t.Receiver.Auth.Batched) / float64(max(t.Receiver.Auth.Verified, 1))
		}))
	a := r.Paced[len(r.Paced)-1][1]
	m, au := a.Sender.Manifests, a.Receiver.Auth
	fmt.Fprintf(w, "  per packet, paced run: sender hash %.2f µs, sign %.2f µs (%d manifests of %d packets on average, %.1f µs each, each sent %d times); receiver verify %.2f µs (%d verifications, %d of them in batches, %.1f µs each)\n",
		perPacket(m.HashTime, m.Hashed), perPacket(m.SignTime, m.Hashed), m.Manifests, a.Sender.Manifests.Digests/max(m.Manifests, 1),
		perPacket(m.SignTime, m.Manifests), m.Frames/max(m.Manifests, 1),
		perPacket(au.VerifyTime, au.Authenticated), au.Verified, au.Batched, perPacket(au.VerifyTime, au.Verified))
	fmt.Fprintf(w, "  packets on the wire: symmetric %d, asymmetric %d (+%.1f %% for manifests)\n",
		r.Paced[len(r.Paced)-1][0].Sender.Packets, a.Sender.Packets,
		100*(float64(a.Sender.Packets)/float64(a.Sent)*float64(r.Paced[len(r.Paced)-1][0].Sent)/float64(r.Paced[len(r.Paced)-1][0].Sender.Packets)-1))
}

func mode(asym bool) string {
	if asym {
		return "asymmetric"
	}
	return "symmetric"
}

// cpuPerPacket is the process's CPU time per packet delivered in run, in
// microseconds (0 where the system does not say).
func cpuPerPacket(run TransferRun) float64 { return perPacket(run.CPU, run.Receiver.Packets) }

// perPacket is d/n in microseconds.
func perPacket(d time.Duration, n uint64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / 1e3 / float64(n)
}
