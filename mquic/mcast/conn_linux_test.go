//go:build linux

package mcast

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mixedSize gives runs of equal sizes, a shorter packet ending a run, and a
// larger packet starting one: every way build can split a batch.
func mixedSize(seq uint64) int {
	switch r := seq % 23; {
	case r <= 9:
		return 1200
	case r == 10:
		return 1000
	case r <= 15:
		return 500
	case r == 16:
		return 1400
	case r <= 20:
		return 64
	case r == 21:
		return 8
	default:
		return 1200
	}
}

type seqResult struct {
	received   uint64
	coalesced  uint64 // messages with SegSize > 0
	truncated  uint64
	firstError error
}

// runSequence sends total datagrams with WriteBatch in batches of random
// length and checks on the receiver that each arrives exactly once, in order
// and byte-exact.
func runSequence(t *testing.T, snd, rcv *Conn, total uint64, size func(uint64) int) seqResult {
	t.Helper()
	var received atomic.Uint64
	done := make(chan seqResult, 1)
	go func() {
		var res seqResult
		defer func() { res.received = received.Load(); done <- res }()
		msgs := make([]Message, 16)
		for i := range msgs {
			msgs[i].Buf = make([]byte, GROBufferSize)
		}
		var next uint64
		for next < total {
			n, err := rcv.ReadBatch(msgs)
			if err != nil {
				res.firstError = fmt.Errorf("ReadBatch after %d datagrams: %w", next, err)
				return
			}
			for i := range msgs[:n] {
				m := &msgs[i]
				if m.SegSize > 0 {
					res.coalesced++
				}
				if m.Truncated {
					res.truncated++
				}
				if m.Src.Addr() != snd.Source() || m.Src.Port() != uint16(snd.LocalAddr().(*net.UDPAddr).Port) {
					res.firstError = fmt.Errorf("datagram from %v, want %v", m.Src, snd.LocalAddr())
					return
				}
				m.Datagrams(func(p []byte) {
					if res.firstError != nil {
						return
					}
					if len(p) < 8 {
						res.firstError = fmt.Errorf("datagram of %d bytes, want seq %d of %d bytes", len(p), next, size(next))
						return
					}
					seq := binary.BigEndian.Uint64(p)
					if seq != next {
						res.firstError = fmt.Errorf("got seq %d, want %d (order or loss)", seq, next)
						return
					}
					if !checkPacket(p, seq, size(seq)) {
						res.firstError = fmt.Errorf("seq %d: %d bytes, content differs (want %d bytes)", seq, len(p), size(seq))
						return
					}
					next++
					received.Store(next)
				})
				if res.firstError != nil {
					return
				}
			}
		}
	}()

	bufs := make([][]byte, 256)
	for i := range bufs {
		bufs[i] = make([]byte, 1500)
	}
	pkts := make([][]byte, 0, len(bufs))
	dst := rcv.Group()
	deadline := time.Now().Add(5 * time.Second)
	for seq := uint64(0); seq < total; {
		// Keep the sender at most a few thousand datagrams ahead so the
		// test checks the code, not the machine's scheduling.
		for seq-received.Load() > 3000 {
			if time.Now().After(deadline) {
				t.Fatalf("receiver stalled at %d of %d sent", received.Load(), seq)
			}
			time.Sleep(100 * time.Microsecond)
		}
		k := min(uint64(1+rand.IntN(len(bufs))), total-seq)
		pkts = pkts[:0]
		for i := range k {
			b := bufs[i][:size(seq+i)]
			fillPacket(b, seq+i)
			pkts = append(pkts, b)
		}
		n, err := snd.WriteBatch(pkts, dst)
		if err != nil || n != len(pkts) {
			t.Fatalf("WriteBatch(%d packets) = %d, %v", len(pkts), n, err)
		}
		seq += k
	}
	select {
	case res := <-done:
		if res.firstError != nil {
			t.Fatal(res.firstError)
		}
		return res
	case <-time.After(time.Until(deadline)):
		rcv.SetReadDeadline(time.Now())
		res := <-done
		t.Fatalf("received %d of %d datagrams in time (err %v)", res.received, total, res.firstError)
		return res
	}
}

