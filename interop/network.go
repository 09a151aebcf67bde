package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mode is how the runner builds its networks.
type Mode string

// Modes. ModeAuto picks ModeNetns where NetnsAvailable allows it.
const (
	ModeNetns    Mode = "netns"
	ModeLoopback Mode = "loopback"
	ModeAuto     Mode = "auto"
)

// Topology is what a test case needs from the network.
type Topology struct {
	// Receivers is the number of receiver hosts (at least 1).
	Receivers int
	// Loss is each receiver's random drop rate of multicast packets, in
	// percent (missing entries mean 0).
	Loss []int
	// IPv6 runs the case on fd77::/64 and ff3e::/16.
	IPv6 bool
	// Attacker adds a host on the bridge that holds the sender's address
	// (without answering ARP/ND) and can inject packets from it.
	Attacker bool
	// Snooping makes the bridge an IGMPv3/MLDv2 snooping switch with its
	// own querier (snooping.go): it forwards a group only to the ports
	// whose hosts reported membership. Off, the bridge floods multicast to
	// every port.
	Snooping bool
	// Bottleneck limits the bridge's link towards receiver i (missing or
	// zero entries: no limit); see Bottleneck.
	Bottleneck []Bottleneck
}

// Host is one machine of a test network: a namespace with one interface,
// or the runner's own loopback in loopback mode.
type Host struct {
	// Name is "sender", "r1", "r2", … or "attacker".
	Name string
	// NS is the network namespace; "" in loopback mode.
	NS string
	// Iface is the interface the host's multicast goes over ("eth0", or
	// "lo" in loopback mode).
	Iface string
	// Addr is the host's unicast address.
	Addr netip.Addr
	// Port is the bridge's end of the host's link, in the switch
	// namespace ("" in loopback mode).
	Port string
}

// Network is the set of hosts one test case runs on.
type Network struct {
	Mode      Mode
	Sender    Host
	Receivers []Host
	Attacker  *Host
	// Group and Port are the multicast session's destination; Server is
	// the unicast server's address (on the sender host).
	Group  netip.Addr
	Port   uint16
	Server netip.AddrPort

	// AttackerMAC is the attacker's Ethernet address (loss rules exclude
	// its packets from random drops).
	AttackerMAC string
	// Snooping is set when the bridge snoops IGMP/MLD (Topology.Snooping).
	Snooping   bool
	switchNS   string
	namespaces []string
}

// nsPrefix starts every namespace the runner creates; the pid after it
// lets a later run remove what a killed run left behind.
const nsPrefix = "h3mi"

// NetnsAvailable reports why namespace networks cannot be built here, or nil.
func NetnsAvailable() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("network namespaces need %s: %w", tool, err)
		}
	}
	return nil
}

// NewNetwork builds the topology. In netns mode it creates a "switch"
// namespace holding a bridge, and one namespace per host joined to the
// bridge by a veth pair whose host end is eth0: the sender 10.77.0.1
// (fd77::1), receivers 10.77.0.11, .12, … and, when asked for, an
// attacker that holds the sender's address. Multicast routes (232.0.0.0/8,
// ff3e::/16) point at eth0 in every host. The bridge floods multicast
// (snooping off) unless topo.Snooping asks for a snooping switch, and
// segmentation offload is off on every veth so that captures show the
// packets as they travel. topo.Bottleneck shapes the bridge's links to
// receivers. Close removes everything.
// In loopback mode every host is the runner's "lo".
func NewNetwork(ctx context.Context, mode Mode, topo Topology) (*Network, error) {
	if topo.Receivers < 1 {
		return nil, errors.New("interop: topology needs at least one receiver")
	}
	n := &Network{Mode: mode}
	if mode == ModeLoopback {
		return n, n.loopback(topo)
	}
	if err := NetnsAvailable(); err != nil {
		return nil, err
	}
	sweepStale()
	if err := n.build(ctx, topo); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Network) loopback(topo Topology) error {
	if topo.IPv6 {
		return errors.New("IPv6 multicast does not work on loopback")
	}
	lo := netip.MustParseAddr("127.0.0.1")
	n.Sender = Host{Name: "sender", Iface: "lo", Addr: lo}
	for i := 0; i < topo.Receivers; i++ {
		n.Receivers = append(n.Receivers, Host{Name: fmt.Sprintf("r%d", i+1), Iface: "lo", Addr: lo})
	}
	// Other programs may use loopback multicast at the same time: pick a
	// random group and free ports.
	b := randBytes(3)
	n.Group = netip.AddrFrom4([4]byte{232, 77, b[0], b[1] | 1})
	port, err := freeUDPPort()
	if err != nil {
		return err
	}
	n.Port = port
	sport, err := freeUDPPort()
	if err != nil {
		return err
	}
	n.Server = netip.AddrPortFrom(lo, sport)
	return nil
}

