package mcasttest

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/h3m-project/h3m/internal/netns"
	"github.com/h3m-project/h3m/mquic/mcast"
)

// V6Source is the SSM source address of IPv6 test sessions.
var V6Source = netip.MustParseAddr("fd00::1")

// V6Pair gives an IPv6 SSM sender and receiver socket in two network
// namespaces joined by a veth pair (IPv6 multicast does not work on lo). It
// skips the test when namespaces are not available (not root).
func V6Pair(t testing.TB) (snd, rcv *mcast.Conn, group netip.AddrPort) {
	t.Helper()
	if err := netns.Available(); err != nil {
		t.Skipf("IPv6 multicast needs network namespaces: %v", err)
	}
	a, b := netns.New(t, "v6s"), netns.New(t, "v6r")
	ifA, ifB := netns.Veth(t, a, b, netip.PrefixFrom(V6Source, 64), netip.MustParsePrefix("fd00::2/64"))
	g := netip.MustParseAddr("ff3e::8000:0").As16()
	g[13], g[14], g[15] = byte(rand.IntN(256)), byte(rand.IntN(256)), byte(1+rand.IntN(254))
	group = netip.AddrPortFrom(netip.AddrFrom16(g), uint16(20000+rand.IntN(30000)))
	err := b.Do(func() (err error) {
		rcv, err = mcast.ListenReceiver(mcast.Config{Group: group, Source: V6Source, Interface: ifB, RecvBuffer: 64 << 20})
		return err
	})
	if err != nil {
		t.Fatalf("IPv6 receiver: %v", err)
	}
	t.Cleanup(func() { rcv.Close() })
	err = a.Do(func() (err error) {
		snd, err = mcast.ListenSender(mcast.Config{Group: group, Source: V6Source, Interface: ifA, TTL: 1})
		return err
	})
	if err != nil {
		t.Fatalf("IPv6 sender: %v", err)
	}
	t.Cleanup(func() { snd.Close() })
	return snd, rcv, group
}
