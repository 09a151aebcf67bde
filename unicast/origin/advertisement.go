package origin

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/fec"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
)

// The protocol profiles NewSession knows (SessionConfig.ProtocolID).
const (
	// ProtocolH3M11 is draft 11's profile.
	ProtocolH3M11 = "h3m-11"
	// ProtocolH3M11DataOffset is draft 11's with bodies in DATA_WITH_OFFSET
	// frames.
	ProtocolH3M11DataOffset = "h3m-11-" + altsvc.ExperimentDataOffset
	// ProtocolH3M07 is BBC nghq's profile: no packet protection (its
	// receiver has no decryption) and 1-byte packet numbers.
	ProtocolH3M07 = "h3m-07"
)

// DefaultSessionIDLen is the length of the random session IDs NewSession
// and Rekey draw.
const DefaultSessionIDLen = 8

// SessionConfig describes a multicast session for NewSession.
type SessionConfig struct {
	// Group is the multicast group and UDP port: an SSM group
	// (232.0.0.0/8 or ff3x::/32).
	Group netip.AddrPort
	// Source is the address the session is sent from, which receivers
	// join; the zero value means the address a sender on Interface sends
	// from (mcast.SourceAddr).
	Source    netip.Addr
	Interface string
	// ProtocolID is the profile: ProtocolH3M11 (when empty),
	// ProtocolH3M11DataOffset or ProtocolH3M07.
	ProtocolID string
	// Suite is the cipher suite. Its zero value, protect.SuiteNull, sends
	// packets unprotected (which ProtocolH3M07 requires).
	Suite protect.Suite
	// LiteralKeys gives the session the draft's raw key and IV instead of
	// a secret from which keys and header protection are derived as RFC
	// 9001 does.
	LiteralKeys bool
	// SessionID is the session ID, at most mquic.MaxSessionIDLen bytes;
	// nil means DefaultSessionIDLen random bytes.
	SessionID []byte
	// IdleTimeout, MaxConcurrentResources and PeakFlowRate are the session
	// parameters (PeakFlowRate 0: unpaced, never on a real network).
	IdleTimeout            time.Duration
	MaxConcurrentResources uint32
	PeakFlowRate           uint64
	// Digests are the digest algorithms the session advertises.
	Digests []string
	// FEC, if positive, adds forward error correction at this overhead (a
	// fraction: 0.05 adds 5 % repair packets; see AddFEC).
	FEC float64
}

// NewSession returns the advertisement of the session cfg describes, with
// fresh keys. Publisher.Start opens it.
func NewSession(cfg SessionConfig) (altsvc.Advertisement, error) {
	var ad altsvc.Advertisement
	group := cfg.Group.Addr()
	if !group.IsMulticast() {
		return ad, fmt.Errorf("origin: session: group %v is not a multicast address", group)
	}
	if cfg.Group.Port() == 0 {
		return ad, errors.New("origin: session: the group has no port")
	}
	src := cfg.Source
	if !src.IsValid() {
		var err error
		if src, err = mcast.SourceAddr(cfg.Interface, group); err != nil {
			return ad, fmt.Errorf("origin: session: no source address (give one): %w", err)
		}
	}
	p := mquic.Params{
		Group:                  cfg.Group,
		Source:                 src,
		SessionID:              slices.Clone(cfg.SessionID),
		CipherSuite:            cfg.Suite,
		IdleTimeout:            cfg.IdleTimeout,
		MaxConcurrentResources: cfg.MaxConcurrentResources,
		PeakFlowRate:           cfg.PeakFlowRate,
	}
	if p.SessionID == nil {
		p.SessionID = make([]byte, DefaultSessionIDLen)
		rand.Read(p.SessionID)
	}
	switch cfg.ProtocolID {
	case "", ProtocolH3M11:
		ad.Draft = 11
	case ProtocolH3M11DataOffset:
		ad.Draft, ad.Experiments = 11, []string{altsvc.ExperimentDataOffset}
	case ProtocolH3M07:
		ad.Draft = 7
		p.PacketNumberLen = 1
		if cfg.Suite != protect.SuiteNull {
			return ad, fmt.Errorf("origin: session: %s has no packet protection (nghq's receiver has no decryption): the suite must be none", ProtocolH3M07)
		}
	default:
		return ad, fmt.Errorf("origin: session: unknown profile %q (want %s, %s or %s)", cfg.ProtocolID, ProtocolH3M11, ProtocolH3M11DataOffset, ProtocolH3M07)
	}
	ad.ProtocolID = altsvc.FormatProtocolID(ad.Draft, ad.Experiments...)
	if p.CipherSuite != protect.SuiteNull {
		if cfg.LiteralKeys {
			p.Key = make([]byte, p.CipherSuite.KeyLen())
			p.IV = make([]byte, p.CipherSuite.IVLen())
		} else if p.CipherSuite.Supported() {
			p.Secret = make([]byte, p.CipherSuite.Hash()().Size())
		}
	}
	for _, b := range [][]byte{p.Secret, p.Key, p.IV} {
		rand.Read(b)
	}
	ad.Session = p
	ad.DigestAlgorithms = slices.Clone(cfg.Digests)
	if cfg.FEC > 0 {
		if err := AddFEC(&ad, cfg.FEC); err != nil {
			return ad, fmt.Errorf("origin: session: %w", err)
		}
	}
	if err := ad.Validate(); err != nil {
		return ad, fmt.Errorf("origin: session: %w", err)
	}
	return ad, nil
}

