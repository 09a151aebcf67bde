//go:build linux

package mcast

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// pair opens a sender and an (S,G) receiver on lo with the given features.
func pair(tb testing.TB, gso, gro bool) (snd, rcv *Conn) {
	g := testGroup()
	rcfg := lo(tb, g)
	rcfg.Source = loopback
	rcfg.DisableGRO = !gro
	rcfg.Logger = slog.New(slog.DiscardHandler)
	scfg := lo(tb, g)
	scfg.Source = loopback
	scfg.DisableGSO = !gso
	scfg.Logger = slog.New(slog.DiscardHandler)
	rcv = mustReceiver(tb, rcfg)
	snd = mustSender(tb, scfg)
	return snd, rcv
}

func batchOf(n, size int) [][]byte {
	pkts := make([][]byte, n)
	for i := range pkts {
		pkts[i] = make([]byte, size)
		fillPacket(pkts[i], uint64(i))
	}
	return pkts
}

func readMsgs(n, size int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

// readN reads until n datagrams arrived.
func readN(tb testing.TB, rcv *Conn, msgs []Message, n int) {
	for got := 0; got < n; {
		k, err := rcv.ReadBatch(msgs)
		if err != nil {
			tb.Fatalf("ReadBatch after %d of %d: %v", got, n, err)
		}
		for i := range msgs[:k] {
			got += msgs[i].Count()
		}
	}
}

// TestBatchAllocs asserts that steady-state WriteBatch and ReadBatch
// allocate nothing, with and without GSO/GRO.
func TestBatchAllocs(t *testing.T) {
	for _, mode := range []struct{ gso, gro bool }{{true, true}, {false, false}} {
		t.Run(fmt.Sprintf("gso=%v,gro=%v", mode.gso, mode.gro), func(t *testing.T) {
			snd, rcv := pair(t, mode.gso, mode.gro)
			pkts := batchOf(64, 1200)
			msgs := readMsgs(16, GROBufferSize)
			g := snd.Group()
			rcv.SetReadDeadline(time.Now().Add(5 * time.Second))
			var err error
			roundTrip := func() {
				if _, err = snd.WriteBatch(pkts, g); err != nil {
					return
				}
				readN(t, rcv, msgs, len(pkts))
			}
			if a := testing.AllocsPerRun(50, roundTrip); a != 0 || err != nil {
				t.Errorf("WriteBatch+ReadBatch: %v allocs per run (err %v)", a, err)
			}
			if a := testing.AllocsPerRun(50, func() { _, err = snd.WriteBatch(pkts, g) }); a != 0 || err != nil {
				t.Errorf("WriteBatch: %v allocs per run (err %v)", a, err)
			}
		})
	}
}

// BenchmarkWriteBatch measures sending 64 × 1200-byte datagrams to a group
// on lo that one receiver has joined (the receiver does not read, so the
// kernel drops at its buffer; the cost measured is the sender's).
func BenchmarkWriteBatch(b *testing.B) {
	for _, gso := range []bool{true, false} {
		b.Run(fmt.Sprintf("gso=%v", gso), func(b *testing.B) {
			snd, _ := pair(b, gso, false)
			pkts := batchOf(64, 1200)
			g := snd.Group()
			b.ReportAllocs()
			b.SetBytes(64 * 1200)
			for b.Loop() {
				if _, err := snd.WriteBatch(pkts, g); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/pkt")
		})
	}
}

// BenchmarkReadBatch measures receiving 64 × 1200-byte datagrams; the
// sending happens with the timer stopped.
func BenchmarkReadBatch(b *testing.B) {
	for _, mode := range []struct{ gso, gro bool }{{true, true}, {true, false}, {false, false}} {
		b.Run(fmt.Sprintf("gso=%v,gro=%v", mode.gso, mode.gro), func(b *testing.B) {
			snd, rcv := pair(b, mode.gso, mode.gro)
			pkts := batchOf(64, 1200)
			size := 1500
			if mode.gro {
				size = GROBufferSize
			}
			msgs := readMsgs(64, size)
			g := snd.Group()
			b.ReportAllocs()
			b.SetBytes(64 * 1200)
			for b.Loop() {
				b.StopTimer()
				if _, err := snd.WriteBatch(pkts, g); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				readN(b, rcv, msgs, len(pkts))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/pkt")
		})
	}
}

// BenchmarkXNetReadBatch is the x/net ipv4.PacketConn.ReadBatch comparison
// for BenchmarkReadBatch (it allocates the source address of every message).
func BenchmarkXNetReadBatch(b *testing.B) {
	snd, rcv := pair(b, false, false)
	pc := ipv4.NewPacketConn(rcv.uc)
	pkts := batchOf(64, 1200)
	ms := make([]ipv4.Message, 64)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 1500)}
	}
	g := snd.Group()
	b.ReportAllocs()
	b.SetBytes(64 * 1200)
	for b.Loop() {
		b.StopTimer()
		if _, err := snd.WriteBatch(pkts, g); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for got := 0; got < len(pkts); {
			n, err := pc.ReadBatch(ms, 0)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/pkt")
}
