package bench

import (
	"context"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// Benchmarks of single phases of h3m bench, for CPU profiles
// (-benchtime=1x -cpuprofile), and of what bounds them.

// loopbackGSO is h3m bench's default setting: 1200-byte packets, GSO and
// GRO on loopback, AES-128-GCM, 2 s phases.
func loopbackGSO() Options {
	return Options{PacketSize: 1200, GSO: true, GRO: true, Suite: protect.SuiteAES128GCM, Interface: "lo",
		Group: mcasttest.Group(), Source: netip.MustParseAddr("127.0.0.1"), Duration: 2 * time.Second}
}

// BenchmarkAsymUnpaced runs the unpaced phase of the asymmetric comparison
// (h3m bench --what asym) for each mode on its own, so that a CPU profile
// shows one mode: run with -benchtime=1x and -cpuprofile.
func BenchmarkAsymUnpaced(b *testing.B) {
	for _, asym := range []bool{false, true} {
		b.Run(mode(asym), func(b *testing.B) {
			o := loopbackGSO()
			var run AsymRun
			for b.Loop() {
				var err error
				if run, err = o.asymTransfer(context.Background(), o.Group.Port(), asym, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("sent %d, delivered %d, packets %d, lost %d, auth %+v", run.Sent, run.Stream.Bytes, run.Receiver.Packets, run.Receiver.LostPackets, run.Receiver.Auth)
			b.ReportMetric(run.Stream.Gbps(), "Gbit/s")
			b.ReportMetric(float64(run.CPU.Nanoseconds())/float64(max(run.Receiver.Packets, 1)), "cpu-ns/pkt")
		})
	}
}

// BenchmarkHTTPLarge runs the stream phase and the 32 MiB pushes of the
// HTTP comparison (h3m bench --what http) one at a time, so that a CPU
// profile shows one of them, and reports each one's rate and CPU per byte
// (sender and receiver). Run with -benchtime=1x.
func BenchmarkHTTPLarge(b *testing.B) {
	o := loopbackGSO()
	run := func(b *testing.B, phase func() (Rate, error)) {
		var r Rate
		var cpu time.Duration
		for b.Loop() {
			c0 := processCPU()
			var err error
			if r, err = phase(); err != nil {
				b.Fatal(err)
			}
			cpu = processCPU() - c0
		}
		b.ReportMetric(r.Gbps(), "Gbit/s")
		b.ReportMetric(cpu.Seconds()/(float64(r.Bytes)/1e9), "cpu-s/GB")
	}
	b.Run("stream", func(b *testing.B) {
		run(b, func() (Rate, error) {
			_, _, s, err := o.streamPhase(context.Background(), o.Group.Port())
			return s, err
		})
	})
	b.Run("push", func(b *testing.B) {
		run(b, func() (Rate, error) { return o.largePushes(context.Background(), o.Group.Port()+1, 32<<20) })
	})
}

// BenchmarkCryptoCeiling measures, in one run, what bounds the loopback
// GSO→GRO mquic/raw-UDP ratio on this machine: the raw-UDP baseline (its
// rate and the CPU it takes per datagram, sender and receiver), the mquic
// stream phase, and one core's time to seal and to open a 1200-byte packet
// with AES-128-GCM and header protection. From them it reports the rate
// mquic could reach on the machine's cores if it did nothing but the raw
// baseline's socket work plus the crypto (ceiling-ratio), and if it did
// nothing but crypto (crypto-only-Mpps). Run with -benchtime=1x; rounds
// alternate the phases and the best of each is kept.
func BenchmarkCryptoCeiling(b *testing.B) {
	o := loopbackGSO()
	const rounds = 3
	var raw, stream Rate
	// CPU seconds per raw datagram and per mquic packet received, the
	// least of the rounds.
	var rawCPU, mquicCPU float64
	seal, open, hp := time.Duration(1<<62), time.Duration(1<<62), time.Duration(1<<62)
	for b.Loop() {
		for round := range rounds {
			port := o.Group.Port() + uint16(2*round)
			c0 := processCPU()
			_, rr, err := o.rawPhase(context.Background(), port)
			if err != nil {
				b.Fatal(err)
			}
			c := (processCPU() - c0).Seconds() / float64(max(rr.Packets, 1))
			if rawCPU == 0 || c < rawCPU {
				rawCPU = c
			}
			if rr.PPS() > raw.PPS() {
				raw = rr
			}
			c0 = processCPU()
			_, _, st, err := o.streamPhase(context.Background(), port+1)
			if err != nil {
				b.Fatal(err)
			}
			c = (processCPU() - c0).Seconds() / float64(max(st.Packets, 1))
			if mquicCPU == 0 || c < mquicCPU {
				mquicCPU = c
			}
			if st.PPS() > stream.PPS() {
				stream = st
			}
			s, op, h := cryptoCost(b, o, port)
			seal, open, hp = min(seal, s), min(open, op), min(hp, h)
		}
	}
	cores := float64(runtime.GOMAXPROCS(0))
	crypto := (seal + open).Seconds()
	b.ReportMetric(raw.PPS()/1e6, "raw-Mpps")
	b.ReportMetric(rawCPU*1e9, "raw-cpu-ns/pkt")
	b.ReportMetric(stream.PPS()/1e6, "mquic-Mpps")
	b.ReportMetric(stream.PPS()/raw.PPS(), "mquic/raw")
	b.ReportMetric(mquicCPU*1e9, "mquic-cpu-ns/pkt")
	b.ReportMetric(float64(seal.Nanoseconds()), "seal-ns")
	b.ReportMetric(float64(open.Nanoseconds()), "open-ns")
	b.ReportMetric(float64(hp.Nanoseconds()), "hp-ns")
	b.ReportMetric(cores/crypto/1e6, "crypto-only-Mpps")
	b.ReportMetric(min(1, cores/crypto/raw.PPS()), "crypto-only-ratio")
	// The raw baseline's socket work plus the crypto, with every core
	// busy, against the raw rate.
	ceiling := min(1, cores/(rawCPU+crypto)/raw.PPS())
	b.ReportMetric(ceiling, "ceiling-ratio")
	b.Logf("raw UDP %.2f Mpps at %.0f ns CPU per datagram; mquic %.2f Mpps (ratio %.2f) at %.0f ns per packet; seal %v, open %v (header protection %v each) per 1200-byte packet; "+
		"crypto alone on %.0f cores: %.2f Mpps (ratio at most %.2f); the raw baseline's work plus crypto on every core: ratio at most %.2f",
		raw.PPS()/1e6, rawCPU*1e9, stream.PPS()/1e6, stream.PPS()/raw.PPS(), mquicCPU*1e9, seal, open, hp, cores, cores/crypto/1e6, min(1, cores/crypto/raw.PPS()), ceiling)
}

// cryptoCost times, on one goroutine, sealing and opening a 1200-byte
// packet of the session o.params(port) describes, and header protection
// alone, each the least per packet over a few repetitions.
func cryptoCost(b *testing.B, o Options, port uint16) (seal, open, hp time.Duration) {
	params := o.params(port)
	prot, err := params.Protector()
	if err != nil {
		b.Fatal(err)
	}
	pnOff, pnLen := 1+len(params.SessionID), 4
	payload := o.PacketSize - pnOff - pnLen - prot.Overhead()
	const n = 20000
	buf := make([]byte, 0, o.PacketSize)
	pkts := make([][]byte, 64)
	for i := range pkts {
		pkt := wire.AppendShortHeader(make([]byte, 0, o.PacketSize), params.SessionID, uint64(i), pnLen)
		pkts[i] = prot.Seal(pkt[:len(pkt)+payload], pnOff, uint64(i))
	}
	work := make([]byte, o.PacketSize)
	seal, open, hp = 1<<62, 1<<62, 1<<62
	for range 3 {
		t0 := time.Now()
		for i := range n {
			pkt := wire.AppendShortHeader(buf[:0], params.SessionID, uint64(i), pnLen)
			prot.Seal(pkt[:len(pkt)+payload], pnOff, uint64(i))
		}
		seal = min(seal, time.Since(t0)/n)
		t0 = time.Now()
		for i := range n {
			p := work[:copy(work, pkts[i%len(pkts)])]
			if _, _, err := prot.Open(p, pnOff, pnLen, uint64(i%len(pkts)), true); err != nil {
				b.Fatal(err)
			}
		}
		open = min(open, time.Since(t0)/n)
		p := work[:copy(work, pkts[0])]
		t0 = time.Now()
		for range n {
			copy(p[:pnOff+pnLen], pkts[0]) // the header as sealed
			if _, err := prot.Unmask(p, pnOff, pnLen); err != nil {
				b.Fatal(err)
			}
		}
		hp = min(hp, time.Since(t0)/n)
	}
	return seal, open, hp
}
