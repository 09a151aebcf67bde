package mcast

import (
	"fmt"
	"net"
	"net/netip"
)

// SourceAddr returns the address a sender on the named interface sends
// from when Config.Source is unset: the interface's first address of the
// group's family (a link-local one, with its zone, only when it has no
// other). It is the source an advertisement names, which receivers join.
func SourceAddr(iface string, group netip.Addr) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("mcast: interface %q: %w", iface, err)
	}
	return interfaceAddr(ifi, group.Unmap().Is6())
}
