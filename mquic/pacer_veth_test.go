//go:build linux

package mquic_test

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/netns"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
)

// byteCounter counts the stream bytes delivered.
type byteCounter struct{ n atomic.Uint64 }

func (c *byteCounter) OpenStream(*mquic.RecvStream) mquic.StreamHandler { return c }
func (c *byteCounter) Data(_ uint64, p []byte)                          { c.n.Add(uint64(len(p))) }
func (c *byteCounter) Gap(uint64, uint64)                               {}
func (c *byteCounter) Finish(uint64)                                    {}
func (c *byteCounter) Reset(uint64, uint64)                             {}

// TestPacerOnVeth sends paced streams from one network namespace to another
// over a veth pair and checks the rate the sender achieves against the one
// set, with bounds a loaded machine cannot break:
//   - never above the rate: over every stretch between two writes, the bytes
//     written stay within rate × time + the pacer's catch-up + one write;
//   - never below it but for what is accounted: bytes × 8 / rate equals the
//     time from the start of Run to the last write less PaceLost (time the
//     writer had nothing to send, or woke later than it may catch up)
//     within the catch-up; on a quiet machine PaceLost is ~0 and the
//     achieved rate is the set rate within 1 %;
//   - every stream byte written arrives.
func TestPacerOnVeth(t *testing.T) {
	a, b := netns.New(t, "pace-s"), netns.New(t, "pace-r")
	ifA, ifB := netns.Veth(t, a, b, netip.MustParsePrefix("10.251.0.1/24"), netip.MustParsePrefix("10.251.0.2/24"))
	source := netip.MustParseAddr("10.251.0.1")
	for i, rate := range []uint64{100_000_000, 400_000_000, 1_000_000_000} {
		group := netip.AddrPortFrom(netip.MustParseAddr("232.251.0.1"), uint16(5400+i))
		params := mquic.Params{Group: group, Source: source, SessionID: []byte{9, 8, 7, 6},
			CipherSuite: protect.SuiteAES128GCM, Secret: make([]byte, 32), PeakFlowRate: rate}
		var rconn, sconn *mcast.Conn
		if err := b.Do(func() (err error) {
			rconn, err = mcast.ListenReceiver(mcast.Config{Group: group, Source: source, Interface: ifB, RecvBuffer: 32 << 20})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := a.Do(func() (err error) {
			sconn, err = mcast.ListenSender(mcast.Config{Group: group, Source: source, Interface: ifA, TTL: 1})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got := &byteCounter{}
		rcv, err := mquic.NewReceiver(rconn, mquic.ReceiverConfig{Params: params, Handler: got})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		rdone := make(chan error, 1)
		go func() { rdone <- rcv.Run(ctx) }()

		snd, err := mquic.NewSender(sconn, mquic.SenderConfig{Params: params, KeepAlive: -1})
		if err != nil {
			t.Fatal(err)
		}
		type write struct {
			at    time.Time
			bytes int
			lost  time.Duration // schedule given up before it
		}
		var writes []write
		snd.OnWrite(func(at time.Time, n int, lost time.Duration) { writes = append(writes, write{at, n, lost}) })
		sdone := make(chan error, 1)
		go func() { sdone <- snd.Run(ctx) }()
		st, _ := snd.OpenStream()
		chunk := make([]byte, snd.MaxChunk())
		total := int(rate / 8 * 3 / 10) // 0.3 s at the rate
		for sent := 0; sent < total; sent += len(chunk) {
			if err := st.WriteChunk(chunk); err != nil {
				t.Fatal(err)
			}
		}
		st.Close()
		if err := snd.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-sdone; err != nil {
			t.Fatal(err)
		}
		ss := snd.Stats()
		streamBytes := ss.StreamBytes
		for got.n.Load() < streamBytes && rcv.Stats().LostPackets == 0 {
			time.Sleep(time.Millisecond) // until delivered (or a loss shows)
		}
		cancel()
		<-rdone
		sconn.Close()
		rconn.Close()

		nsPerByte := 8e9 / float64(rate)
		burst := float64(mquic.PaceCatchUp(rate, mquic.BatchPackets(rate, mquic.DefaultMaxPacketSize, mquic.DefaultBatchSize)*mquic.DefaultMaxPacketSize))
		maxWrite := 0
		for _, w := range writes {
			maxWrite = max(maxWrite, w.bytes)
		}
		for i := range writes {
			bytes := 0
			for j := i; j < len(writes); j++ {
				bytes += writes[j].bytes
				window := float64(writes[j].at.Sub(writes[i].at))
				if float64(bytes)*nsPerByte > window+burst+float64(writes[j].bytes)*nsPerByte {
					t.Fatalf("rate %d: writes %d..%d: %d bytes in %v, above rate × time + burst + one write", rate, i, j, bytes, time.Duration(window))
				}
			}
		}
		// From the first write to the last, the schedule paid for by the
		// bytes written (all but the last write's) is the time passed less
		// what was given up, within the catch-up.
		first, last := writes[0], writes[len(writes)-1]
		elapsed := last.at.Sub(first.at)
		lost := last.lost - first.lost
		paid := float64(int(ss.Bytes)-last.bytes) * nsPerByte
		if d := float64(elapsed-lost) - paid; d < -burst || d > burst {
			t.Fatalf("rate %d: %v from the first write to the last, %v lost, but %v of schedule paid for", rate, elapsed, lost, time.Duration(paid))
		}
		if got.n.Load() != streamBytes {
			st := rcv.Stats()
			t.Errorf("rate %d: %d of %d stream bytes arrived (%d packets lost)", rate, got.n.Load(), streamBytes, st.LostPackets)
		}
		achieved := float64(ss.Bytes-uint64(last.bytes)) * 8 / (float64(last.at.Sub(writes[0].at)) / 1e9)
		t.Logf("set %4d Mbit/s, achieved %7.2f Mbit/s (%.4f of the rate) over %v; %v of schedule lost (idle or late), %d writes",
			rate/1e6, achieved/1e6, achieved/float64(rate), elapsed.Round(time.Millisecond), lost, len(writes))
	}
}
