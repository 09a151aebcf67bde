package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// The switch: the bridge every host's link ends on, either flooding
// multicast or snooping IGMP/MLD, and the links' optional bottlenecks.

// NetworkKind names the bridge a runner builds: a flooding hub or a
// snooping switch.
type NetworkKind string

// Network kinds.
const (
	// NetworkFlood is a bridge that floods multicast to every port (what
	// a switch without IGMP/MLD snooping does).
	NetworkFlood NetworkKind = "flood"
	// NetworkSnooping is a bridge that snoops IGMPv3/MLDv2 and is its own
	// querier: it forwards a group only to ports that reported it.
	NetworkSnooping NetworkKind = "snooping"
)

// snoopingOptions are the bridge's IGMP/MLD settings (times in
// centiseconds, as iproute2 takes them). The querier asks every second
// (the kernel's minimum startup interval) and members answer within half
// a second, so that a joining or leaving host shows in the bridge's state
// within about a second; a membership not renewed for 4 s expires, which
// survives one lost report. A leave is confirmed by two group-specific
// queries 100 ms apart. The querier itself is switched on afterwards
// (startQuerier).
var snoopingOptions = []string{
	"mcast_snooping", "1", "mcast_querier", "0",
	"mcast_igmp_version", "3", "mcast_mld_version", "2",
	"mcast_query_interval", "100", "mcast_query_response_interval", "50",
	"mcast_startup_query_interval", "100", "mcast_startup_query_count", "2",
	"mcast_last_member_interval", "10", "mcast_last_member_count", "2",
	"mcast_membership_interval", "400", "mcast_querier_interval", "300",
}

// queryResponseInterval is mcast_query_response_interval above.
const queryResponseInterval = 500 * time.Millisecond

// addBridge creates br0 in the switch namespace: flooding, or snooping
// (whose querier startQuerier starts once the hosts are connected).
func (n *Network) addBridge(ctx context.Context, snooping bool) error {
	args := []string{"-n", n.switchNS, "link", "add", "br0", "type", "bridge"}
	if !snooping {
		args = append(args, "mcast_snooping", "0")
	} else {
		// The MLD querier needs a usable link-local address on the bridge:
		// no duplicate address detection to wait for.
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", n.switchNS, "sysctl", "-q", "-w",
			"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0").CombinedOutput(); err != nil {
			return fmt.Errorf("interop: sysctl in %s: %v: %s", n.switchNS, err, bytes.TrimSpace(out))
		}
		args = append(args, snoopingOptions...)
		n.Snooping = true
	}
	if err := ipCmd(ctx, args...); err != nil {
		return err
	}
	return ipCmd(ctx, "-n", n.switchNS, "link", "set", "br0", "up")
}

