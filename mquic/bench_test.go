package mquic_test

import (
	"net/netip"
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// discardConn is a captureConn that keeps nothing.
type discardConn struct{ captureConn }

func (*discardConn) WriteBatch(pkts [][]byte, _ netip.AddrPort) (int, error) { return len(pkts), nil }

// BenchmarkPacketize measures the sender's per-packet work: framing,
// sealing and handing batches to the socket layer (here a no-op).
func BenchmarkPacketize(b *testing.B) { benchPacketize(b, testParams(b, mcasttest.Group())) }

// benchPacketize measures the sender's work per full packet of a session
// with params.
func benchPacketize(b *testing.B, params mquic.Params) {
	snd, err := runSender(b, &discardConn{}, mquic.SenderConfig{Params: params})
	if err != nil {
		b.Fatal(err)
	}
	defer snd.Close()
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		if err := st.WriteChunk(chunk); err != nil {
			b.Fatal(err)
		}
	}
	// The CPU of both goroutines (stream writer and Run), less sensitive
	// than the time to other load on a shared machine.
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkReceive measures the receiver's per-packet work: header checks,
// opening, replay window, frame parsing and in-order stream delivery.
func BenchmarkReceive(b *testing.B) {
	params := testParams(b, mcasttest.Group())
	pat := newPattern()
	const n = 4096
	pkts := capturedSession(b, params, pat, n*1100)
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1500)
	b.SetBytes(int64(len(pkts[1])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(pkts) {
			b.StopTimer()
			r, _ = mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}})
			i = 0
			b.StartTimer()
		}
		p := buf[:copy(buf, pkts[i])]
		r.HandlePacket(p, src)
		i++
	}
}

type nopHandler struct{}

func (nopHandler) OpenStream(*mquic.RecvStream) mquic.StreamHandler { return nopStream{} }

type nopStream struct{}

func (nopStream) Data(uint64, []byte)  {}
func (nopStream) Gap(uint64, uint64)   {}
func (nopStream) Finish(uint64)        {}
func (nopStream) Reset(uint64, uint64) {}

func TestPerPacketPathsAllocateNothing(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	snd, err := runSender(t, &discardConn{}, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	st, _ := snd.OpenStream()
	chunk := make([]byte, snd.MaxChunk())
	for range 100 { // warm up
		st.WriteChunk(chunk)
	}
	if a := testing.AllocsPerRun(2000, func() { st.WriteChunk(chunk) }); a != 0 {
		t.Errorf("sender: %v allocations per packet", a)
	}

	pkts := capturedSession(t, params, newPattern(), 3000*1100)
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: nopHandler{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts[:100] {
		r.HandlePacket(p, src)
	}
	i := 100
	if a := testing.AllocsPerRun(2000, func() { r.HandlePacket(pkts[i], src); i++ }); a != 0 {
		t.Errorf("receiver: %v allocations per packet", a)
	}
}