func TestSSMv4Sequence(t *testing.T) {
	const total = 10000
	fixed := func(uint64) int { return 1200 }
	for _, tc := range []struct {
		name     string
		gso, gro bool
		size     func(uint64) int
	}{
		{"gso-gro", true, true, fixed},
		{"gso-nogro", true, false, fixed},
		{"nogso-gro", false, true, fixed},
		{"nogso-nogro", false, false, fixed},
		{"mixed-gso-gro", true, true, mixedSize},
		{"mixed-gso-nogro", true, false, mixedSize},
		{"mixed-nogso-nogro", false, false, mixedSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := testGroup()
			rcfg := lo(t, g)
			rcfg.Source = loopback
			rcfg.DisableGRO = !tc.gro
			rcv := mustReceiver(t, rcfg)
			scfg := lo(t, g)
			scfg.Source = loopback
			scfg.DisableGSO = !tc.gso
			snd := mustSender(t, scfg)
			if snd.GSO() != tc.gso || rcv.GRO() != tc.gro {
				t.Fatalf("GSO %v GRO %v, want %v %v (kernel support missing?)", snd.GSO(), rcv.GRO(), tc.gso, tc.gro)
			}
			res := runSequence(t, snd, rcv, total, tc.size)
			t.Logf("received %d, %d GRO super-packets, %d truncated", res.received, res.coalesced, res.truncated)
			if snd.GSO() != tc.gso {
				t.Errorf("GSO fell back during the run")
			}
			if res.truncated != 0 {
				t.Errorf("%d truncated messages", res.truncated)
			}
			switch {
			case tc.gso && tc.gro && res.coalesced == 0:
				t.Errorf("GSO sender to GRO receiver on lo: no super-packet arrived whole (SegSize never set)")
			case !tc.gro && res.coalesced != 0:
				t.Errorf("%d coalesced messages without GRO", res.coalesced)
			}
		})
	}
}

// TestSourceFilter checks that an (S,G) receiver gets nothing from another
// source sending to the same group and port, while an any-source receiver
// on the same group sees both (so the other source's packets did exist).
func TestSourceFilter(t *testing.T) {
	g := testGroup()
	rcfg := lo(t, g)
	rcfg.Source = loopback
	ssm := mustReceiver(t, rcfg)
	asm := mustReceiver(t, lo(t, g)) // (*,G) on the same group and port

	scfg := lo(t, g)
	scfg.Source = loopback
	good := mustSender(t, scfg)
	scfg.Source = netip.MustParseAddr("127.0.0.2")
	other := mustSender(t, scfg)

	const n = 200
	send := func(c *Conn, tag byte) {
		pkts := make([][]byte, n)
		for i := range pkts {
			pkts[i] = []byte{tag, byte(i)}
		}
		if k, err := c.WriteBatch(pkts, g); err != nil || k != n {
			t.Fatalf("WriteBatch: %d, %v", k, err)
		}
	}
	send(other, 'X')
	send(good, 'A')
	send(other, 'X')

	count := func(c *Conn, want int) map[netip.Addr]int {
		got := map[netip.Addr]int{}
		msgs := make([]Message, 64)
		for i := range msgs {
			msgs[i].Buf = make([]byte, GROBufferSize)
		}
		total := 0
		// Read until the expected count, then a short quiet period to catch
		// anything unexpected.
		for {
			wait := 2 * time.Second
			if total >= want {
				wait = 100 * time.Millisecond
			}
			c.SetReadDeadline(time.Now().Add(wait))
			k, err := c.ReadBatch(msgs)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return got
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range msgs[:k] {
				m := &msgs[i]
				m.Datagrams(func(p []byte) {
					total++
					got[m.Src.Addr()]++
					if (p[0] == 'A') != (m.Src.Addr() == loopback) {
						t.Errorf("datagram %q with Src %v", p, m.Src)
					}
				})
			}
		}
	}
	s := count(ssm, n)
	if s[loopback] != n || len(s) != 1 {
		t.Errorf("(S,G) receiver got %v, want only %d from %v", s, n, loopback)
	}
	a := count(asm, 3*n)
	if a[loopback] != n || a[netip.MustParseAddr("127.0.0.2")] != 2*n {
		t.Errorf("(*,G) receiver got %v, want %d from each sender's batches", a, 3*n)
	}
}

func TestRecvBufferEffective(t *testing.T) {
	for _, req := range []int{0, 1 << 20, 16 << 20} {
		cfg := lo(t, testGroup())
		cfg.RecvBuffer = req
		c := mustReceiver(t, cfg)
		want := req
		if want == 0 {
			want = DefaultRecvBuffer
		}
		t.Logf("requested %d, effective %d", want, c.RecvBufferSize())
		if c.RecvBufferSize() <= 0 {
			t.Fatalf("RecvBufferSize %d", c.RecvBufferSize())
		}
		if isRoot() && c.RecvBufferSize() < want {
			t.Errorf("root: effective receive buffer %d < requested %d", c.RecvBufferSize(), want)
		}
		// Read back independently.
		var got int
		if err := c.control(func(fd int) (err error) {
			got, err = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)
			return err
		}); err != nil || got != c.RecvBufferSize() {
			t.Errorf("getsockopt SO_RCVBUF = %d, %v; RecvBufferSize %d", got, err, c.RecvBufferSize())
		}
	}
	s := mustSender(t, lo(t, testGroup()))
	t.Logf("sender: effective send buffer %d", s.SendBufferSize())
	if isRoot() && s.SendBufferSize() < DefaultSendBuffer {
		t.Errorf("root: effective send buffer %d < %d", s.SendBufferSize(), DefaultSendBuffer)
	}
}

