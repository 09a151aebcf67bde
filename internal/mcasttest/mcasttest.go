// Package mcasttest gives tests real multicast sockets on loopback and a
// loss-injecting wrapper for them. Every socket it opens sends on interface
// lo with TTL 1: test traffic never leaves the host.
package mcasttest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/wire"
)

// Source is the SSM source address of loopback test sessions.
var Source = netip.MustParseAddr("127.0.0.1")

// Group returns a random SSM group on a random port, so that tests running
// in parallel (or in other packages at the same time) do not hear each
// other.
func Group() netip.AddrPort {
	a := netip.AddrFrom4([4]byte{232, byte(rand.IntN(250) + 1), byte(rand.IntN(256)), byte(rand.IntN(250) + 1)})
	// Below Linux's ephemeral ports (32768 and up): a receiver binds the
	// group's address and port, which fails while any socket of a test
	// running beside it (a QUIC client, say) has the same port on the
	// wildcard address.
	return netip.AddrPortFrom(a, uint16(10000+rand.IntN(22000)))
}

// Sender opens a multicast sender socket on lo for group.
func Sender(t testing.TB, group netip.AddrPort, opts ...func(*mcast.Config)) *mcast.Conn {
	t.Helper()
	cfg := mcast.Config{Group: group, Source: Source, Interface: "lo", TTL: 1}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := mcast.ListenSender(cfg)
	if err != nil {
		t.Fatalf("multicast sender on lo: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Receiver opens a multicast receiver socket on lo joined to (Source, group).
func Receiver(t testing.TB, group netip.AddrPort, opts ...func(*mcast.Config)) *mcast.Conn {
	t.Helper()
	// A deep buffer absorbs the scheduling stalls of a loaded 2-core CI
	// machine running several test packages at once.
	cfg := mcast.Config{Group: group, Source: Source, Interface: "lo", RecvBuffer: 64 << 20}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := mcast.ListenReceiver(cfg)
	if err != nil {
		t.Fatalf("multicast receiver on lo: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Lossy wraps a sender socket and drops a random fraction of the packets
// written through it, keeping a copy of each dropped packet so tests can
// check that the receiver reports exactly what was lost.
type Lossy struct {
	*mcast.Conn
	mu      sync.Mutex
	rng     *rand.Rand
	rate    float64
	keep    [][]byte // reused batch
	dropped [][]byte
	drop    func(pkt []byte) bool
	sent    int
	// count only: dropped packets are counted, not kept (long runs).
	countOnly                 bool
	droppedPkts, droppedBytes int
}

// NewLossy drops each packet with probability rate, reproducibly from seed.
func NewLossy(c *mcast.Conn, rate float64, seed uint64) *Lossy {
	return &Lossy{Conn: c, rate: rate, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// CountOnly makes the wrapper count the packets it drops (DroppedCount)
// instead of keeping copies (Dropped), for runs too long to keep them.
func (l *Lossy) CountOnly() {
	l.mu.Lock()
	l.countOnly = true
	l.mu.Unlock()
}

// DroppedCount returns how many packets were dropped, and their bytes.
func (l *Lossy) DroppedCount() (pkts, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.droppedPkts, l.droppedBytes
}

// keepDroppedLocked records a dropped packet.
func (l *Lossy) keepDroppedLocked(p []byte) {
	l.droppedPkts++
	l.droppedBytes += len(p)
	if !l.countOnly {
		l.dropped = append(l.dropped, append([]byte(nil), p...))
	}
}

// DropIf replaces the random choice: packets for which f returns true are
// dropped.
func (l *Lossy) DropIf(f func(pkt []byte) bool) {
	l.mu.Lock()
	l.drop = f
	l.mu.Unlock()
}

// SetRate changes the drop probability.
func (l *Lossy) SetRate(rate float64) {
	l.mu.Lock()
	l.rate = rate
	l.mu.Unlock()
}

func (l *Lossy) dropLocked(p []byte) bool {
	if l.drop != nil {
		return l.drop(p)
	}
	return l.rate > 0 && l.rng.Float64() < l.rate
}

// WriteBatch implements mcast.BatchWriter, dropping some packets.
func (l *Lossy) WriteBatch(pkts [][]byte, dst netip.AddrPort) (int, error) {
	l.mu.Lock()
	l.keep = l.keep[:0]
	for _, p := range pkts {
		if l.dropLocked(p) {
			l.keepDroppedLocked(p)
			continue
		}
		l.keep = append(l.keep, p)
	}
	keep := l.keep
	l.sent += len(keep)
	l.mu.Unlock()
	for len(keep) > 0 {
		n, err := l.Conn.WriteBatch(keep, dst)
		if err != nil {
			return 0, err
		}
		keep = keep[n:]
	}
	return len(pkts), nil
}

// WriteTo implements net.PacketConn, dropping some packets.
func (l *Lossy) WriteTo(p []byte, addr net.Addr) (int, error) {
	l.mu.Lock()
	if l.dropLocked(p) {
		l.keepDroppedLocked(p)
		l.mu.Unlock()
		return len(p), nil
	}
	l.sent++
	l.mu.Unlock()
	return l.Conn.WriteTo(p, addr)
}

// Dropped returns copies of the packets dropped so far.
func (l *Lossy) Dropped() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([][]byte(nil), l.dropped...)
}

// Sent is how many packets went through.
func (l *Lossy) Sent() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

// String describes the loss so far.
func (l *Lossy) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d sent, %d dropped", l.sent, l.droppedPkts)
}

// RunSender creates a sender with mquic.NewSender and runs it (Sender.Run)
// on a goroutine until Close or the end of the test, whose cleanup waits
// for Run to return.
func RunSender(t testing.TB, conn net.PacketConn, cfg mquic.SenderConfig) (*mquic.Sender, error) {
	s, err := mquic.NewSender(conn, cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("sender: %v", err)
		}
	})
	return s, nil
}

// StreamFrames opens pkt, a packet of the session params sent, and calls f
// for each of its STREAM frames.
func StreamFrames(t testing.TB, params mquic.Params, pkt []byte, f func(sf wire.StreamFrame)) {
	t.Helper()
	prot, err := params.Protector()
	if err != nil {
		t.Fatal(err)
	}
	_, payload, err := prot.Open(bytes.Clone(pkt), 1+len(params.SessionID), params.PNLen(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	var fr wire.Frame
	for len(payload) > 0 {
		n, err := wire.ParseFrame(payload, &fr)
		if err != nil {
			t.Fatal(err)
		}
		payload = payload[n:]
		if fr.Type.IsStream() {
			f(fr.Stream)
		}
	}
}
