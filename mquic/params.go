// Package mquic implements the multicast QUIC transport profile of
// draft-pardue-quic-http-mcast: a one-way QUIC session without a handshake,
// carried in short-header packets to an IP multicast group, whose parameters
// and keys come from an out-of-band advertisement.
//
// A Sender packetizes stream data into protected packets, paces them to the
// session's peak flow rate and writes them in batches; a Receiver authenticates
// and decrypts packets, drops replays, reassembles streams and reports exactly
// which stream bytes were lost. Both are run by their Run method, on a
// goroutine the caller owns, until its context ends (or, for a Sender, until
// Close has flushed everything). Both work on any net.PacketConn, so tests
// can wrap the socket; package mcast opens the real multicast sockets.
package mquic

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/h3m-project/h3m/mquic/protect"
)

// MaxSessionIDLen is the longest session ID (QUIC Destination Connection ID)
// a session may use: 160 bits.
const MaxSessionIDLen = 20

// DefaultPacketNumberLen is the packet-number length this project's senders
// use: with 4 bytes a receiver that joins late decodes its first packet
// correctly (see spec/transport.md).
const DefaultPacketNumberLen = 4

// Params are the transport parameters of a multicast QUIC session, as an
// advertisement carries them. They never change during the session's life.
type Params struct {
	// Group is the multicast group address and UDP port (the Alt-Svc
	// alt-authority).
	Group netip.AddrPort
	// Source is the SSM source address (source-address). The zero value means
	// any-source multicast.
	Source netip.Addr
	// SessionID is carried as the Destination Connection ID of every packet
	// (0 to 20 bytes).
	SessionID []byte

	// CipherSuite selects packet protection. SuiteNull means none.
	CipherSuite protect.Suite
	// Key and IV are the raw AEAD key and IV of the draft's literal form.
	// Header protection is then absent (an all-zero mask).
	Key, IV []byte
	// Secret is this project's secret form: key, IV and header-protection
	// key are derived from it as RFC 9001 §5.1 derives 1-RTT keys. Exactly
	// one of Secret and Key/IV is set for a protected session.
	Secret []byte

	// PacketNumberLen is the fixed packet-number length of every packet,
	// 1 to 4 bytes; 0 means DefaultPacketNumberLen.
	PacketNumberLen int
	// IdleTimeout is session-idle-timeout; 0 means the session never times out.
	IdleTimeout time.Duration
	// MaxConcurrentResources is max-concurrent-resources; 0 means unlimited.
	MaxConcurrentResources uint32
	// PeakFlowRate is peak-flow-rate in bits per second of QUIC payload,
	// aggregated over the session; 0 means unlimited.
	PeakFlowRate uint64
	// Extensions are the advertised extension transport parameters.
	Extensions []Extension
}

// Extension is one entry of the extensions session parameter: a QUIC
// transport parameter ID with an optional value.
type Extension struct {
	ID    uint16
	Value []byte
}

// PNLen returns the session's packet-number length, applying the default.
func (p *Params) PNLen() int {
	if p.PacketNumberLen == 0 {
		return DefaultPacketNumberLen
	}
	return p.PacketNumberLen
}

// HasExtension reports whether the session advertises the extension id.
func (p *Params) HasExtension(id uint16) bool {
	for _, e := range p.Extensions {
		if e.ID == id {
			return true
		}
	}
	return false
}

// ParamError reports an invalid session parameter.
type ParamError struct {
	Param string // the advertisement's name for the parameter
	Err   error
}

func (e *ParamError) Error() string { return "session parameter " + e.Param + ": " + e.Err.Error() }
func (e *ParamError) Unwrap() error { return e.Err }

func paramErr(param, format string, args ...any) error {
	return &ParamError{Param: param, Err: fmt.Errorf(format, args...)}
}

// Validate checks that the parameters describe a session this package can
// send or receive, and names the parameter and the problem when not.
func (p *Params) Validate() error {
	if !p.Group.IsValid() {
		return paramErr("group", "missing group address and port")
	}
	g := p.Group.Addr()
	if !g.IsMulticast() {
		return paramErr("group", "%s is not a multicast address", g)
	}
	if p.Group.Port() == 0 {
		return paramErr("group", "UDP port 0")
	}
	if p.Source.IsValid() {
		if p.Source.Unmap().Is4() != g.Unmap().Is4() {
			return paramErr("source-address", "%s and group %s are of different address families", p.Source, g)
		}
		if p.Source.IsMulticast() || p.Source.IsUnspecified() {
			return paramErr("source-address", "%s cannot be a source", p.Source)
		}
	}
	if len(p.SessionID) > MaxSessionIDLen {
		return paramErr("session-id", "%d bytes, at most %d allowed", len(p.SessionID), MaxSessionIDLen)
	}
	if !p.CipherSuite.Supported() {
		return paramErr("cipher-suite", "%s is not supported", p.CipherSuite)
	}
	switch {
	case p.CipherSuite == protect.SuiteNull:
		if len(p.Key) != 0 || len(p.IV) != 0 || len(p.Secret) != 0 {
			return paramErr("cipher-suite", "keys given but no cipher suite (the NULL suite takes none)")
		}
	case len(p.Secret) != 0:
		if len(p.Key) != 0 || len(p.IV) != 0 {
			return paramErr("secret", "give either secret or key and iv, not both")
		}
		if n := p.CipherSuite.Hash()().Size(); len(p.Secret) != n {
			return paramErr("secret", "%d bytes, %s needs %d", len(p.Secret), p.CipherSuite, n)
		}
	default:
		if len(p.Key) != p.CipherSuite.KeyLen() {
			return paramErr("key", "%d bytes, %s needs %d", len(p.Key), p.CipherSuite, p.CipherSuite.KeyLen())
		}
		if len(p.IV) != p.CipherSuite.IVLen() {
			return paramErr("iv", "%d bytes, %s needs %d", len(p.IV), p.CipherSuite, p.CipherSuite.IVLen())
		}
	}
	if n := p.PacketNumberLen; n < 0 || n > 4 {
		return paramErr("packet-number-length", "%d, must be 1 to 4", n)
	}
	if p.IdleTimeout < 0 {
		return paramErr("session-idle-timeout", "negative duration %v", p.IdleTimeout)
	}
	seen := make(map[uint16]bool, len(p.Extensions))
	for _, e := range p.Extensions {
		if seen[e.ID] {
			return paramErr("extensions", "transport parameter %04x listed twice", e.ID)
		}
		seen[e.ID] = true
	}
	return nil
}

// Protector returns the packet protector the parameters describe.
func (p *Params) Protector() (*protect.Protector, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(p.Secret) != 0 {
		return protect.NewFromSecret(p.CipherSuite, p.Secret)
	}
	return protect.New(p.CipherSuite, p.Key, p.IV, nil)
}

// Clone returns a deep copy of the parameters.
func (p *Params) Clone() Params {
	c := *p
	c.SessionID = cloneBytes(p.SessionID)
	c.Key = cloneBytes(p.Key)
	c.IV = cloneBytes(p.IV)
	c.Secret = cloneBytes(p.Secret)
	if p.Extensions != nil {
		c.Extensions = make([]Extension, len(p.Extensions))
		for i, e := range p.Extensions {
			c.Extensions[i] = Extension{ID: e.ID, Value: cloneBytes(e.Value)}
		}
	}
	return c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// errClosed is returned by operations on a closed Sender or Receiver.
var errClosed = errors.New("mquic: closed")