func TestConfigErrors(t *testing.T) {
	g := testGroup()
	if _, err := ListenSender(Config{Group: g}); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("ListenSender without Interface: %v, want ErrNoInterface", err)
	} else {
		t.Log(err)
	}
	if _, err := ListenReceiver(Config{Group: g, Source: loopback}); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("ListenReceiver without Interface: %v, want ErrNoInterface", err)
	}
	for _, cfg := range []Config{
		{Group: netip.MustParseAddrPort("127.0.0.1:5000"), Interface: "lo"},
		{Group: netip.AddrPortFrom(g.Addr(), 0), Interface: "lo"},
		{Group: g, Interface: "lo", Source: netip.MustParseAddr("::1")},
		{Group: g, Interface: "lo", Source: netip.MustParseAddr("232.1.1.1")},
		{Group: g, Interface: "lo", TTL: 256},
		{Group: g, Interface: "h3m-no-such-if"},
		{},
	} {
		if c, err := ListenSender(cfg); err == nil {
			c.Close()
			t.Errorf("ListenSender(%+v) succeeded", cfg)
		} else {
			t.Logf("sender %v", err)
		}
		if c, err := ListenReceiver(cfg); err == nil {
			c.Close()
			t.Errorf("ListenReceiver(%+v) succeeded", cfg)
		}
	}
}

// TestMulticastInterfacePinned reads the options back from the kernel: the
// multicast interface is lo, the socket is bound to lo, the TTL is 1, and
// unicast destinations are refused.
func TestMulticastInterfacePinned(t *testing.T) {
	g := testGroup()
	for _, c := range []*Conn{mustSender(t, lo(t, g)), mustReceiver(t, lo(t, g))} {
		err := c.control(func(fd int) error {
			a, err := unix.GetsockoptInet4Addr(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF)
			if err != nil {
				return err
			}
			if netip.AddrFrom4(a) != loopback {
				t.Errorf("IP_MULTICAST_IF = %v, want %v (lo)", netip.AddrFrom4(a), loopback)
			}
			ttl, err := unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL)
			if err != nil || ttl != 1 {
				t.Errorf("IP_MULTICAST_TTL = %d, %v", ttl, err)
			}
			dev, err := unix.GetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
			if err != nil || dev != "lo" {
				t.Errorf("SO_BINDTODEVICE = %q, %v", dev, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	s := mustSender(t, lo(t, g))
	if _, err := s.WriteBatch([][]byte{{1}}, netip.MustParseAddrPort("192.0.2.1:443")); err == nil {
		t.Error("WriteBatch to a unicast address succeeded")
	}
	if _, err := s.WriteTo([]byte{1}, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 443}); err == nil {
		t.Error("WriteTo a unicast address succeeded")
	}
	if _, err := s.WriteBatch([][]byte{{1}}, netip.MustParseAddrPort("[ff3e::1]:443")); err == nil {
		t.Error("WriteBatch to an IPv6 group on an IPv4 socket succeeded")
	}
}

// TestGSOFallback makes the kernel refuse GSO (SO_NO_CHECK: UDP GSO needs
// checksums, so udp_send_skb returns EINVAL) and checks that WriteBatch
// turns GSO off and delivers everything without it.
func TestGSOFallback(t *testing.T) {
	g := testGroup()
	rcfg := lo(t, g)
	rcfg.Source = loopback
	rcv := mustReceiver(t, rcfg)
	scfg := lo(t, g)
	scfg.Source = loopback
	snd := mustSender(t, scfg)
	if !snd.GSO() {
		t.Skip("kernel without UDP GSO")
	}
	if err := snd.control(func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_NO_CHECK, 1)
	}); err != nil {
		t.Skipf("SO_NO_CHECK: %v", err)
	}
	res := runSequence(t, snd, rcv, 2000, func(uint64) int { return 1000 })
	if snd.GSO() {
		t.Errorf("GSO still on after the kernel refused it")
	}
	if res.coalesced != 0 {
		t.Errorf("%d super-packets arrived although GSO was refused", res.coalesced)
	}
}

// TestReadFromSplitsGRO checks the net.PacketConn path of a GRO receiver:
// each ReadFrom returns one datagram even when a super-packet arrived.
func TestReadFromSplitsGRO(t *testing.T) {
	g := testGroup()
	rcfg := lo(t, g)
	rcfg.Source = loopback
	rcv := mustReceiver(t, rcfg)
	scfg := lo(t, g)
	scfg.Source = loopback
	snd := mustSender(t, scfg)
	pkts := make([][]byte, 40)
	for i := range pkts {
		pkts[i] = make([]byte, 300)
		fillPacket(pkts[i], uint64(i))
	}
	pkts[len(pkts)-1] = pkts[len(pkts)-1][:100]
	fillPacket(pkts[len(pkts)-1], uint64(len(pkts)-1))
	if n, err := snd.WriteBatch(pkts, g); err != nil || n != len(pkts) {
		t.Fatalf("WriteBatch: %d, %v", n, err)
	}
	rcv.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for i := range pkts {
		n, from, err := rcv.ReadFrom(buf)
		if err != nil {
			t.Fatalf("ReadFrom %d: %v", i, err)
		}
		if !checkPacket(buf[:n], uint64(i), len(pkts[i])) {
			t.Fatalf("datagram %d: %d bytes, wrong content", i, n)
		}
		if from.(*net.UDPAddr).AddrPort() != snd.LocalAddr().(*net.UDPAddr).AddrPort() {
			t.Errorf("from %v, want %v", from, snd.LocalAddr())
		}
	}
	// And WriteTo reaches the group too.
	if _, err := snd.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(g)); err != nil {
		t.Fatal(err)
	}
	n, _, err := rcv.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("ReadFrom after WriteTo: %q, %v", buf[:n], err)
	}
}

