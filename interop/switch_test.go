package interop

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// ssmMember is a socket of one host joined to (source, group) on its
// interface, as a receiver joins.
type ssmMember struct {
	conn *net.UDPConn
}

func joinSSM(t *testing.T, h Host, group, source netip.Addr, port uint16) *ssmMember {
	t.Helper()
	var m ssmMember
	err := onHost(h, group, func(ifi *net.Interface, network string) error {
		var err error
		m.conn, err = net.ListenUDP(network, &net.UDPAddr{Port: int(port)})
		if err != nil {
			return err
		}
		g, s := &net.UDPAddr{IP: group.AsSlice()}, &net.UDPAddr{IP: source.AsSlice()}
		if group.Is6() {
			return ipv6.NewPacketConn(m.conn).JoinSourceSpecificGroup(ifi, g, s)
		}
		return ipv4.NewPacketConn(m.conn).JoinSourceSpecificGroup(ifi, g, s)
	})
	if err != nil {
		t.Fatalf("%s: join (%s,%s): %v", h.Name, source, group, err)
	}
	return &m
}

// onHost runs fn in h's namespace with h's interface and the UDP network
// of group's family.
func onHost(h Host, group netip.Addr, fn func(ifi *net.Interface, network string) error) error {
	return h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Iface)
		if err != nil {
			return err
		}
		network := "udp4"
		if group.Is6() {
			network = "udp6"
		}
		return fn(ifi, network)
	})
}