func (n *Network) build(ctx context.Context, topo Topology) error {
	id := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), hex.EncodeToString(randBytes(3)))
	n.switchNS = id + "-sw"
	if err := n.addNS(ctx, n.switchNS); err != nil {
		return err
	}
	if err := n.addBridge(ctx, topo.Snooping); err != nil {
		return err
	}
	if err := ipCmd(ctx, "-n", n.switchNS, "link", "set", "br0", "up"); err != nil {
		return err
	}
	addr := func(last byte) netip.Addr {
		if topo.IPv6 {
			return netip.AddrFrom16([16]byte{0xfd, 0x77, 15: last})
		}
		return netip.AddrFrom4([4]byte{10, 77, 0, last})
	}
	var err error
	if n.Sender, err = n.addHost(ctx, id, "sender", addr(1), "", topo.IPv6); err != nil {
		return err
	}
	for i := 0; i < topo.Receivers; i++ {
		h, err := n.addHost(ctx, id, fmt.Sprintf("r%d", i+1), addr(byte(11+i)), "", topo.IPv6)
		if err != nil {
			return err
		}
		n.Receivers = append(n.Receivers, h)
	}
	if topo.Attacker {
		n.AttackerMAC = "02:00:00:77:00:aa"
		h, err := n.addHost(ctx, id, "attacker", addr(1), n.AttackerMAC, topo.IPv6)
		if err != nil {
			return err
		}
		n.Attacker = &h
	}
	if topo.IPv6 {
		n.Group = netip.MustParseAddr("ff3e::77:1")
	} else {
		n.Group = netip.MustParseAddr("232.77.0.1")
	}
	n.Port = 7700
	n.Server = netip.AddrPortFrom(n.Sender.Addr, 4433)
	for _, h := range append([]Host{n.Sender}, n.Receivers...) {
		if err := waitLinkUp(ctx, h); err != nil {
			return err
		}
	}
	for i, b := range topo.Bottleneck {
		if i >= len(n.Receivers) || b.Rate == 0 {
			continue
		}
		if err := n.SetBottleneck(ctx, i, b); err != nil {
			return err
		}
	}
	if n.Snooping {
		return n.startQuerier(ctx)
	}
	return nil
}

func (n *Network) addNS(ctx context.Context, name string) error {
	if err := ipCmd(ctx, "netns", "add", name); err != nil {
		return err
	}
	n.namespaces = append(n.namespaces, name)
	return ipCmd(ctx, "-n", name, "link", "set", "lo", "up")
}

