package mcast

import (
	"net/netip"
	"testing"
)

// TestSourceAddr: the source an advertisement names is the address a
// sender on that interface sends from.
func TestSourceAddr(t *testing.T) {
	group := netip.MustParseAddr("232.255.9.1")
	got, err := SourceAddr("lo", group)
	if err != nil || got != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("SourceAddr(lo) = %v, %v; want 127.0.0.1", got, err)
	}
	c, err := ListenSender(Config{Group: netip.AddrPortFrom(group, 5999), Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Source() != got {
		t.Errorf("the sender sends from %v, SourceAddr says %v", c.Source(), got)
	}
	if _, err := SourceAddr("no-such-if0", group); err == nil {
		t.Error("an unknown interface has a source address")
	}
}