// sendBurst sends count datagrams to group:port from h, on its interface
// with TTL (hop limit) 1, 20 ms apart.
func sendBurst(t *testing.T, h Host, group netip.Addr, port uint16, count int) {
	t.Helper()
	err := onHost(h, group, func(ifi *net.Interface, network string) error {
		c, err := net.ListenUDP(network, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if group.Is6() {
			p := ipv6.NewPacketConn(c)
			if err := p.SetMulticastInterface(ifi); err != nil {
				return err
			}
			if err := p.SetMulticastHopLimit(1); err != nil {
				return err
			}
		} else {
			p := ipv4.NewPacketConn(c)
			if err := p.SetMulticastInterface(ifi); err != nil {
				return err
			}
			if err := p.SetMulticastTTL(1); err != nil {
				return err
			}
		}
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(group, port))
		for i := 0; i < count; i++ {
			if _, err := c.WriteToUDP([]byte(fmt.Sprintf("packet %d", i)), dst); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: send: %v", h.Name, err)
	}
}

// waitCount waits until the host counted at least want session packets,
// at most until ctx ends, and returns the count.
func waitCount(ctx context.Context, t *testing.T, h Host, want uint64) uint64 {
	t.Helper()
	for {
		n, err := h.GroupPackets(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n >= want || ctx.Err() != nil {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSnoopingSwitch checks the snooping topology against the bridge's own
// state: a host's (S,G) entry appears when it joins and goes when it
// leaves, the bridge forwards the group to members only (a host that did
// not join counts no packet at its interface, before and after the other's
// leave), and a host that joins late is forwarded the group after its
// report. IPv4 (IGMPv3) and IPv6 (MLDv2).
func TestSnoopingSwitch(t *testing.T) {
	needNetns(t)
	for _, v6 := range []bool{false, true} {
		name := "igmpv3"
		if v6 {
			name = "mldv2"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			n, err := NewNetwork(ctx, ModeNetns, Topology{Receivers: 3, Snooping: true, IPv6: v6})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			if !n.Snooping {
				t.Fatal("network does not report snooping")
			}
			r1, r2, r3 := n.Receivers[0], n.Receivers[1], n.Receivers[2]
			for _, h := range n.Receivers {
				if err := h.CountGroup(ctx, n.Group, n.Port); err != nil {
					t.Fatal(err)
				}
			}
			// r1 joins: its port's (S,G) entry appears, and only its.
			m1 := joinSSM(t, r1, n.Group, n.Sender.Addr, n.Port)
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			if err := n.WaitMember(wctx, r1, n.Group, n.Sender.Addr, true); err != nil {
				t.Fatal(err)
			}
			wcancel()
			mdb, err := n.MDB(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("after r1 joined: %v", mdb)
			for _, h := range []Host{r2, r3, n.Sender} {
				if memberOf(mdb, h.Port, n.Group, n.Sender.Addr) {
					t.Errorf("%s is a member without joining: %v", h.Name, mdb)
				}
			}
			// Forwarded to r1 only.
			const burst = 20
			sendBurst(t, n.Sender, n.Group, n.Port, burst)
			wctx, wcancel = context.WithTimeout(ctx, 3*time.Second)
			got := waitCount(wctx, t, r1, burst)
			wcancel()
			if got != burst {
				t.Errorf("r1 (joined) counted %d session packets, want %d", got, burst)
			}
			for _, h := range []Host{r2, r3} {
				if c, err := h.GroupPackets(ctx); err != nil || c != 0 {
					t.Errorf("%s (not joined) counted %d session packets (%v), want 0", h.Name, c, err)
				}
			}
			// r2 joins late: after its report the bridge forwards to it too.
			m2 := joinSSM(t, r2, n.Group, n.Sender.Addr, n.Port)
			defer m2.conn.Close()
			wctx, wcancel = context.WithTimeout(ctx, 5*time.Second)
			if err := n.WaitMember(wctx, r2, n.Group, n.Sender.Addr, true); err != nil {
				t.Fatal(err)
			}
			wcancel()
			// r1 leaves (its socket closes, as when a receiver exits): its
			// entry goes.
			m1.conn.Close()
			wctx, wcancel = context.WithTimeout(ctx, 5*time.Second)
			if err := n.WaitMember(wctx, r1, n.Group, n.Sender.Addr, false); err != nil {
				t.Fatal(err)
			}
			wcancel()
			sendBurst(t, n.Sender, n.Group, n.Port, burst)
			wctx, wcancel = context.WithTimeout(ctx, 3*time.Second)
			got = waitCount(wctx, t, r2, burst)
			wcancel()
			if got != burst {
				t.Errorf("r2 (late joiner) counted %d session packets, want %d", got, burst)
			}
			if c, err := r1.GroupPackets(ctx); err != nil || c != burst {
				t.Errorf("r1 counted %d session packets in all (%v), want %d: none after its leave", c, err, burst)
			}
			if c, err := r3.GroupPackets(ctx); err != nil || c != 0 {
				t.Errorf("r3 (never joined) counted %d session packets (%v), want 0", c, err)
			}
		})
	}
}

// TestFloodingBridgeCounts is the control of TestSnoopingSwitch: on the
// flooding bridge a host that did not join does receive the session's
// packets at its interface, so the zero count above is the switch's doing.
func TestFloodingBridgeCounts(t *testing.T) {
	needNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := NewNetwork(ctx, ModeNetns, Topology{Receivers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	r := n.Receivers[0]
	if err := r.CountGroup(ctx, n.Group, n.Port); err != nil {
		t.Fatal(err)
	}
	sendBurst(t, n.Sender, n.Group, n.Port, 5)
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	defer wcancel()
	if got := waitCount(wctx, t, r, 5); got != 5 {
		t.Errorf("flooding bridge: a host that did not join counted %d packets, want 5", got)
	}
	if mdb, err := n.MDB(ctx); err != nil || len(mdb) != 0 {
		t.Errorf("flooding bridge has a multicast database: %v %v", mdb, err)
	}
}

// TestBottleneckDrops sends a burst through a 1 Mbit/s link with a small
// queue: the link's tbf drops what does not fit, and the host sees fewer
// packets than were sent.
func TestBottleneckDrops(t *testing.T) {
	needNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := NewNetwork(ctx, ModeNetns, Topology{Receivers: 1,
		Bottleneck: []Bottleneck{{Rate: 1_000_000, Burst: 4000, Latency: 5 * time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	out, err := n.Switch().Run(ctx, "tc", "qdisc", "show", "dev", n.Receivers[0].Port)
	if err != nil || !strings.Contains(string(out), "tbf") || !strings.Contains(string(out), "rate 1Mbit") {
		t.Fatalf("no tbf on the receiver's link: %v\n%s", err, out)
	}
	r := n.Receivers[0]
	if err := r.CountGroup(ctx, n.Group, n.Port); err != nil {
		t.Fatal(err)
	}
	// 200 datagrams of 1200 bytes at once: 1.9 Mbit, far more than the
	// link carries within its 5 ms of queue.
	err = n.Sender.Do(func() error {
		ifi, err := net.InterfaceByName(n.Sender.Iface)
		if err != nil {
			return err
		}
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return err
		}
		defer c.Close()
		p := ipv4.NewPacketConn(c)
		if err := p.SetMulticastInterface(ifi); err != nil {
			return err
		}
		if err := p.SetMulticastTTL(1); err != nil {
			return err
		}
		dst := net.UDPAddrFromAddrPort(netip.AddrPortFrom(n.Group, n.Port))
		buf := make([]byte, 1200)
		for i := 0; i < 200; i++ {
			if _, err := c.WriteToUDP(buf, dst); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // let the queue drain
	drops, err := n.BottleneckDrops(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.GroupPackets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bottleneck: 200 sent, %d arrived, %d dropped by the link", got, drops)
	if drops == 0 || got >= 200 {
		t.Errorf("bottleneck dropped %d, %d of 200 arrived: want drops", drops, got)
	}
	if err := n.SetBottleneck(ctx, 0, Bottleneck{}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.BottleneckDrops(ctx, 0); err == nil {
		t.Error("tbf still there after SetBottleneck with rate 0")
	}
}

func TestParseMDB(t *testing.T) {
	// bridge -j mdb show of a snooping bridge with an IGMPv3 member (the
	// (S,G) entry and its (*,G) in include mode) and an MLDv2 member.
	out := `[{"mdb":[{"index":5,"dev":"br0","port":"p-r1","grp":"232.77.0.1","src":"10.77.0.1","state":"temp","flags":["added_by_star_ex"],"timer":"   3.02"},` +
		`{"index":5,"dev":"br0","port":"p-r1","grp":"232.77.0.1","state":"temp","filter_mode":"include","protocol":"kernel","flags":[],"source_list":[{"address":"10.77.0.1","timer":"3.02"}],"timer":"   0.00"},` +
		`{"index":6,"dev":"br0","port":"p-r2","grp":"ff3e::77:1","state":"temp","filter_mode":"exclude","flags":[],"timer":"2.00"},` +
		`{"index":6,"dev":"br0","port":"p-r2","grp":"33:33:00:00:00:01","state":"permanent","flags":[]}],"router":{}}]`
	mdb, err := parseMDB([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(mdb) != 3 {
		t.Fatalf("got %d entries, want 3 (the MAC group skipped): %v", len(mdb), mdb)
	}
	g4, g6, src := netip.MustParseAddr("232.77.0.1"), netip.MustParseAddr("ff3e::77:1"), netip.MustParseAddr("10.77.0.1")
	for _, c := range []struct {
		port  string
		group netip.Addr
		want  bool
	}{{"p-r1", g4, true}, {"p-r2", g4, false}, {"p-r2", g6, true}, {"p-r1", g6, false}} {
		if got := memberOf(mdb, c.port, c.group, src); got != c.want {
			t.Errorf("memberOf(%s, %s) = %v, want %v", c.port, c.group, got, c.want)
		}
	}
	if mdb, err := parseMDB([]byte("  \n")); err != nil || mdb != nil {
		t.Errorf("empty output: %v %v", mdb, err)
	}
	if _, err := parseMDB([]byte(`{"mdb":`)); err == nil {
		t.Error("truncated output accepted")
	}
	if _, err := parseMDB([]byte(`[{"mdb":[{"port":"p","grp":"232.1.1.1","src":"x"}]}]`)); err == nil {
		t.Error("bad source accepted")
	}
}

func TestParseQdiscDrops(t *testing.T) {
	out := `[{"kind":"tbf","handle":"8001:","root":true,"refcnt":2,"options":{"rate":2500000,"burst":4000,"lat":5000},"bytes":120000,"packets":100,"drops":37,"overlimits":80,"requeues":0,"backlog":0,"qlen":0}]`
	if d, err := parseQdiscDrops([]byte(out)); err != nil || d != 37 {
		t.Errorf("drops = %d, %v; want 37", d, err)
	}
	if _, err := parseQdiscDrops([]byte(`[{"kind":"noqueue","drops":0}]`)); err == nil {
		t.Error("no tbf: no error")
	}
}
