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
	Paced   [][2]AsymRun // per rate: symmetric, asymmetric
	Unpaced [2]AsymRun
}

// Ratio is the asymmetric stream throughput over the symmetric one.
func ratio(runs [2]AsymRun) float64 { return runs[1].Stream.Gbps() / runs[0].Stream.Gbps() }

// Asymmetric measures stream throughput in a symmetric and an asymmetric
// session (signed manifests, spec/transport.md), one after the other on
// fresh sockets, paced at each of o.AsymRates and then unpaced, for o.Duration each,
// and reports the per-packet cost of hashing, signing and verifying.
func Asymmetric(ctx context.Context, o Options) (AsymResult, error) {
	var res AsymResult
	rates := o.AsymRates
	if rates == nil {
		rates = DefaultAsymRates
	}
	port := o.Group.Port() + 4
	for _, rate := range rates {
		var runs [2]AsymRun
		for i, asym := range []bool{false, true} {
			r, err := o.asymTransfer(ctx, port, asym, rate)
			if err != nil {
				return res, err
			}
			runs[i] = r
			port++
		}
		res.Paced = append(res.Paced, runs)
	}
	for i, asym := range []bool{false, true} {
		r, err := o.asymTransfer(ctx, port+uint16(i), asym, 0)
		if err != nil {
			return res, err
		}
		res.Unpaced[i] = r
	}
	return res, nil
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
			name, runs[0].Stream.Gbps(), runs[1].Stream.Gbps(), ratio(runs), note)
		for _, run := range runs {
			au := run.Receiver.Auth
			fmt.Fprintf(w, "  %-22s   %-10s: %d of %d stream bytes delivered, %d packets lost, %d held packets expired, %d evicted, %d manifests over the verification budget\n",
				"", mode(run.Asymmetric), run.Stream.Bytes, run.Sent, run.Receiver.LostPackets, au.Expired, au.Evicted, au.RateLimited)
		}
	}
	for _, runs := range r.Paced {
		line(fmt.Sprintf("paced at %.1f Gbit/s", float64(runs[0].Rate)/1e9), runs, "(stream data; target >= 0.9, nothing lost or expired)")
	}
	line("unpaced", r.Unpaced, "(target >= 0.35: the receiver's CPU is the limit)")
	if cs, ca := cpuPerPacket(r.Unpaced[0].TransferRun), cpuPerPacket(r.Unpaced[1].TransferRun); cs > 0 && ca > 0 {
		// Whatever share of the machine the process got: sender and
		// receiver share the cores, so this ratio bounds the unpaced one.
		fmt.Fprintf(w, "  %-22s CPU per packet delivered (sender and receiver): symmetric %.2f µs, asymmetric %.2f µs, ratio %.3f\n",
			"", cs, ca, cs/ca)
	}
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
