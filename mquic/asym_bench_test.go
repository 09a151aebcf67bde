package mquic_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
)

// BenchmarkAsymPacketize is BenchmarkPacketize in an asymmetric session, with
// each digest algorithm: it adds hashing every packet and signing a manifest
// every 65 packets (33 with sha-256 digests), and sending each manifest
// twice.
func BenchmarkAsymPacketize(b *testing.B) {
	for _, dig := range digestAlgs {
		b.Run(dig.String(), func(b *testing.B) { benchmarkAsymPacketize(b, dig) })
	}
}

// digestAlgs are the digest algorithms the asymmetric benchmarks compare.
var digestAlgs = []manifest.DigestAlg{manifest.DigestSalted128, manifest.DigestSHA256}

func benchmarkAsymPacketize(b *testing.B, dig manifest.DigestAlg) {
	params, sc := asymParamsDigest(b, mcasttest.Group(), dig)
	snd, err := runSender(b, &discardConn{}, mquic.SenderConfig{Params: params, Manifests: sc})
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	for b.Loop() {
		if err := st.WriteChunk(chunk); err != nil {
			b.Fatal(err)
		}
	}
	m := snd.Stats().Manifests
	b.ReportMetric(float64(m.SignTime.Nanoseconds())/float64(m.Hashed), "sign-ns/pkt")
	b.ReportMetric(float64(m.HashTime.Nanoseconds())/float64(m.Hashed), "hash-ns/pkt")
}

// BenchmarkAsymReceive is BenchmarkReceive in an asymmetric session: each
// packet is hashed, held until its manifest arrives, and released; each
// manifest is verified once, its copy recognized.
func BenchmarkAsymReceive(b *testing.B) {
	params, sc := asymParams(b, mcasttest.Group())
	const n = 8192
	pkts := capturedAsymSession(b, params, sc, newPattern(), n*1100)
	newR := func() *mquic.Receiver { return benchReceiver(b, params) }
	r := newR()
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(pkts[1])))
	b.ReportAllocs()
	i := 0
	var verify time.Duration
	var authenticated uint64
	for b.Loop() {
		if i == len(pkts) {
			b.StopTimer()
			a := r.Stats().Auth
			verify += a.VerifyTime
			authenticated += a.Authenticated
			r = newR()
			i = 0
			b.StartTimer()
		}
		p := buf[:copy(buf, pkts[i])]
		r.HandlePacket(p, src)
		i++
	}
	a := r.Stats().Auth
	verify += a.VerifyTime
	authenticated += a.Authenticated
	if authenticated > 0 {
		b.ReportMetric(float64(verify.Nanoseconds())/float64(authenticated), "verify-ns/pkt")
	}
}

// loopbackRun is one transfer over loopback multicast.
type loopbackRun struct {
	elapsed  time.Duration
	bytes    int64
	snd      mquic.SenderStats
	rcv      mquic.ReceiverStats
	complete bool // every stream finished without gaps
}

func (r loopbackRun) gbps() float64 { return float64(r.bytes) * 8 / r.elapsed.Seconds() / 1e9 }

// transfer sends streams*size bytes at rate (0: unpaced) over loopback
// multicast, symmetric or asymmetric, and times it from the first write to
// the last stream finishing at the receiver.
func transfer(t testing.TB, asym bool, rate uint64, streams, size int) loopbackRun {
	t.Helper()
	group := mcasttest.Group()
	var params mquic.Params
	var sc *manifest.SignerConfig
	if asym {
		params, sc = asymParams(t, group)
	} else {
		params = testParams(t, group)
	}
	params.PeakFlowRate = rate
	pat := newPattern()
	col := newCollector(pat)
	rcv, err := mquic.NewReceiver(mcasttest.Receiver(t, group), mquic.ReceiverConfig{Params: params, Handler: col})
	if err != nil {
		t.Fatal(err)
	}
	stop := runReceiver(t, rcv)
	snd, err := runSender(t, mcasttest.Sender(t, group), mquic.SenderConfig{Params: params, Manifests: sc})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ids := sendStreams(t, snd, pat, streams, size)
	waitStreams(t, col, streams, 60*time.Second)
	run := loopbackRun{elapsed: time.Since(start), bytes: int64(streams * size), complete: true}
	snd.Close()
	stop()
	run.snd, run.rcv = snd.Stats(), rcv.Stats()
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, id := range ids {
		if l := col.streams[id]; !l.finished || !l.got.Contains(0, uint64(size)) {
			run.complete = false
		}
	}
	if len(col.errs) > 0 {
		t.Fatalf("wrong data: %v", col.errs[0])
	}
	return run
}

