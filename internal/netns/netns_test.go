//go:build linux

package netns

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestVethUDP sends a datagram over IPv4 and IPv6 from one namespace to the
// other and checks the namespaces are gone after the subtest.
func TestVethUDP(t *testing.T) {
	var names []string
	t.Run("pair", func(t *testing.T) {
		a, b := New(t, "a"), New(t, "b")
		names = []string{a.Name, b.Name}
		ifA, ifB := Veth(t, a, b, netip.MustParsePrefix("fd00::1/64"), netip.MustParsePrefix("fd00::2/64"))
		a.AddAddr(ifA, netip.MustParsePrefix("198.18.0.1/24"))
		b.AddAddr(ifB, netip.MustParsePrefix("198.18.0.2/24"))

		// The namespaces hold only lo and the veth end.
		for _, ns := range []*NS{a, b} {
			out := ns.MustRun("ip", "-o", "link", "show")
			if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n != 2 {
				t.Errorf("%s has %d links:\n%s", ns.Name, n, out)
			}
		}
		for _, dst := range []string{"[fd00::2]:4000", "198.18.0.2:4001"} {
			var rc *net.UDPConn
			if err := b.Do(func() error {
				var err error
				rc, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if err := a.Do(func() error {
				c, err := net.Dial("udp", dst)
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = c.Write([]byte("hello " + dst))
				return err
			}); err != nil {
				t.Fatal(err)
			}
			rc.SetReadDeadline(time.Now().Add(2 * time.Second))
			buf := make([]byte, 100)
			n, from, err := rc.ReadFromUDPAddrPort(buf)
			if err != nil || string(buf[:n]) != "hello "+dst {
				t.Fatalf("%s: got %q from %v, %v", dst, buf[:n], from, err)
			}
			t.Logf("%s: %q from %v", dst, buf[:n], from)
		}
		// The test process itself stays in its namespace.
		if _, err := net.InterfaceByName(ifA); err == nil {
			t.Errorf("%s visible outside its namespace", ifA)
		}
		if _, err := a.Run(); err == nil {
			t.Error("Run without a command succeeded")
		}
	})
	for _, n := range names {
		if _, err := os.Stat("/run/netns/" + n); !os.IsNotExist(err) {
			t.Errorf("namespace %s still exists after its test (stat: %v)", n, err)
		}
	}
}
