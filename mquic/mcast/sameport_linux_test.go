//go:build linux

package mcast

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/netns"
)

// TestSamePortGroupsNetns checks that receivers of two groups at the same
// port on one host each get exactly their own group's datagrams, and that
// two receivers of one group each get all of them. It is the situation of a
// session rolled over to a successor on another group but the same port.
//
// Datagrams come from another namespace over a veth pair: IPv4 multicast
// that arrives from a device takes the kernel's UDP early demultiplexing,
// which multicast looped back on lo does not (and IPv6 has none for
// multicast: its subtest checks the binding and the delivery only). With SO_REUSEPORT and sockets bound
// to the wildcard address (what package net does with a multicast address)
// all receivers of the port formed one load-balancing group, and that path
// handed each flow to a member chosen by a hash of its addresses and ports:
// often a socket of the other group. Several sending sockets per group make
// several flows, so such a mix-up cannot go unnoticed.
func TestSamePortGroupsNetns(t *testing.T) {
	for _, fam := range []struct {
		name           string
		src, rcv       netip.Prefix
		group1, group2 func() netip.AddrPort
	}{
		{"ipv4", netip.MustParsePrefix("10.99.0.1/24"), netip.MustParsePrefix("10.99.0.2/24"), testGroup, testGroup},
		{"ipv6", netip.MustParsePrefix("fd00:99::1/64"), netip.MustParsePrefix("fd00:99::2/64"), v6Group, v6Group},
	} {
		t.Run(fam.name, func(t *testing.T) {
			a, b := netns.New(t, "snd"), netns.New(t, "rcv")
			ifA, ifB := netns.Veth(t, a, b, fam.src, fam.rcv)
			src := fam.src.Addr()
			g1 := fam.group1()
			g2 := netip.AddrPortFrom(fam.group2().Addr(), g1.Port())
			if g2.Addr() == g1.Addr() {
				t.Skip("drew the same group twice")
			}
			groups := []netip.AddrPort{g1, g2}

			open := func(ns *netns.NS, recv bool, g netip.AddrPort, iface string) *Conn {
				t.Helper()
				return openInNS(t, ns, recv, Config{Group: g, Source: src, Interface: iface, TTL: 1, RecvBuffer: 8 << 20})
			}

			// Two receivers of g1, one of g2, in the receiving namespace.
			type receiver struct {
				group int
				conn  *Conn
			}
			rcvs := []receiver{{0, open(b, true, g1, ifB)}, {0, open(b, true, g1, ifB)}, {1, open(b, true, g2, ifB)}}
			for _, r := range rcvs {
				if got := r.conn.LocalAddr().(*net.UDPAddr).AddrPort(); got != groups[r.group] {
					t.Errorf("receiver bound to %v, want its group %v", got, groups[r.group])
				}
			}
			const flows = 8 // sending sockets per group
			var snds [2][flows]*Conn
			for gi, g := range groups {
				for f := range flows {
					snds[gi][f] = open(a, false, g, ifA)
				}
			}

			// counts[r][g][f]: datagrams receiver r got of group g's flow f.
			var mu sync.Mutex
			counts := make([][2][flows]int, len(rcvs))
			progress := make(chan struct{}, 1)
			var wg sync.WaitGroup
			for ri, r := range rcvs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					msgs := make([]Message, 8)
					for i := range msgs {
						msgs[i].Buf = make([]byte, GROBufferSize)
					}
					for {
						n, err := r.conn.ReadBatch(msgs)
						if err != nil {
							return // closed at the end of the test
						}
						mu.Lock()
						for i := range msgs[:n] {
							msgs[i].Datagrams(func(p []byte) {
								if len(p) >= 2 && p[0] < 2 && p[1] < flows {
									counts[ri][p[0]][p[1]]++
								}
							})
						}
						mu.Unlock()
						select {
						case progress <- struct{}{}:
						default:
						}
					}
				}()
			}
			t.Cleanup(wg.Wait)
			t.Cleanup(func() {
				for _, r := range rcvs {
					r.conn.Close()
				}
			})

			// Every receiver must see this many datagrams of every flow of
			// its group; the rounds are bounded so a broken receive path
			// ends the test instead of hanging it.
			const want, maxRounds = 20, 5000
			done := func() bool {
				mu.Lock()
				defer mu.Unlock()
				for ri, r := range rcvs {
					for f := range flows {
						if counts[ri][r.group][f] < want {
							return false
						}
					}
				}
				return true
			}
			pkt := make([]byte, 1000)
			rounds := 0
			for ; rounds < maxRounds && !done(); rounds++ {
				for gi := range groups {
					for f, s := range snds[gi] {
						pkt[0], pkt[1] = byte(gi), byte(f)
						binary.BigEndian.PutUint32(pkt[2:], uint32(rounds))
						if _, err := s.WriteBatch([][]byte{pkt}, groups[gi]); err != nil {
							t.Fatal(err)
						}
					}
				}
				if rounds%10 == 9 {
					// Let the readers drain before the next burst.
					select {
					case <-progress:
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for ri, r := range rcvs {
				other := 1 - r.group
				for f := range flows {
					if c := counts[ri][other][f]; c != 0 {
						t.Errorf("receiver %d of %v got %d datagrams of %v (sender %d)", ri, groups[r.group], c, groups[other], f)
					}
					if c := counts[ri][r.group][f]; c < want {
						t.Errorf("receiver %d of %v got %d datagrams of its sender %d after %d rounds, want at least %d", ri, groups[r.group], c, f, rounds, want)
					}
				}
			}
			t.Logf("%d rounds of %d datagrams; counts per receiver, group and sender: %v", rounds, 2*flows, counts)
		})
	}
}