// compareModes runs symmetric and asymmetric transfers alternately, rounds
// times each, and reports the throughput ratio of the best runs and the
// per-packet authentication costs.
func compareModes(t testing.TB, rate uint64, rounds, streams, size int) (ratio float64, report string) {
	var best [2]loopbackRun
	for range rounds {
		for i, asym := range []bool{false, true} {
			r := transfer(t, asym, rate, streams, size)
			if !r.complete && rate != 0 {
				t.Fatalf("asym=%v: transfer at %d bit/s incomplete: %+v", asym, rate, r.rcv)
			}
			if best[i].elapsed == 0 || r.gbps() > best[i].gbps() {
				best[i] = r
			}
		}
	}
	sym, asy := best[0], best[1]
	m, a := asy.snd.Manifests, asy.rcv.Auth
	ratio = asy.gbps() / sym.gbps()
	report = fmt.Sprintf("rate %s: symmetric %.2f Gbit/s (%d packets, %d lost), asymmetric %.2f Gbit/s (%d packets, %d lost, %d expired); ratio %.3f; "+
		"sender hash %.2f µs/packet, sign %.2f µs/packet (%d manifests, %.1f µs each); receiver verify %.2f µs/packet (%d verifications, %.1f µs each)",
		rateName(rate), sym.gbps(), sym.snd.Packets, sym.rcv.LostPackets, asy.gbps(), asy.snd.Packets, asy.rcv.LostPackets, a.Expired, ratio,
		perPacket(m.HashTime, m.Hashed), perPacket(m.SignTime, m.Hashed), m.Manifests, perPacket(m.SignTime, m.Manifests),
		perPacket(a.VerifyTime, a.Authenticated), a.Verified, perPacket(a.VerifyTime, a.Verified))
	return ratio, report
}

func rateName(rate uint64) string {
	if rate == 0 {
		return "unpaced"
	}
	return fmt.Sprintf("%.1f Gbit/s", float64(rate)/1e9)
}

// TestAsymThroughput measures, in the same run, symmetric and asymmetric
// sessions over loopback multicast at the same paced rate (1 Gbit/s, the
// CI limit), and logs the throughput ratio and the per-packet signing and
// verification costs. It asserts only that both transfers complete:
// timings on a shared CI machine are not a pass/fail criterion.
// BenchmarkAsymThroughput measures the same at higher rates.
func TestAsymThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("throughput measurement")
	}
	ratio, report := compareModes(t, 1_000_000_000, 1, 8, 4<<20)
	t.Log(report)
	_ = ratio
}

// BenchmarkAsymThroughput compares symmetric and asymmetric throughput in
// the same run, paced at 2 Gbit/s and unpaced (where the receiver's CPU is
// the limit and loss may occur). Run with -benchtime=1x.
func BenchmarkAsymThroughput(b *testing.B) {
	for _, rate := range []uint64{2_000_000_000, 0} {
		b.Run(rateName(rate), func(b *testing.B) {
			var ratio float64
			var report string
			for b.Loop() {
				ratio, report = compareModes(b, rate, 3, 16, 4<<20)
			}
			b.Log(report)
			b.ReportMetric(ratio, "asym/sym")
		})
	}
}

// BenchmarkAsymRunPipeline is Run's receive path (reads of 256 packets,
// opened on two workers, signatures verified in batches, processed in
// order) in a symmetric session and in asymmetric ones of each digest
// algorithm, of the same stream data, and reports the process's CPU time
// per packet of each: the receiver's share of what asymmetric
// authentication costs.
func BenchmarkAsymRunPipeline(b *testing.B) {
	for _, dig := range append([]manifest.DigestAlg{0}, digestAlgs...) {
		asym := dig != 0
		params, pkts := capturedStreamDigest(b, dig, 24_000_000)
		name := "symmetric"
		if asym {
			name = "asymmetric-" + dig.String()
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(pkts[1])))
			cpu := pipelineCPU(b, params, pkts, func(st mquic.ReceiverStats) {
				if asym && st.Auth.RateLimited > 0 {
					b.Fatalf("%d manifests over the verification budget", st.Auth.RateLimited)
				}
			})
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
		})
	}
}

// pipelineCPU feeds b.N of pkts (over again from the first when they run
// out, to a fresh receiver) to Run's receive path in reads of 256 packets
// opened on two workers, and returns the process's CPU time; check sees
// each receiver's statistics.
func pipelineCPU(b *testing.B, params mquic.Params, pkts [][]byte, check func(mquic.ReceiverStats)) time.Duration {
	b.ReportAllocs()
	var cpu time.Duration
	done := 0
	for done < b.N {
		n := min(len(pkts), b.N-done)
		c0 := cpuTime()
		st := receivePipelined(b, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}, Workers: 2}, batched(pkts[:n], 256))
		cpu += cpuTime() - c0
		check(st)
		done += n
	}
	return cpu
}

// cpuTime is the user and system time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// capturedStream returns the packets of one stream of size bytes sent in a
// symmetric or an asymmetric session, and the session's parameters.
func capturedStream(t testing.TB, asym bool, size int) (mquic.Params, [][]byte) {
	t.Helper()
	var dig manifest.DigestAlg
	if asym {
		dig = manifest.DefaultDigestAlg
	}
	return capturedStreamDigest(t, dig, size)
}

// capturedStreamDigest is capturedStream in a session whose manifests list
// digests of algorithm dig (0: a symmetric session).
func capturedStreamDigest(t testing.TB, dig manifest.DigestAlg, size int) (mquic.Params, [][]byte) {
	t.Helper()
	params, sc := testParams(t, mcasttest.Group()), (*manifest.SignerConfig)(nil)
	if dig != 0 {
		params, sc = asymParamsDigest(t, mcasttest.Group(), dig)
	}
	cc := &captureConn{}
	snd, err := runSender(t, cc, mquic.SenderConfig{Params: params, Manifests: sc})
	if err != nil {
		t.Fatal(err)
	}
	sendStreams(t, snd, newPattern(), 1, size)
	snd.Close()
	return params, cc.Packets()
}

// benchReceiver is a receiver of params that discards what it receives,
// for benchmarks that feed it captured packets with HandlePacket.
func benchReceiver(b *testing.B, params mquic.Params) *mquic.Receiver {
	b.Helper()
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}})
	if err != nil {
		b.Fatal(err)
	}
	return r
}
