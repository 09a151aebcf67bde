package main

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
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

// interfaceAddr returns the first address of iface in the family of group.
func interfaceAddr(iface string, v6 bool) (netip.Addr, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--interface %q: %w", iface, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--interface %q: %w", iface, err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			ad := p.Addr()
			if ad.Is4() != v6 && !ad.IsLinkLocalUnicast() {
				return ad, nil
			}
		}
	}
	return netip.Addr{}, fmt.Errorf("--interface %q has no usable address of the group's family: give --source", iface)
}

// advertisement builds the session the flags describe, with fresh keys.
func (f *sessionFlags) advertisement() (altsvc.Advertisement, error) {
	var ad altsvc.Advertisement
	group, err := netip.ParseAddr(f.group)
	if err != nil || !group.IsMulticast() {
		return ad, usagef("--group %q: not a multicast address", f.group)
	}
	if f.port <= 0 || f.port > 65535 {
		return ad, usagef("--port %d: out of range", f.port)
	}
	var src netip.Addr
	if f.source != "" {
		if src, err = netip.ParseAddr(f.source); err != nil {
			return ad, usagef("--source %q: %v", f.source, err)
		}
	} else if src, err = interfaceAddr(f.iface, group.Is6()); err != nil {
		return ad, usageError{err.Error()}
	}
	p := mquic.Params{
		Group:                  netip.AddrPortFrom(group, uint16(f.port)),
		Source:                 src,
		IdleTimeout:            f.idle,
		MaxConcurrentResources: uint32(f.maxConcurrent),
		PeakFlowRate:           f.rate,
	}
	if f.sessionID == "" {
		p.SessionID = make([]byte, 8)
		rand.Read(p.SessionID)
	} else if p.SessionID, err = hex.DecodeString(f.sessionID); err != nil {
		return ad, usagef("--session-id %q: not hex", f.sessionID)
	}
	switch f.suite {
	case "none":
		p.CipherSuite = protect.SuiteNull
	case "1301", "1302", "1303":
		var v uint16
		fmt.Sscanf(f.suite, "%x", &v)
		p.CipherSuite = protect.Suite(v)
	default:
		return ad, usagef("--suite %q: want 1301, 1302, 1303 or none", f.suite)
	}
	switch f.profile {
	case "h3m-11":
		ad.Draft = 11
	case "h3m-11-data-offset":
		ad.Draft, ad.Experiments = 11, []string{altsvc.ExperimentDataOffset}
	case "h3m-07":
		// nghq's profile: its receiver knows no encryption.
		ad.Draft = 7
		p.PacketNumberLen = 1
		if f.suite != "none" {
			return ad, usagef("--profile h3m-07 needs --suite none (nghq's receiver has no decryption)")
		}
	default:
		return ad, usagef("--profile %q: want h3m-11, h3m-11-data-offset or h3m-07", f.profile)
	}
	ad.ProtocolID = altsvc.FormatProtocolID(ad.Draft, ad.Experiments...)
	if p.CipherSuite != protect.SuiteNull {
		switch f.keys {
		case "secret":
			p.Secret = make([]byte, p.CipherSuite.Hash()().Size())
			rand.Read(p.Secret)
		case "literal":
			p.Key = make([]byte, p.CipherSuite.KeyLen())
			p.IV = make([]byte, p.CipherSuite.IVLen())
			rand.Read(p.Key)
			rand.Read(p.IV)
		default:
			return ad, usagef("--key-form %q: want secret or literal", f.keys)
		}
	}
	for _, d := range strings.Split(f.digests, ",") {
		if d = strings.TrimSpace(d); d != "" {
			ad.DigestAlgorithms = append(ad.DigestAlgorithms, d)
		}
	}
	ad.Session = p
	if err := ad.Validate(); err != nil {
		return ad, usageError{err.Error()}
	}
	return ad, nil
}

// rekey returns a copy of ad with a new session ID and new keys, for a
// rollover.
func rekey(ad altsvc.Advertisement) altsvc.Advertisement {
	next := ad
	next.Session = ad.Session.Clone()
	rand.Read(next.Session.SessionID)
	if len(next.Session.SessionID) == 0 {
		next.Session.SessionID = make([]byte, 8)
		rand.Read(next.Session.SessionID)
	}
	for _, k := range [][]byte{next.Session.Secret, next.Session.Key, next.Session.IV} {
		rand.Read(k)
	}
	return next
}

// makeAsymmetric makes ad an asymmetric session whose manifests key signs
// (spec/transport.md): its extensions advertise the packet-authentication
// profile, which pins key's public key, with a random manifest stream ID.
// Any profile ad had is replaced.
func makeAsymmetric(ad *altsvc.Advertisement, key crypto.Signer) error {
	var sid [4]byte
	rand.Read(sid[:])
	prof, err := manifest.NewProfile(key.Public(), binary.BigEndian.Uint32(sid[:]))
	if err != nil {
		return fmt.Errorf("manifest key: %w", err)
	}
	p := &ad.Session
	var exts []mquic.Extension
	for _, e := range p.Extensions {
		if e.ID != manifest.ExtensionID {
			exts = append(exts, e)
		}
	}
	p.Extensions = append(exts, mquic.Extension{ID: manifest.ExtensionID, Value: prof.Value()})
	return ad.Validate()
}

// newManifestKey generates an Ed25519 manifest key.
func newManifestKey() crypto.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return priv
}
