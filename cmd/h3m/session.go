package main

import (
	"encoding/hex"
	"flag"
	"net/netip"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/unicast/origin"
)

// sessionFlags are the flags that describe the multicast session a sender
// runs.
type sessionFlags struct {
	group, source, iface string
	port, ttl            int
	rate                 uint64
	profile, suite, keys string
	sessionID            string
	idle                 time.Duration
	maxConcurrent        uint
	digests              string
}

func (f *sessionFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.group, "group", "232.255.1.1", "multicast group address (an SSM address: 232.0.0.0/8 or ff3x::/32)")
	fs.IntVar(&f.port, "port", 5000, "UDP port of the multicast session")
	fs.StringVar(&f.source, "source", "", "SSM source address to send from (default: the interface's first address of the group's family)")
	fs.StringVar(&f.iface, "interface", "lo", "network interface to send multicast on (always explicit; the default keeps traffic on this host)")
	fs.IntVar(&f.ttl, "ttl", 1, "multicast TTL / hop limit (1: the local network only)")
	fs.Uint64Var(&f.rate, "rate", 100_000_000, "peak flow rate in bit/s (the session's peak-flow-rate; 0 means unpaced, never on a real network)")
	fs.StringVar(&f.profile, "profile", "h3m-11", "protocol profile: h3m-11, h3m-11-data-offset, or h3m-07 (BBC nghq's: no encryption, 1-byte packet numbers)")
	fs.StringVar(&f.suite, "suite", "1301", "cipher suite: 1301 (AES-128-GCM), 1302 (AES-256-GCM), 1303 (ChaCha20-Poly1305) or none")
	fs.StringVar(&f.keys, "key-form", "secret", "key form: secret (keys and header protection derived as RFC 9001 does) or literal (the draft's raw key and iv)")
	fs.StringVar(&f.sessionID, "session-id", "", "session ID in hex, up to 20 bytes (default: 8 random bytes)")
	fs.DurationVar(&f.idle, "idle-timeout", 30*time.Second, "session idle timeout; the sender sends keep-alives at a third of it")
	fs.UintVar(&f.maxConcurrent, "max-concurrent", 16, "max-concurrent-resources: pushes in progress at once")
	fs.StringVar(&f.digests, "digest", "SHA-256", "digest algorithms for Digest and Content-Digest, comma-separated (SHA-256, SHA-512)")
}

// session returns the session config the flags describe.
func (f *sessionFlags) session() (origin.SessionConfig, error) {
	group, err := netip.ParseAddr(f.group)
	if err != nil {
		return origin.SessionConfig{}, usagef("--group %q: not an address", f.group)
	}
	if f.port <= 0 || f.port > 65535 {
		return origin.SessionConfig{}, usagef("--port %d: out of range", f.port)
	}
	cfg := origin.SessionConfig{
		Group: netip.AddrPortFrom(group, uint16(f.port)), Interface: f.iface, ProtocolID: f.profile,
		IdleTimeout: f.idle, MaxConcurrentResources: uint32(f.maxConcurrent), PeakFlowRate: f.rate,
		Digests: splitList(f.digests),
	}
	if f.source != "" {
		if cfg.Source, err = netip.ParseAddr(f.source); err != nil {
			return cfg, usagef("--source %q: %v", f.source, err)
		}
	}
	if f.sessionID != "" {
		if cfg.SessionID, err = hex.DecodeString(f.sessionID); err != nil {
			return cfg, usagef("--session-id %q: not hex", f.sessionID)
		}
	}
	if cfg.Suite, err = origin.ParseSuite(f.suite); err != nil {
		return cfg, usagef("--suite: %v", err)
	}
	switch f.keys {
	case "secret":
	case "literal":
		cfg.LiteralKeys = true
	default:
		return cfg, usagef("--key-form %q: want secret or literal", f.keys)
	}
	return cfg, nil
}

// advertisement builds the session the flags describe, with fresh keys.
func (f *sessionFlags) advertisement() (altsvc.Advertisement, error) {
	cfg, err := f.session()
	if err != nil {
		return altsvc.Advertisement{}, err
	}
	ad, err := origin.NewSession(cfg)
	if err != nil {
		return ad, usageError{err.Error()}
	}
	return ad, nil
}