// Rekey returns a copy of ad with a new random session ID (of the same
// length, DefaultSessionIDLen when it had none) and new random keys, for a
// rollover successor.
func Rekey(ad altsvc.Advertisement) altsvc.Advertisement {
	next := ad
	next.Session = ad.Session.Clone()
	if len(next.Session.SessionID) == 0 {
		next.Session.SessionID = make([]byte, DefaultSessionIDLen)
	}
	for _, b := range [][]byte{next.Session.SessionID, next.Session.Secret, next.Session.Key, next.Session.IV} {
		rand.Read(b)
	}
	return next
}

// MakeAsymmetric makes ad an asymmetric session whose manifests key signs
// (spec/transport.md): its extensions advertise the packet-authentication
// profile, which pins key's public key (Ed25519 or P-256), with a random
// manifest stream ID. Any profile ad had is replaced. The publisher of the
// session needs key (PublisherConfig.ManifestKeys, AddManifestKey).
func MakeAsymmetric(ad *altsvc.Advertisement, key crypto.Signer) error {
	var sid [4]byte
	rand.Read(sid[:])
	prof, err := manifest.NewProfile(key.Public(), binary.BigEndian.Uint32(sid[:]))
	if err != nil {
		return fmt.Errorf("origin: manifest key: %w", err)
	}
	p := &ad.Session
	exts := slices.DeleteFunc(slices.Clone(p.Extensions), func(e mquic.Extension) bool { return e.ID == manifest.ExtensionID })
	p.Extensions = append(exts, mquic.Extension{ID: manifest.ExtensionID, Value: prof.Value()})
	return ad.Validate()
}

// AddFEC makes ad a session with forward error correction
// (spec/transport.md): its extensions advertise the FEC parameters of
// overhead (0.05: 5 % repair packets) over blocks of the default size and
// time, which the session's sender follows. Receivers that do not know the
// extension ignore it and drop the repair packets. Any FEC parameters ad
// had are replaced.
func AddFEC(ad *altsvc.Advertisement, overhead float64) error {
	fp, err := fec.NewParams(overhead, 0, 0)
	if err != nil {
		return err
	}
	p := &ad.Session
	exts := slices.DeleteFunc(slices.Clone(p.Extensions), func(e mquic.Extension) bool { return e.ID == fec.ExtensionID })
	p.Extensions = append(exts, mquic.Extension{ID: fec.ExtensionID, Value: fp.Value()})
	return ad.Validate()
}

// NewManifestKey generates an Ed25519 key for the manifests of an
// asymmetric session.
func NewManifestKey() crypto.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return priv
}

// ParseSuite reads a cipher suite as h3m's command line names it: "1301"
// (AES-128-GCM), "1302" (AES-256-GCM), "1303" (ChaCha20-Poly1305), the
// hex values of the TLS registry, or "none".
func ParseSuite(s string) (protect.Suite, error) {
	if s == "none" {
		return protect.SuiteNull, nil
	}
	v, err := strconv.ParseUint(s, 16, 16)
	if err != nil || len(s) != 4 || v == 0 || !protect.Suite(v).Supported() {
		return 0, fmt.Errorf("cipher suite %q: want 1301, 1302, 1303 or none", s)
	}
	return protect.Suite(v), nil
}