// addHost creates a host namespace and connects its eth0 to the bridge.
// mac, when set, is given to eth0 together with "arp off" (the attacker,
// which shares the sender's address and must never answer for it).
func (n *Network) addHost(ctx context.Context, id, name string, a netip.Addr, mac string, v6 bool) (Host, error) {
	port := "p-" + name
	if len(port) > 15 {
		port = port[:15]
	}
	h := Host{Name: name, NS: id + "-" + name, Iface: "eth0", Addr: a, Port: port}
	if err := n.addNS(ctx, h.NS); err != nil {
		return h, err
	}
	// Addresses must be usable at once: no duplicate address detection.
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0").CombinedOutput(); err != nil {
		return h, fmt.Errorf("interop: sysctl in %s: %v: %s", h.NS, err, bytes.TrimSpace(out))
	}
	steps := [][]string{
		{"-n", n.switchNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"-n", n.switchNS, "link", "set", port, "gso_max_segs", "1"},
		{"-n", n.switchNS, "link", "set", port, "master", "br0", "up"},
		{"-n", h.NS, "link", "set", "eth0", "gso_max_segs", "1"},
	}
	if mac != "" {
		steps = append(steps, []string{"-n", h.NS, "link", "set", "eth0", "address", mac, "arp", "off"})
		// The attacker receives packets whose source is its own address:
		// accept them instead of dropping them as martians.
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "sysctl", "-q", "-w",
			"net.ipv4.conf.all.accept_local=1", "net.ipv4.conf.default.accept_local=1",
			"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0").CombinedOutput(); err != nil {
			return h, fmt.Errorf("interop: sysctl in %s: %v: %s", h.NS, err, bytes.TrimSpace(out))
		}
	}
	if v6 {
		steps = append(steps, []string{"-n", h.NS, "addr", "add", a.String() + "/64", "dev", "eth0", "nodad"})
	} else {
		steps = append(steps, []string{"-n", h.NS, "addr", "add", a.String() + "/24", "dev", "eth0"})
	}
	steps = append(steps,
		[]string{"-n", h.NS, "link", "set", "eth0", "up"},
		[]string{"-n", h.NS, "-4", "route", "replace", "232.0.0.0/8", "dev", "eth0"},
		[]string{"-n", h.NS, "-6", "route", "replace", "ff3e::/16", "dev", "eth0"},
	)
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			// gso_max_segs only keeps captures exact (no
			// super-packets); an old ip that lacks it is no reason to stop.
			if strings.Contains(strings.Join(s, " "), "gso_max_segs") {
				continue
			}
			return h, err
		}
	}
	return h, nil
}

func waitLinkUp(ctx context.Context, h Host) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, "ip", "-n", h.NS, "-o", "link", "show", "dev", h.Iface).CombinedOutput()
		if err == nil && bytes.Contains(out, []byte("LOWER_UP")) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("interop: %s of %s not up: %s %v", h.Iface, h.NS, bytes.TrimSpace(out), err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close deletes every namespace the network created (the veth pairs and
// the bridge go with them). It is safe to call more than once.
func (n *Network) Close() error {
	var errs []error
	for i := len(n.namespaces) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", n.namespaces[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n.namespaces[i], err, bytes.TrimSpace(out)))
		}
	}
	n.namespaces = nil
	return errors.Join(errs...)
}

// Namespaces lists the namespaces that exist for this network.
func (n *Network) Namespaces() []string { return append([]string(nil), n.namespaces...) }

// sweepStale deletes namespaces left by runner processes that no longer
// exist (killed before their clean-up ran).
func sweepStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		rest := name[len(nsPrefix):]
		dash := strings.IndexByte(rest, '-')
		if dash <= 0 {
			continue
		}
		pid, err := strconv.Atoi(rest[:dash])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM) {
			continue // still running
		}
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// Command returns a command that runs argv on the host (through
// `ip netns exec` in netns mode).
func (h Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	if h.NS == "" {
		return exec.CommandContext(ctx, argv[0], argv[1:]...)
	}
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS}, argv...)...)
}

