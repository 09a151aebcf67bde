package mquic_test

import (
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// fecModes are the sessions the FEC benchmarks compare: without FEC and
// with 5 % repair packets over blocks of the default size.
var fecModes = []struct {
	name string
	fec  bool
}{{"nofec", false}, {"fec5", true}}

func fecBenchParams(b *testing.B, withFEC bool) mquic.Params {
	if withFEC {
		return fecParams(b, mcasttest.Group(), 0.05, 0)
	}
	return testParams(b, mcasttest.Group())
}

// BenchmarkFECPacketize is the sender's CPU per full packet without and
// with FEC (repair packets included), sockets left out.
func BenchmarkFECPacketize(b *testing.B) {
	for _, m := range fecModes {
		b.Run(m.name, func(b *testing.B) { benchPacketize(b, fecBenchParams(b, m.fec)) })
	}
}

// BenchmarkFECReceive is the receiver's CPU per packet read without and
// with FEC, repair packets included, nothing lost, sockets left out: the
// cost of keeping every payload for the decoder.
func BenchmarkFECReceive(b *testing.B) {
	for _, m := range fecModes {
		b.Run(m.name, func(b *testing.B) {
			params := fecBenchParams(b, m.fec)
			pkts := capturedSession(b, params, newPattern(), 8000*1100)
			newR := func() *mquic.Receiver { return benchReceiver(b, params) }
			r := newR()
			buf := make([]byte, 1500)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(pkts) {
					b.StopTimer()
					r, i = newR(), 0
					b.StartTimer()
				}
				r.HandlePacket(buf[:copy(buf, pkts[i])], src)
				i++
			}
		})
	}
}

// countingStreams counts stream bytes delivered.
type countingStreams struct{ bytes atomic.Int64 }

func (c *countingStreams) OpenStream(*mquic.RecvStream) mquic.StreamHandler { return c }
func (c *countingStreams) Data(_ uint64, p []byte)                          { c.bytes.Add(int64(len(p))) }
func (c *countingStreams) Gap(uint64, uint64)                               {}
func (c *countingStreams) Finish(uint64)                                    {}
func (c *countingStreams) Reset(uint64, uint64)                             {}

// BenchmarkFECTransfer sends one stream over loopback multicast, unpaced
// and paced at 1 Gbit/s, sender and receiver in this process, without and
// with FEC: what `h3m bench --what fec` compares, in a form -cpuprofile can
// take apart. It reports the stream bytes delivered per second, the
// process's CPU per GB delivered, loss (when the receiver fell behind its
// socket) and packets per write.
func BenchmarkFECTransfer(b *testing.B) {
	for _, pace := range []struct {
		name string
		rate uint64
	}{{"unpaced", 0}, {"1gbps", 1_000_000_000}} {
		for _, m := range fecModes {
			b.Run(pace.name+"/"+m.name, func(b *testing.B) { benchFECTransfer(b, pace.rate, m.fec) })
		}
	}
}

func benchFECTransfer(b *testing.B, rate uint64, withFEC bool) {
	group := mcasttest.Group()
	params := fecBenchParams(b, withFEC)
	params.Group, params.PeakFlowRate = group, rate
	h := &countingStreams{}
	rcv, err := mquic.NewReceiver(mcasttest.Receiver(b, group), mquic.ReceiverConfig{Params: params, Handler: h})
	if err != nil {
		b.Fatal(err)
	}
	stop := runReceiver(b, rcv)
	snd, err := runSender(b, mcasttest.Sender(b, group), mquic.SenderConfig{Params: params})
	if err != nil {
		b.Fatal(err)
	}
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	b.SetBytes(int64(len(chunk)))
	cpu0 := processCPU()
	start := time.Now()
	for b.Loop() {
		if err := st.WriteChunk(chunk); err != nil {
			b.Fatal(err)
		}
	}
	snd.Flush()
	snd.Close()
	for last := int64(-1); h.bytes.Load() != last; {
		last = h.bytes.Load()
		time.Sleep(50 * time.Millisecond)
	}
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	stop()
	rs := rcv.Stats()
	b.ReportMetric(float64(h.bytes.Load())*8/elapsed.Seconds()/1e9, "delivered-Gbit/s")
	b.ReportMetric(float64(rs.LostPackets), "lost")
	ss := snd.Stats()
	b.ReportMetric(float64(ss.Packets)/float64(max(ss.Writes, 1)), "pkts/write")
	b.ReportMetric(cpu.Seconds()*1e9/float64(max(h.bytes.Load(), 1)), "cpu-s/GB")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