// TestSmallBuffersDisableGRO checks the automatic fallback when a caller
// reads a GRO conn with buffers too small for a super-packet.
func TestSmallBuffersDisableGRO(t *testing.T) {
	g := testGroup()
	rcfg := lo(t, g)
	rcfg.Source = loopback
	rcv := mustReceiver(t, rcfg)
	if !rcv.GRO() {
		t.Skip("kernel without UDP GRO")
	}
	scfg := lo(t, g)
	scfg.Source = loopback
	snd := mustSender(t, scfg)
	msgs := make([]Message, 8)
	for i := range msgs {
		msgs[i].Buf = make([]byte, 1500)
	}
	rcv.SetReadDeadline(time.Now().Add(time.Millisecond))
	if _, err := rcv.ReadBatch(msgs); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadBatch on an empty socket: %v, want deadline exceeded", err)
	}
	if rcv.GRO() {
		t.Fatal("GRO still on after ReadBatch with 1500-byte buffers")
	}
	res := runSequenceSmall(t, snd, rcv, msgs)
	if res != 500 {
		t.Fatalf("received %d of 500", res)
	}
}

func runSequenceSmall(t *testing.T, snd, rcv *Conn, msgs []Message) int {
	pkts := make([][]byte, 500)
	for i := range pkts {
		pkts[i] = make([]byte, 1200)
		fillPacket(pkts[i], uint64(i))
	}
	if n, err := snd.WriteBatch(pkts, snd.Group()); err != nil || n != len(pkts) {
		t.Fatalf("WriteBatch: %d, %v", n, err)
	}
	rcv.SetReadDeadline(time.Now().Add(2 * time.Second))
	got := 0
	for got < len(pkts) {
		n, err := rcv.ReadBatch(msgs)
		if err != nil {
			t.Fatalf("ReadBatch: %v", err)
		}
		for i := range msgs[:n] {
			if msgs[i].SegSize != 0 || msgs[i].Truncated {
				t.Fatalf("message %+v after GRO was disabled", msgs[i].SegSize)
			}
			if !checkPacket(msgs[i].Buf[:msgs[i].N], uint64(got), 1200) {
				t.Fatalf("datagram %d differs", got)
			}
			got++
		}
	}
	return got
}

func TestCloseLeaves(t *testing.T) {
	g := testGroup()
	cfg := lo(t, g)
	cfg.Source = loopback
	c, err := ListenReceiver(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	msgs := []Message{{Buf: make([]byte, 100)}}
	if _, err := c.ReadBatch(msgs); !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReadBatch after Close: %v, want net.ErrClosed", err)
	}
}

func TestCloseUnblocksReadBatch(t *testing.T) {
	c, err := ListenReceiver(lo(t, testGroup()))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch([]Message{{Buf: make([]byte, GROBufferSize)}})
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReadBatch: %v, want net.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadBatch still blocked after Close")
	}
}

// TestTTLZero checks the host-local setting (TTL < 0 means 0).
func TestTTLZero(t *testing.T) {
	cfg := lo(t, testGroup())
	cfg.TTL = -1
	c := mustSender(t, cfg)
	var ttl int
	if err := c.control(func(fd int) (err error) {
		ttl, err = unix.GetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL)
		return err
	}); err != nil || ttl != 0 {
		t.Fatalf("IP_MULTICAST_TTL = %d, %v; want 0", ttl, err)
	}
}
