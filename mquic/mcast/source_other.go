//go:build !linux

package mcast

import "net/netip"

// SourceAddr returns the address a sender on the named interface would
// send from; multicast sockets are not implemented on this platform.
func SourceAddr(string, netip.Addr) (netip.Addr, error) { return netip.Addr{}, errPlatform }
