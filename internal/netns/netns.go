//go:build linux

// Package netns gives tests private Linux network namespaces joined by veth
// pairs, so multi-host and IPv6 multicast tests run without touching a real
// network. It needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2's
// `ip`; New skips the test with a clear message otherwise.
//
// Every namespace is named "h3m-<pid>-<name>-<random>" and deleted when the
// test ends, whether it passed or not.
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TB is what this package needs of a test: *testing.T and *testing.B have
// it, and Scope gives it to programs.
type TB interface {
	Helper()
	Cleanup(func())
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Skipf(format string, args ...any)
}

var _ TB = testing.TB(nil)

// NS is a network namespace created for one test (or one Scope).
type NS struct {
	// Name is the namespace's name as `ip netns` knows it.
	Name string
	t    TB
}

// Available reports why namespaces cannot be created here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (CAP_SYS_ADMIN, CAP_NET_ADMIN); not running as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("network namespaces need iproute2's ip: %w", err)
	}
	return nil
}

// New creates a namespace with lo up, and deletes it in t.Cleanup. It skips
// the test when Available reports a problem. name should be short
// (e.g. "snd"); it is only a readable part of the full name.
func New(t TB, name string) *NS {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("netns: skipping: %v", err)
	}
	full := fmt.Sprintf("h3m-%d-%s-%s", os.Getpid(), name, randHex(4))
	if out, err := exec.Command("ip", "netns", "add", full).CombinedOutput(); err != nil {
		t.Fatalf("netns: ip netns add %s: %v: %s", full, err, out)
	}
	ns := &NS{Name: full, t: t}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", full).CombinedOutput(); err != nil {
			t.Errorf("netns: ip netns del %s: %v: %s", full, err, out)
		}
	})
	ns.MustRun("ip", "link", "set", "lo", "up")
	return ns
}

// Path is the namespace's bind mount, usable with setns(2).
func (ns *NS) Path() string { return "/run/netns/" + ns.Name }

// Do runs fn inside the namespace on a dedicated, locked OS thread and
// returns its error. Sockets fn creates belong to the namespace and may be
// used from any goroutine afterwards; goroutines fn starts do not run in
// the namespace. The thread is discarded when fn returns, so the namespace
// never leaks into the rest of the process.
func (ns *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the runtime terminates a thread whose goroutine
		// exits while locked, and with it the namespace switch.
		runtime.LockOSThread()
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("netns: panic in %s: %v", ns.Name, r)
			}
		}()
		f, err := os.Open(ns.Path())
		if err != nil {
			errc <- fmt.Errorf("netns: %w", err)
			return
		}
		err = unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
		f.Close()
		if err != nil {
			errc <- fmt.Errorf("netns: setns %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Run executes a command inside the namespace (`ip netns exec`), e.g.
// ns.Run("nft", "-f", path), and returns its combined output.
func (ns *NS) Run(args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, errors.New("netns: Run without a command")
	}
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("netns %s: %s: %w: %s", ns.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// MustRun is Run that fails the test on error.
func (ns *NS) MustRun(args ...string) string {
	ns.t.Helper()
	out, err := ns.Run(args...)
	if err != nil {
		ns.t.Fatal(err)
	}
	return string(out)
}

// Veth connects a and b with a veth pair, gives each end its address (an
// invalid Prefix skips it; IPv6 addresses skip duplicate address detection
// so they are usable at once), brings both ends up, routes the SSM ranges
// 232.0.0.0/8 and ff3e::/16 to the veth in both namespaces, and waits for
// the link to come up. It returns the interface names in a and in b.
func Veth(t TB, a, b *NS, addrA, addrB netip.Prefix) (ifA, ifB string) {
	t.Helper()
	suffix := randHex(3)
	ifA, ifB = "h3a-"+suffix, "h3b-"+suffix
	a.MustRun("ip", "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b.Name)
	for _, e := range []struct {
		ns   *NS
		dev  string
		addr netip.Prefix
	}{{a, ifA, addrA}, {b, ifB, addrB}} {
		if e.addr.IsValid() {
			args := []string{"ip", "addr", "add", e.addr.String(), "dev", e.dev}
			if e.addr.Addr().Is6() {
				args = append(args, "nodad")
			}
			e.ns.MustRun(args...)
		}
		e.ns.MustRun("ip", "link", "set", e.dev, "up")
	}
	for _, e := range []struct {
		ns  *NS
		dev string
	}{{a, ifA}, {b, ifB}} {
		e.ns.MustRun("ip", "-4", "route", "replace", "232.0.0.0/8", "dev", e.dev)
		e.ns.MustRun("ip", "-6", "route", "replace", "ff3e::/16", "dev", e.dev)
		waitUp(t, e.ns, e.dev)
	}
	return ifA, ifB
}

// AddAddr adds another address to dev in ns (IPv6 without DAD).
func (ns *NS) AddAddr(dev string, p netip.Prefix) {
	ns.t.Helper()
	args := []string{"ip", "addr", "add", p.String(), "dev", dev}
	if p.Addr().Is6() {
		args = append(args, "nodad")
	}
	ns.MustRun(args...)
}

// waitUp waits until dev reports carrier (LOWER_UP), at most 3 s.
func waitUp(t TB, ns *NS, dev string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		out, err := ns.Run("ip", "-o", "link", "show", "dev", dev)
		if err == nil && strings.Contains(string(out), "LOWER_UP") && strings.Contains(string(out), "state UP") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("netns %s: %s not up after 3 s: %s %v", ns.Name, dev, out, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
