package mcasttest

import (
	"net"
	"sync"
	"time"
)

// CaptureConn is a net.PacketConn that keeps copies of the packets written
// to it and never delivers anything: tests give it to a sender to see what
// it would put on the wire, or to a receiver they feed with HandlePacket.
type CaptureConn struct {
	mu   sync.Mutex
	pkts [][]byte
}

// WriteTo keeps a copy of p.
func (c *CaptureConn) WriteTo(p []byte, _ net.Addr) (int, error) {
	c.mu.Lock()
	c.pkts = append(c.pkts, append([]byte(nil), p...))
	c.mu.Unlock()
	return len(p), nil
}

// ReadFrom blocks forever.
func (c *CaptureConn) ReadFrom([]byte) (int, net.Addr, error) { select {} }

// Close does nothing.
func (c *CaptureConn) Close() error { return nil }

// LocalAddr returns an empty address.
func (c *CaptureConn) LocalAddr() net.Addr { return &net.UDPAddr{} }

// SetDeadline does nothing.
func (c *CaptureConn) SetDeadline(time.Time) error { return nil }

// SetReadDeadline does nothing.
func (c *CaptureConn) SetReadDeadline(time.Time) error { return nil }

// SetWriteDeadline does nothing.
func (c *CaptureConn) SetWriteDeadline(time.Time) error { return nil }

// Packets returns copies of the packets written so far.
func (c *CaptureConn) Packets() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([][]byte, len(c.pkts))
	for i, p := range c.pkts {
		out[i] = append([]byte(nil), p...)
	}
	return out
}