// startQuerier makes the bridge its own IGMP/MLD querier and waits until
// the kernel counts the querier as present. Until then a snooping bridge
// floods every group to every port; afterwards it forwards a group only to
// its members. The kernel starts that wait (one query response interval)
// when the querier is switched on — which is why the querier is switched
// on by itself, after the response interval is set: in one command the
// kernel would apply the querier first, with the default 10 s. It does not
// report the wait's end, so this sleeps the interval, measured from after
// the command returned, plus a tenth for the timer to run.
func (n *Network) startQuerier(ctx context.Context) error {
	if err := ipCmd(ctx, "-n", n.switchNS, "link", "set", "br0", "type", "bridge", "mcast_querier", "1"); err != nil {
		return err
	}
	t := time.NewTimer(queryResponseInterval + queryResponseInterval/10)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Switch returns the bridge's namespace as a host (Iface "br0"), to run
// nft or bridge there.
func (n *Network) Switch() Host {
	return Host{Name: "switch", NS: n.switchNS, Iface: "br0"}
}

// MDBEntry is one entry of the bridge's multicast database: a port's
// membership of a group, for every source (Source invalid: (*,G)) or one
// source ((S,G)).
type MDBEntry struct {
	Port   string
	Group  netip.Addr
	Source netip.Addr
	// State is "temp" for a learned membership, "permanent" for a static
	// one.
	State string
	// Mode is the IGMPv3/MLDv2 filter mode of a (*,G) entry: "include" or
	// "exclude" ("" when the bridge does not say).
	Mode string
}

func (e MDBEntry) String() string {
	src := "*"
	if e.Source.IsValid() {
		src = e.Source.String()
	}
	return fmt.Sprintf("%s (%s,%s) %s %s", e.Port, src, e.Group, e.State, e.Mode)
}

// MDB returns the bridge's multicast database (`bridge -j -d mdb show`).
func (n *Network) MDB(ctx context.Context) ([]MDBEntry, error) {
	if n.switchNS == "" {
		return nil, errors.New("interop: no bridge in loopback mode")
	}
	out, err := exec.CommandContext(ctx, "bridge", "-n", n.switchNS, "-j", "-d", "mdb", "show", "dev", "br0").Output()
	if err != nil {
		return nil, fmt.Errorf("interop: bridge mdb show: %w", err)
	}
	return parseMDB(out)
}

// parseMDB reads `bridge -j mdb show` output: a list of objects, each with
// an "mdb" list of entries.
func parseMDB(b []byte) ([]MDBEntry, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	var doc []struct {
		MDB []struct {
			Port  string `json:"port"`
			Group string `json:"grp"`
			Src   string `json:"src"`
			State string `json:"state"`
			Mode  string `json:"filter_mode"`
		} `json:"mdb"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("interop: bridge mdb output: %w", err)
	}
	var out []MDBEntry
	for _, d := range doc {
		for _, m := range d.MDB {
			g, err := netip.ParseAddr(m.Group)
			if err != nil {
				// Layer-2 groups (a MAC address) are no concern here.
				continue
			}
			e := MDBEntry{Port: m.Port, Group: g, State: m.State, Mode: m.Mode}
			if m.Src != "" {
				if e.Source, err = netip.ParseAddr(m.Src); err != nil {
					return nil, fmt.Errorf("interop: bridge mdb source %q: %w", m.Src, err)
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// Member reports whether the bridge forwards group from source to h's
// port: an (S,G) entry, or a (*,G) entry in exclude mode, for the port.
func (n *Network) Member(ctx context.Context, h Host, group, source netip.Addr) (bool, error) {
	mdb, err := n.MDB(ctx)
	if err != nil {
		return false, err
	}
	return memberOf(mdb, h.Port, group, source), nil
}

func memberOf(mdb []MDBEntry, port string, group, source netip.Addr) bool {
	for _, e := range mdb {
		if e.Port != port || e.Group != group {
			continue
		}
		if e.Source == source || !e.Source.IsValid() && e.Mode == "exclude" {
			return true
		}
	}
	return false
}

// WaitMember waits until h's port is (want true) or is no longer (want
// false) a member of (source, group) in the bridge's database, polling it,
// until ctx ends.
func (n *Network) WaitMember(ctx context.Context, h Host, group, source netip.Addr, want bool) error {
	for {
		ok, err := n.Member(ctx, h, group, source)
		if err == nil && ok == want {
			return nil
		}
		select {
		case <-ctx.Done():
			mdb, _ := n.MDB(context.WithoutCancel(ctx))
			verb := "join"
			if !want {
				verb = "leave"
			}
			return fmt.Errorf("interop: the bridge did not see %s %s (%s,%s) (last error %v); its database: %v",
				h.Name, verb, source, group, err, mdb)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Bottleneck is a link slower than the session: the bridge's port towards
// a receiver sends through a token bucket filter (`tc qdisc … tbf`), which
// queues what exceeds Rate and drops what would wait longer than Latency —
// the bursty queue drops of a congested link, not random loss.
type Bottleneck struct {
	// Rate is the link's rate in bit/s.
	Rate uint64
	// Burst is the bucket size in bytes (default: 10 ms at Rate, at least
	// 16 KiB, so that the filter can keep up with its timer).
	Burst int
	// Latency is how long a packet may wait in the queue (default 50 ms).
	Latency time.Duration
}

// tcArgs returns the tc arguments that install b on dev.
func (b Bottleneck) tcArgs(dev string) []string {
	burst := b.Burst
	if burst <= 0 {
		burst = max(int(b.Rate/8/100), 16<<10)
	}
	lat := b.Latency
	if lat <= 0 {
		lat = 50 * time.Millisecond
	}
	return []string{"qdisc", "replace", "dev", dev, "root", "tbf",
		"rate", strconv.FormatUint(b.Rate, 10) + "bit",
		"burst", strconv.Itoa(burst),
		"latency", strconv.FormatInt(lat.Microseconds(), 10) + "us"}
}

// SetBottleneck shapes the bridge's link towards receiver i with b (Rate
// 0 removes the shaping). It works on the bridge's port, so the receiver
// host sees only what the link delivers.
func (n *Network) SetBottleneck(ctx context.Context, i int, b Bottleneck) error {
	if n.switchNS == "" {
		return errors.New("interop: bottlenecks need network namespaces")
	}
	if i < 0 || i >= len(n.Receivers) {
		return fmt.Errorf("interop: no receiver %d", i+1)
	}
	sw := n.Switch()
	port := n.Receivers[i].Port
	if b.Rate == 0 {
		_, err := sw.Run(ctx, "tc", "qdisc", "del", "dev", port, "root")
		return err
	}
	_, err := sw.Run(ctx, append([]string{"tc"}, b.tcArgs(port)...)...)
	return err
}

// BottleneckDrops returns how many packets the bottleneck towards
// receiver i has dropped so far (tc's qdisc statistics).
func (n *Network) BottleneckDrops(ctx context.Context, i int) (uint64, error) {
	if i < 0 || i >= len(n.Receivers) {
		return 0, fmt.Errorf("interop: no receiver %d", i+1)
	}
	out, err := n.Switch().Run(ctx, "tc", "-j", "-s", "qdisc", "show", "dev", n.Receivers[i].Port, "root")
	if err != nil {
		return 0, err
	}
	return parseQdiscDrops(out)
}

func parseQdiscDrops(b []byte) (uint64, error) {
	var qs []struct {
		Kind  string `json:"kind"`
		Drops uint64 `json:"drops"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(b), &qs); err != nil {
		return 0, fmt.Errorf("interop: tc qdisc output: %w", err)
	}
	for _, q := range qs {
		if q.Kind == "tbf" {
			return q.Drops, nil
		}
	}
	return 0, errors.New("interop: no tbf qdisc on the link")
}

// countTable is the nftables table that counts a host's session packets.
const countTable = "h3m_count"

// CountGroup starts counting, at the host's interface and before any other
// rule, the UDP packets to group and port that reach the host (what the
// switch forwarded to it). It replaces an earlier count (zeroing it).
func (h Host) CountGroup(ctx context.Context, group netip.Addr, port uint16) error {
	if h.NS == "" {
		return errors.New("counting needs network namespaces")
	}
	return h.nft(ctx, fmt.Sprintf(`table netdev %[1]s {}
delete table netdev %[1]s
table netdev %[1]s {
	chain in {
		type filter hook ingress device %[2]s priority -500; policy accept;
		%[3]s udp dport %[4]d counter comment "session"
	}
}
`, countTable, h.Iface, groupMatch(group), port))
}

// GroupPackets returns the count CountGroup started.
func (h Host) GroupPackets(ctx context.Context) (uint64, error) {
	out, err := h.Run(ctx, "nft", "list", "table", "netdev", countTable)
	if err != nil {
		return 0, err
	}
	return parseNftCounter(string(out), "session")
}

// parseNftCounter returns the packets of the rule with the comment name in
// `nft list` output.
func parseNftCounter(out, name string) (uint64, error) {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `comment "`+name+`"`) {
			continue
		}
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "packets" {
				return strconv.ParseUint(f[i+1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("interop: no counter %q in the ruleset", name)
}
