//go:build !linux

package mcast

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"
)

// errPlatform is returned by ListenSender and ListenReceiver where the
// socket code (setsockopt layouts, sendmmsg/recvmmsg, GSO/GRO) is not
// implemented.
var errPlatform = fmt.Errorf("mcast: multicast sockets are implemented for linux only, not %s: %w", runtime.GOOS, errors.ErrUnsupported)

// Conn is a multicast UDP socket. On this platform it cannot be opened.
type Conn struct{}

// ListenSender returns an error on this platform.
func ListenSender(cfg Config) (*Conn, error) {
	if err := cfg.validate(false); err != nil {
		return nil, err
	}
	return nil, errPlatform
}

// ListenReceiver returns an error on this platform.
func ListenReceiver(cfg Config) (*Conn, error) {
	if err := cfg.validate(true); err != nil {
		return nil, err
	}
	return nil, errPlatform
}

// WriteBatch returns an error on this platform.
func (c *Conn) WriteBatch([][]byte, netip.AddrPort) (int, error) { return 0, errPlatform }

// ReadBatch returns an error on this platform.
func (c *Conn) ReadBatch([]Message) (int, error) { return 0, errPlatform }

// ReadFrom returns an error on this platform.
func (c *Conn) ReadFrom([]byte) (int, net.Addr, error) { return 0, nil, errPlatform }

// WriteTo returns an error on this platform.
func (c *Conn) WriteTo([]byte, net.Addr) (int, error) { return 0, errPlatform }

// Close returns an error on this platform.
func (c *Conn) Close() error { return errPlatform }

// LocalAddr returns nil on this platform.
func (c *Conn) LocalAddr() net.Addr { return nil }

// SetDeadline returns an error on this platform.
func (c *Conn) SetDeadline(time.Time) error { return errPlatform }

// SetReadDeadline returns an error on this platform.
func (c *Conn) SetReadDeadline(time.Time) error { return errPlatform }

// SetWriteDeadline returns an error on this platform.
func (c *Conn) SetWriteDeadline(time.Time) error { return errPlatform }

// RecvBufferSize returns 0 on this platform.
func (c *Conn) RecvBufferSize() int { return 0 }

// SendBufferSize returns 0 on this platform.
func (c *Conn) SendBufferSize() int { return 0 }

// GSO returns false on this platform.
func (c *Conn) GSO() bool { return false }

// GRO returns false on this platform.
func (c *Conn) GRO() bool { return false }

// MaxSegments returns MaxGSOSegments.
func (c *Conn) MaxSegments() int { return MaxGSOSegments }

// Group returns the zero AddrPort on this platform.
func (c *Conn) Group() netip.AddrPort { return netip.AddrPort{} }

// Source returns the zero Addr on this platform.
func (c *Conn) Source() netip.Addr { return netip.Addr{} }

// Interface returns nil on this platform.
func (c *Conn) Interface() *net.Interface { return nil }
