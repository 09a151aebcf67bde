package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/wire"
)

// FECOverhead is the FEC overhead the comparison measures: 5 % repair
// packets over blocks of the default size.
const FECOverhead = 0.05

// FECResult compares sessions without and with FEC in the same run, and
// what FEC costs per packet next to the AEAD that protects every packet.
type FECResult struct {
	Paced [2]TransferRun // at FECRate: without, with
	// Unpaced are FECRounds pairs of unpaced runs, without and with FEC,
	// alternating which goes first (see pairs): each pair's ratio is
	// taken, and their median reported.
	Unpaced [][2]TransferRun
	// Per-packet costs, in nanoseconds, of a full packet: AES-GCM (the
	// session's suite) seal and open, FEC encode (the sender's work per
	// packet, repair packets included) and decode (the receiver's work per
	// packet at DecodeLoss: keeping every payload and rebuilding the lost).
	Seal, Open, Encode, Decode float64
	DecodeLoss                 float64
	Payload                    int // payload bytes of the packets measured
}

// FECRate is the paced rate of the comparison.
const FECRate = 1_000_000_000

// FECRounds is how many unpaced pairs the comparison runs.
const FECRounds = 5

// FEC measures per-packet costs in process, then stream throughput without
// and with 5 % FEC, paced at FECRate and unpaced, on fresh sockets each,
// after a warm-up (see pairs).
func FEC(ctx context.Context, o Options) (FECResult, error) {
	var res FECResult
	if err := o.fecCosts(&res); err != nil {
		return res, err
	}
	p := pairs{port: o.Group.Port() + 2, phase: func(o Options, port uint16, which int, rate uint64) (TransferRun, error) {
		params := o.params(port)
		if which == 1 {
			fp, err := fec.NewParams(FECOverhead, 0, 0)
			if err != nil {
				return TransferRun{}, err
			}
			params = fecParams(params, fp)
		}
		return o.transfer(ctx, port, params, mquic.SenderConfig{}, rate)
	}}
	if err := p.warmUp(o); err != nil {
		return res, err
	}
	var err error
	if res.Paced, err = p.pair(o, FECRate, false); err != nil {
		return res, err
	}
	res.Unpaced, err = p.alternate(o, FECRounds)
	return res, err
}

// fecRatio is the stream throughput with FEC over without.
func fecRatio(runs [2]TransferRun) float64 { return runs[1].Stream.Gbps() / runs[0].Stream.Gbps() }

// UnpacedRatio is the median of the unpaced rounds' ratios.
func (r FECResult) UnpacedRatio() float64 { return r.median(fecRatio) }

// fecCPURatio is the CPU per stream byte without FEC over with it.
func fecCPURatio(runs [2]TransferRun) float64 { return cpuPerByte(runs[0]) / cpuPerByte(runs[1]) }

// cpuPerByte is the process's CPU time per stream byte delivered.
func cpuPerByte(run TransferRun) float64 {
	return float64(run.CPU) / float64(max(run.Stream.Bytes, 1))
}

// UnpacedCPURatio is the median of the unpaced rounds' CPU per stream byte
// without FEC over with it: the throughput ratio a machine whose cores the
// transfer saturates would see, less sensitive than throughput to other
// jobs on a shared machine.
func (r FECResult) UnpacedCPURatio() float64 { return r.median(fecCPURatio) }

func (r FECResult) median(f func([2]TransferRun) float64) float64 { return medianRatio(r.Unpaced, f) }

// sorted returns f of each unpaced round, sorted.
func (r FECResult) sorted(f func([2]TransferRun) float64) []float64 {
	return sortedRatios(r.Unpaced, f)
}

// fecCosts times sealing, opening, FEC encoding and decoding of full
// packets of the session's suite, one after the other on this goroutine,
// each the best of fecCostRounds passes (the machine may be shared).
func (o *Options) fecCosts(res *FECResult) error {
	best := func(dst *float64, pass func() (float64, error)) error {
		for i := range fecCostRounds {
			v, err := pass()
			if err != nil {
				return err
			}
			if i == 0 || v < *dst {
				*dst = v
			}
		}
		return nil
	}
	return o.fecCostsOnce(res, best)
}

