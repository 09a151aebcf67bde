//go:build linux

package mcast

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/netns"
	"golang.org/x/sys/unix"
)

// v6Group returns a random group in the IPv6 SSM range ff3e::/96 (global
// scope) and a random port.
func v6Group() netip.AddrPort {
	b := netip.MustParseAddr("ff3e::8000:0").As16()
	b[13], b[14], b[15] = byte(rand.IntN(256)), byte(rand.IntN(256)), byte(1+rand.IntN(254))
	// Below the ephemeral ports (32768 and up): see internal/mcasttest.Group.
	return netip.AddrPortFrom(netip.AddrFrom16(b), uint16(10000+rand.IntN(22000)))
}

// openInNS opens a receiver (recv) or a sender in ns, closed when t ends.
func openInNS(t *testing.T, ns *netns.NS, recv bool, cfg Config) *Conn {
	t.Helper()
	var c *Conn
	err := ns.Do(func() (err error) {
		if recv {
			c, err = ListenReceiver(cfg)
		} else {
			c, err = ListenSender(cfg)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSSMv6Netns runs IPv6 SSM between two namespaces joined by a veth pair
// (IPv6 multicast does not work on lo): the sequence test with and without
// GSO/GRO, and source filtering against a second address on the sender side.
func TestSSMv6Netns(t *testing.T) {
	a, b := netns.New(t, "snd"), netns.New(t, "rcv")
	src, other := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::3")
	ifA, ifB := netns.Veth(t, a, b, netip.PrefixFrom(src, 64), netip.MustParsePrefix("fd00::2/64"))
	a.AddAddr(ifA, netip.PrefixFrom(other, 64))

	open := openInNS

	for _, tc := range []struct {
		name     string
		gso, gro bool
	}{{"gso-gro", true, true}, {"gso-nogro", true, false}, {"nogso-nogro", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			g := v6Group()
			rcv := open(t, b, true, Config{Group: g, Source: src, Interface: ifB, TTL: 1, DisableGRO: !tc.gro, Logger: testLogger(t)})
			snd := open(t, a, false, Config{Group: g, Source: src, Interface: ifA, TTL: 1, DisableGSO: !tc.gso, Logger: testLogger(t)})
			for _, c := range []*Conn{snd, rcv} {
				if err := c.control(func(fd int) error {
					ifx, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF)
					if err != nil || ifx != c.Interface().Index {
						t.Errorf("IPV6_MULTICAST_IF = %d, %v; want %d (%s)", ifx, err, c.Interface().Index, c.Interface().Name)
					}
					hops, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS)
					if err != nil || hops != 1 {
						t.Errorf("IPV6_MULTICAST_HOPS = %d, %v", hops, err)
					}
					return nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			res := runSequence(t, snd, rcv, 10000, func(uint64) int { return 1200 })
			t.Logf("received %d, %d GRO super-packets", res.received, res.coalesced)
			if tc.gso && tc.gro && res.coalesced == 0 {
				t.Errorf("GSO sender to GRO receiver over veth: no super-packet arrived whole")
			}
		})
	}

	t.Run("source-filter", func(t *testing.T) {
		g := v6Group()
		rcv := open(t, b, true, Config{Group: g, Source: src, Interface: ifB, TTL: 1, Logger: testLogger(t)})
		asm := open(t, b, true, Config{Group: g, Interface: ifB, TTL: 1, Logger: testLogger(t)})
		good := open(t, a, false, Config{Group: g, Source: src, Interface: ifA, TTL: 1, Logger: testLogger(t)})
		bad := open(t, a, false, Config{Group: g, Source: other, Interface: ifA, TTL: 1, Logger: testLogger(t)})
		for _, c := range []*Conn{bad, good, bad} {
			if _, err := c.WriteBatch([][]byte{[]byte(c.Source().String())}, g); err != nil {
				t.Fatal(err)
			}
		}
		drain := func(c *Conn) map[netip.Addr]int {
			got := map[netip.Addr]int{}
			msgs := []Message{{Buf: make([]byte, GROBufferSize)}}
			for {
				c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
				n, err := c.ReadBatch(msgs)
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return got
				}
				if err != nil {
					t.Fatal(err)
				}
				if n == 1 {
					if string(msgs[0].Buf[:msgs[0].N]) != msgs[0].Src.Addr().String() {
						t.Errorf("payload %q from %v", msgs[0].Buf[:msgs[0].N], msgs[0].Src)
					}
					got[msgs[0].Src.Addr()]++
				}
			}
		}
		if got := drain(rcv); got[src] != 1 || len(got) != 1 {
			t.Errorf("(S,G) receiver got %v, want one datagram from %v only", got, src)
		}
		if got := drain(asm); got[src] != 1 || got[other] != 2 {
			t.Errorf("(*,G) receiver got %v, want 1 from %v and 2 from %v", got, src, other)
		}
	})
}
