//go:build !linux

package forger

import (
	"errors"
	"net"
	"net/netip"
)

func dialRaw(*net.Interface, netip.AddrPort, netip.AddrPort) (*Conn, error) {
	return nil, errors.New("forger: spoofed sources need Linux")
}