const fecCostRounds = 5

func (o *Options) fecCostsOnce(res *FECResult, best func(*float64, func() (float64, error)) error) error {
	params := o.params(o.Group.Port())
	prot, err := params.Protector()
	if err != nil {
		return err
	}
	fp, err := fec.NewParams(FECOverhead, 0, 0)
	if err != nil {
		return err
	}
	const blocks = 40
	k := fp.MaxSourceCount
	n := blocks * k
	// The payload of a full packet of a session with FEC: as the sender
	// sizes it (the symbol, payload and length, a multiple of 64 bytes).
	x, err := mquic.NewSender(nopConn{}, mquic.SenderConfig{Params: fecParams(params, fp), MaxPacketSize: o.PacketSize})
	if err != nil {
		return err
	}
	payloadLen := x.MaxPayload()
	res.Payload = payloadLen
	payload := make([]byte, payloadLen)
	for i := range payload {
		payload[i] = byte(i*31 + 7)
	}
	pkt := make([]byte, 0, o.PacketSize+64)
	if err := best(&res.Seal, func() (float64, error) {
		start := time.Now()
		for pn := range uint64(n) {
			pkt = wire.AppendShortHeader(pkt[:0], params.SessionID, pn, mquic.DefaultPacketNumberLen)
			pkt = append(pkt, payload...)
			pkt = prot.Seal(pkt, 1+len(params.SessionID), pn)
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n), nil
	}); err != nil {
		return err
	}
	sealed := append([]byte(nil), pkt...)
	buf := make([]byte, len(sealed))
	if err := best(&res.Open, func() (float64, error) {
		start := time.Now()
		for range n {
			copy(buf, sealed)
			if _, _, err := prot.Open(buf, 1+len(params.SessionID), mquic.DefaultPacketNumberLen, uint64(n-1), true); err != nil {
				return 0, fmt.Errorf("fec bench: open: %w", err)
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n), nil
	}); err != nil {
		return err
	}

	enc, err := fec.NewEncoder(fp, FECOverhead, payloadLen)
	if err != nil {
		return err
	}
	var frames [][]byte
	at := time.Now()
	frame := make([]byte, 0, o.PacketSize)
	if err := best(&res.Encode, func() (float64, error) {
		start := time.Now()
		for b := range blocks {
			for i := range k {
				enc.Add(uint64(b*(k+fp.MaxRepairCount)+i), payload, 0, true, at)
			}
			enc.Close()
			for enc.Pending() > 0 {
				frame = enc.AppendNext(frame[:0])
				if b == 0 && len(frames) < fp.MaxRepairCount {
					frames = append(frames, slices.Clone(frame))
				}
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(n), nil
	}); err != nil {
		return err
	}

	// Decode at 2 % loss: 4 of each block's 200 packets lost.
	res.DecodeLoss = 0.02
	return best(&res.Decode, func() (float64, error) { return decodeCost(fp, frames, payload, blocks) })
}

// decodeCost is the decoder's time per source packet for blocks blocks of
// payload, 4 of each 200 lost, rebuilt from frames.
func decodeCost(fp fec.Params, frames [][]byte, payload []byte, blocks int) (float64, error) {
	dec, err := fec.NewDecoder(fec.DecoderConfig{Params: fp})
	if err != nil {
		return 0, err
	}
	k := fp.MaxSourceCount
	at := time.Now()
	lost := func(i int) bool { return i%50 == 17 }
	var r fec.Repair
	start := time.Now()
	rebuilt := 0
	for b := range blocks {
		first := uint64(b * (k + fp.MaxRepairCount))
		for i := range k {
			if !lost(i) {
				dec.Source(first+uint64(i), payload)
			}
		}
		for j, f := range frames {
			if _, err := fec.ParseFrame(f, &r); err != nil {
				return 0, err
			}
			r.BlockID = first // the same symbols stand for every block
			dec.Repair(&r, first+uint64(k+j), at)
			for {
				if _, _, ok := dec.Next(); !ok {
					break
				}
				rebuilt++
			}
		}
		dec.Expire(at)
	}
	cost := float64(time.Since(start).Nanoseconds()) / float64(blocks*k)
	if want := blocks * k / 50; rebuilt != want {
		return 0, fmt.Errorf("fec bench: %d packets rebuilt, %d lost", rebuilt, want)
	}
	return cost, nil
}

// Report prints the per-packet costs and the throughput comparison.
func (r FECResult) Report(w io.Writer, o Options) {
	fmt.Fprintf(w, "forward error correction (%.0f %% repair packets, blocks of up to %d) over %s, %d-byte packets, %v per phase, GSO %v, GRO %v, %s\n",
		FECOverhead*100, fec.DefaultMaxSourceCount, o.link(), o.PacketSize, o.Duration, o.GSO, o.GRO, o.Suite)
	fmt.Fprintf(w, "  per packet (%d-byte payload): seal %.0f ns, open %.0f ns; FEC encode %.0f ns (%.2f × seal), decode at %.0f %% loss %.0f ns (%.2f × open)\n",
		r.Payload, r.Seal, r.Open, r.Encode, r.Encode/r.Seal, r.DecodeLoss*100, r.Decode, r.Decode/r.Open)
	line := func(name string, runs [2]TransferRun, note string) {
		fmt.Fprintf(w, "  %-22s without %6.2f Gbit/s   with FEC %6.2f Gbit/s   ratio %.3f, CPU per GB ratio %.3f %s\n",
			name, runs[0].Stream.Gbps(), runs[1].Stream.Gbps(), fecRatio(runs), fecCPURatio(runs), note)
		for i, run := range runs {
			f := run.Receiver.FEC
			fmt.Fprintf(w, "  %-22s   %-8s: %d of %d stream bytes delivered, %d packets lost, %d rebuilt, %d repair packets sent (%d skipped unopened), %.2f s CPU per GB\n",
				"", []string{"without", "with FEC"}[i], run.Stream.Bytes, run.Sent, run.Receiver.LostPackets, f.Recovered, run.Sender.FEC.RepairPackets, f.RepairSkipped, cpuPerByte(run))
		}
	}
	line(fmt.Sprintf("paced at %.1f Gbit/s", float64(FECRate)/1e9), r.Paced, "(stream data; the repair packets share the rate)")
	for i, runs := range r.Unpaced {
		line(fmt.Sprintf("unpaced, round %d", i+1), runs, "")
	}
	rs, cs := r.sorted(fecRatio), r.sorted(fecCPURatio)
	fmt.Fprintf(w, "  unpaced: median of the %d rounds' ratios %.3f (from %.3f to %.3f; target >= 0.8; sender and receiver share this machine's cores, so the ratio is the CPU FEC adds to both)\n",
		len(rs), r.UnpacedRatio(), rs[0], rs[len(rs)-1])
	fmt.Fprintf(w, "  unpaced: CPU per GB of stream data (sender and receiver) without / with FEC, median %.3f (from %.3f to %.3f)\n",
		r.UnpacedCPURatio(), cs[0], cs[len(cs)-1])
}

// fecParams returns params advertising fp.
func fecParams(params mquic.Params, fp fec.Params) mquic.Params {
	params.Extensions = append(slices.Clone(params.Extensions), mquic.Extension{ID: fec.ExtensionID, Value: fp.Value()})
	return params
}

// nopConn is a socket that is never used: it lets a sender be created to
// read its packet sizes.
type nopConn struct{ net.PacketConn }

func (nopConn) LocalAddr() net.Addr { return &net.UDPAddr{} }