// Run runs argv on the host and returns its combined output.
func (h Host) Run(ctx context.Context, argv ...string) ([]byte, error) {
	out, err := h.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %s: %w: %s", h.Name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Do runs fn with the calling OS thread inside the host's namespace.
// Sockets fn opens belong to the namespace and stay usable from any
// goroutine afterwards. The thread is discarded after fn, so the namespace
// never leaks into the rest of the process. In loopback mode fn simply runs.
func (h Host) Do(fn func() error) error {
	if h.NS == "" {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the runtime ends a locked thread whose
		// goroutine exits, and the namespace switch with it.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + h.NS)
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("setns %s: %w", h.NS, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// DialContext dials from inside the host's namespace (for HTTP clients
// that talk to a receiver's gateway).
func (h Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Joined reports whether the host's interface is a member of group, and
// with how many sockets ("users"), from `ip maddr`.
func (h Host) Joined(ctx context.Context, group netip.Addr) (int, error) {
	out, err := h.Run(ctx, "ip", "maddr", "show", "dev", h.Iface)
	if err != nil {
		return 0, err
	}
	return parseMaddr(string(out), group), nil
}

// parseMaddr finds group in `ip maddr show` output and returns its user
// count (1 when the line has no "users" field), or 0.
func parseMaddr(out string, group netip.Addr) int {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || (f[0] != "inet" && f[0] != "inet6") {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a != group {
			continue
		}
		users := 1
		for i := 2; i+1 < len(f); i++ {
			if f[i] == "users" {
				if u, err := strconv.Atoi(f[i+1]); err == nil {
					users = u
				}
			}
		}
		return users
	}
	return 0
}

// Listening reports whether a socket on the host is bound to port (UDP,
// or TCP in LISTEN state), from /proc/net/{udp,udp6,tcp,tcp6}.
func (h Host) Listening(ctx context.Context, port uint16) (bool, error) {
	out, err := h.Run(ctx, "cat", "/proc/net/udp", "/proc/net/udp6", "/proc/net/tcp", "/proc/net/tcp6")
	if err != nil {
		return false, err
	}
	return parseProcNet(string(out), port), nil
}

// parseProcNet looks for a local port in /proc/net/{udp,tcp}* text: any UDP
// socket, or a TCP socket in state 0A (LISTEN).
func parseProcNet(out string, port uint16) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		if !strings.HasSuffix(f[1], want) {
			continue
		}
		// UDP sockets are in state 07 (unconnected) or 01; TCP listeners 0A.
		if f[3] == "07" || f[3] == "0A" || f[3] == "01" {
			return true
		}
	}
	return false
}

// ipCmd runs the ip tool.
func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("interop: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// nft loads an nftables script into the host's namespace.
func (h Host) nft(ctx context.Context, script string) error {
	cmd := h.Command(ctx, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: nft: %v: %s\n%s", h.Name, err, bytes.TrimSpace(out), script)
	}
	return nil
}

// addrMatch is the nftables expression for "to the group".
func groupMatch(g netip.Addr) string {
	if g.Is6() {
		return "ip6 daddr " + g.String()
	}
	return "ip daddr " + g.String()
}

// SetLoss makes the host drop percent of the UDP packets it receives for
// the group and port at random, before anything else sees them. Packets
// from exceptMAC (if set) are never dropped.
func (h Host) SetLoss(ctx context.Context, group netip.Addr, port uint16, percent int, exceptMAC string) error {
	if h.NS == "" {
		return errors.New("loss needs network namespaces")
	}
	except := ""
	if exceptMAC != "" {
		except = "ether saddr != " + exceptMAC + " "
	}
	return h.nft(ctx, fmt.Sprintf(`table inet h3m_loss {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		%s %sudp dport %d numgen random mod 100 < %d drop
	}
}
`, groupMatch(group), except, port, percent))
}

// Blackhole drops every packet for the group (on) or stops doing so (off).
func (h Host) Blackhole(ctx context.Context, group netip.Addr, on bool) error {
	if h.NS == "" {
		return errors.New("blackhole needs network namespaces")
	}
	if !on {
		return h.nft(ctx, "delete table inet h3m_blackhole\n")
	}
	return h.nft(ctx, fmt.Sprintf(`table inet h3m_blackhole {
	chain pre {
		type filter hook prerouting priority -310; policy accept;
		%s drop
	}
}
`, groupMatch(group)))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func freeUDPPort() (uint16, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}
