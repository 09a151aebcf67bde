//go:build linux

package mcast

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/netns"
	"golang.org/x/sys/unix"
)

// TestMain watches eth0 (when it exists and we are root) with a packet
// socket for the whole run and fails the package if any packet to an SSM
// group (232.0.0.0/8, ff3x::/32) leaves through it: the hard evidence that
// no socket of these tests escaped to the real network.
func TestMain(m *testing.M) {
	var w *leakWatch
	if os.Geteuid() == 0 {
		if _, err := net.InterfaceByName("eth0"); err == nil {
			if w, err = startLeakWatch("eth0"); err != nil {
				fmt.Fprintf(os.Stderr, "mcast: cannot watch eth0 for leaks: %v\n", err)
			}
		}
	}
	code := m.Run()
	if w != nil {
		if leaks := w.stop(); len(leaks) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: %d SSM multicast packets left through eth0 during the tests, e.g. to %v\n", len(leaks), leaks[0])
			code = 1
		}
	}
	os.Exit(code)
}

// leakWatch records outgoing packets to SSM groups on one interface.
type leakWatch struct {
	fd    int
	mu    sync.Mutex
	leaks []netip.Addr
	done  chan struct{}
	quit  chan struct{}
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// startLeakWatch opens an AF_PACKET socket on ifname in the calling
// thread's network namespace.
func startLeakWatch(ifname string) (*leakWatch, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	w := &leakWatch{fd: fd, done: make(chan struct{}), quit: make(chan struct{})}
	go w.run()
	return w, nil
}

func (w *leakWatch) run() {
	defer close(w.done)
	buf := make([]byte, 256)
	for {
		select {
		case <-w.quit:
			return
		default:
		}
		n, from, err := unix.Recvfrom(w.fd, buf, unix.MSG_TRUNC)
		if err != nil {
			continue // timeout or EINTR
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING {
			continue
		}
		if dst, ok := ssmDestination(buf[:min(n, len(buf))], htons(ll.Protocol)); ok {
			w.mu.Lock()
			w.leaks = append(w.leaks, dst)
			w.mu.Unlock()
		}
	}
}

// ssmDestination returns the destination of an IP packet if it is an SSM
// group.
func ssmDestination(p []byte, proto uint16) (netip.Addr, bool) {
	switch {
	case proto == unix.ETH_P_IP && len(p) >= 20:
		a := netip.AddrFrom4([4]byte(p[16:20]))
		return a, p[16] == 232
	case proto == unix.ETH_P_IPV6 && len(p) >= 40:
		a := netip.AddrFrom16([16]byte(p[24:40]))
		return a, p[24] == 0xff && p[25]&0xf0 == 0x30
	}
	return netip.Addr{}, false
}

func (w *leakWatch) stop() []netip.Addr {
	time.Sleep(100 * time.Millisecond) // let the kernel hand over what is queued
	close(w.quit)
	<-w.done
	unix.Close(w.fd)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.leaks
}

// TestLeakWatchDetects proves the eth0 watch of TestMain would see a leak:
// the same watch on a veth inside a private namespace records multicast sent
// through it, in both families, and nothing else.
func TestLeakWatchDetects(t *testing.T) {
	a, b := netns.New(t, "lka"), netns.New(t, "lkb")
	ifA, _ := netns.Veth(t, a, b, netip.MustParsePrefix("fd00::1/64"), netip.MustParsePrefix("fd00::2/64"))
	a.AddAddr(ifA, netip.MustParsePrefix("198.18.0.1/24"))
	var w *leakWatch
	var s4, s6 *Conn
	err := a.Do(func() (err error) {
		if w, err = startLeakWatch(ifA); err != nil {
			return err
		}
		if s4, err = ListenSender(Config{Group: testGroup(), Interface: ifA, Logger: testLogger(t)}); err != nil {
			return err
		}
		s6, err = ListenSender(Config{Group: v6Group(), Interface: ifA, Logger: testLogger(t)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s4.Close()
	defer s6.Close()
	for _, s := range []*Conn{s4, s6} {
		// Two sizes: two packets, not one GSO super-packet.
		if _, err := s.WriteBatch([][]byte{[]byte("x"), []byte("yy")}, s.Group()); err != nil {
			t.Fatal(err)
		}
	}
	leaks := w.stop()
	want := map[netip.Addr]int{s4.Group().Addr(): 2, s6.Group().Addr(): 2}
	got := map[netip.Addr]int{}
	for _, l := range leaks {
		got[l]++
	}
	if len(got) != len(want) || got[s4.Group().Addr()] != 2 || got[s6.Group().Addr()] != 2 {
		t.Errorf("watch saw %v, want %v", got, want)
	}
}
