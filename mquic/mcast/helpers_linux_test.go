//go:build linux

package mcast

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
)

// testGroup returns a random SSM group in 232.0.0.0/8 and a random port, so
// that parallel test runs (ours and other packages') do not share traffic.
func testGroup() netip.AddrPort {
	a := netip.AddrFrom4([4]byte{232, byte(rand.IntN(256)), byte(rand.IntN(256)), byte(1 + rand.IntN(254))})
	// Below the ephemeral ports (32768 and up): see internal/mcasttest.Group.
	return netip.AddrPortFrom(a, uint16(10000+rand.IntN(22000)))
}

var loopback = netip.MustParseAddr("127.0.0.1")

// tlogWriter sends slog output to t.Log until the test ends.
type tlogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &tlogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lo returns the base config of the tests: interface lo, TTL 1.
func lo(t testing.TB, group netip.AddrPort) Config {
	return Config{Group: group, Interface: "lo", TTL: 1, Logger: testLogger(t)}
}

func mustSender(t testing.TB, cfg Config) *Conn {
	t.Helper()
	c, err := ListenSender(cfg)
	if err != nil {
		t.Fatalf("ListenSender: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustReceiver(t testing.TB, cfg Config) *Conn {
	t.Helper()
	c, err := ListenReceiver(cfg)
	if err != nil {
		t.Fatalf("ListenReceiver: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// fillPacket writes a datagram of n bytes for seq: the sequence number, then
// bytes derived from it, so that any corruption or mix-up is visible.
func fillPacket(b []byte, seq uint64) {
	binary.BigEndian.PutUint64(b, seq)
	x := uint32(seq)*2654435761 + 1
	for i := 8; i < len(b); i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
}

func checkPacket(p []byte, seq uint64, size int) bool {
	if len(p) != size || len(p) < 8 {
		return false
	}
	want := make([]byte, size)
	fillPacket(want, seq)
	return bytes.Equal(p, want)
}

func isRoot() bool { return os.Geteuid() == 0 }
