package altsvc

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
)

// String renders the alternative as one alt-value: the interpreted
// parameters in a canonical order (the order of the draft's example), then
// every unknown parameter of Params in order. Values are tokens where the
// token syntax allows, quoted-strings otherwise. Parameters at their absent
// value (zero) are left out, as are Params that cannot be represented (a
// name that is not a token, a value with control characters).
// Parse(a.String()) gives an advertisement Equal to a.
func (a *Advertisement) String() string {
	var b strings.Builder
	b.WriteString(percentEncode(a.protocolID()))
	b.WriteByte('=')
	s := &a.Session
	g := s.Group
	if g.Addr().IsValid() {
		writeQuoted(&b, netip.AddrPortFrom(g.Addr().WithZone(""), g.Port()).String())
	} else {
		writeQuoted(&b, ":"+strconv.Itoa(int(g.Port()))) // does not parse: no group
	}
	param := func(name, value string) {
		b.WriteString("; ")
		b.WriteString(name)
		b.WriteByte('=')
		if isToken(value) {
			b.WriteString(value)
		} else {
			writeQuoted(&b, value)
		}
	}
	if s.Source.IsValid() {
		// IPv6 without brackets, as the draft's example writes it.
		param(ParamSourceAddress, s.Source.WithZone("").String())
	}
	if len(s.SessionID) > 0 {
		param(ParamSessionID, hex.EncodeToString(s.SessionID))
	}
	if s.CipherSuite != protect.SuiteNull {
		param(ParamCipherSuite, fmt.Sprintf("%04x", uint16(s.CipherSuite)))
	}
	if len(s.Key) > 0 {
		param(ParamKey, hex.EncodeToString(s.Key))
	}
	if len(s.IV) > 0 {
		param(ParamIV, hex.EncodeToString(s.IV))
	}
	if len(s.Secret) > 0 {
		param(ParamSecret, hex.EncodeToString(s.Secret))
	}
	if s.IdleTimeout > 0 {
		param(ParamSessionIdleTimeout, strconv.FormatInt(ceilDiv(s.IdleTimeout, time.Millisecond), 10))
	}
	if s.MaxConcurrentResources > 0 {
		param(ParamMaxConcurrentResources, strconv.FormatUint(uint64(s.MaxConcurrentResources), 10))
	}
	if s.PeakFlowRate > 0 {
		param(ParamPeakFlowRate, strconv.FormatUint(s.PeakFlowRate, 10))
	}
	if len(s.Extensions) > 0 {
		var e strings.Builder
		for i, x := range s.Extensions {
			if i > 0 {
				e.WriteByte(',')
			}
			fmt.Fprintf(&e, "%04x", x.ID)
			if len(x.Value) > 0 {
				e.WriteByte('=')
				e.WriteString(hex.EncodeToString(x.Value))
			}
		}
		// The ABNF puts DQUOTEs around the list even when it is one token.
		b.WriteString("; " + ParamExtensions + "=")
		writeQuoted(&b, e.String())
	}
	for _, d := range a.DigestAlgorithms {
		param(ParamDigestAlgorithm, d)
	}
	for _, d := range a.SignatureAlgorithms {
		param(ParamSignatureAlgorithm, d)
	}
	if a.HasMaxAge || a.MaxAge > 0 {
		param(ParamMaxAge, strconv.FormatInt(ceilDiv(min(max(a.MaxAge, 0), MaxAgeLimit), time.Second), 10))
	}
	if a.Persist {
		param(ParamPersist, "1")
	}
	for _, p := range a.Params {
		if knownParam(p.Name) || !isToken(p.Name) || !representable(p.Value) {
			continue
		}
		param(p.Name, p.Value)
	}
	return b.String()
}

func ceilDiv(d, unit time.Duration) int64 {
	q := d / unit
	if d%unit != 0 {
		q++
	}
	return int64(q)
}

// representable reports whether v fits in a quoted-string.
func representable(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isQuotedPairChar(v[i]) {
			return false
		}
	}
	return true
}

func writeQuoted(b *strings.Builder, v string) {
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if v[i] == '"' || v[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	b.WriteByte('"')
}

// percentEncode encodes a protocol-id: '%' and every byte that is not a
// tchar become %XX (RFC 7838 §3).
func percentEncode(id string) string {
	var b strings.Builder
	for i := 0; i < len(id); i++ {
		c := id[i]
		if isTchar(c) && c != '%' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Equal reports whether a and o advertise the same thing: the same
// protocol-id, session parameters (those an advertisement carries), algorithm
// sets, ma and persist, and the same unknown parameters in the same order.
// The order and spelling of the interpreted Params do not matter.
func (a *Advertisement) Equal(o *Advertisement) bool {
	if a.protocolID() != o.protocolID() {
		return false
	}
	s, t := &a.Session, &o.Session
	if s.Group != t.Group || s.Source != t.Source || !bytes.Equal(s.SessionID, t.SessionID) ||
		s.CipherSuite != t.CipherSuite || !bytes.Equal(s.Key, t.Key) || !bytes.Equal(s.IV, t.IV) ||
		!bytes.Equal(s.Secret, t.Secret) || s.IdleTimeout != t.IdleTimeout ||
		s.MaxConcurrentResources != t.MaxConcurrentResources || s.PeakFlowRate != t.PeakFlowRate ||
		len(s.Extensions) != len(t.Extensions) {
		return false
	}
	for i := range s.Extensions {
		if s.Extensions[i].ID != t.Extensions[i].ID || !bytes.Equal(s.Extensions[i].Value, t.Extensions[i].Value) {
			return false
		}
	}
	if !equalFoldSet(a.DigestAlgorithms, o.DigestAlgorithms) || !equalFoldSet(a.SignatureAlgorithms, o.SignatureAlgorithms) {
		return false
	}
	if a.HasMaxAge != o.HasMaxAge || a.MaxAge != o.MaxAge || a.Persist != o.Persist {
		return false
	}
	return equalParams(a.unknownParams(), o.unknownParams())
}

func (a *Advertisement) unknownParams() []Param {
	var u []Param
	for _, p := range a.Params {
		if !knownParam(p.Name) {
			u = append(u, p)
		}
	}
	return u
}

func equalParams(a, b []Param) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i].Name, b[i].Name) || a[i].Value != b[i].Value {
			return false
		}
	}
	return true
}

// equalFoldSet compares two duplicate-free sets case-insensitively.
func equalFoldSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
outer:
	for _, x := range a {
		for _, y := range b {
			if strings.EqualFold(x, y) {
				continue outer
			}
		}
		return false
	}
	return true
}

// IsSSM reports whether addr is a source-specific multicast address:
// 232.0.0.0/8 (RFC 4607) or ff3x::/32 with a zero prefix length (RFC 3306).
func IsSSM(addr netip.Addr) bool {
	addr = addr.Unmap()
	if addr.Is4() {
		return addr.As4()[0] == 232
	}
	if !addr.Is6() {
		return false
	}
	b := addr.As16()
	return b[0] == 0xff && b[1]>>4 == 3 && b[2] == 0 && b[3] == 0
}

// Validate checks that the advertisement describes a session a sender or
// receiver of this project can take part in: the session parameters pass
// mquic.Params.Validate, the protocol-id is an h3m one, and an SSM group
// comes with its source-address (draft §10.1: MUST be present for SSM).
// Parse does not call it: the draft's own example (an 8-byte key for
// TLS_AES_128_GCM_SHA256) parses but does not validate.
func (a *Advertisement) Validate() error {
	id := a.protocolID()
	if _, _, err := parseProtocolID(id); err != nil {
		return fmt.Errorf("alt-svc: protocol-id: %w", err)
	}
	if err := a.Session.Validate(); err != nil {
		return fmt.Errorf("alt-svc %s: %w", id, err)
	}
	if IsSSM(a.Session.Group.Addr()) && !a.Session.Source.IsValid() {
		return fmt.Errorf("alt-svc %s: %w", id, &mquic.ParamError{
			Param: ParamSourceAddress,
			Err:   fmt.Errorf("missing, but group %s is a source-specific multicast address", a.Session.Group.Addr()),
		})
	}
	if a.HasMaxAge && a.MaxAge < 0 {
		return fmt.Errorf("alt-svc %s: %w", id, errors.New("negative ma"))
	}
	if err := a.checkProfile(); err != nil {
		return fmt.Errorf("alt-svc %s: %w", id, err)
	}
	return nil
}

// ErrProfile is wrapped by Validate's error for a session its protocol
// profile cannot carry.
var ErrProfile = errors.New("the profile cannot carry this session")

// checkProfile refuses the combinations a profile cannot carry. h3m-07 is
// BBC nghq's profile: its receivers drop a packet with a frame type they
// do not know and know no HTTP/3 frame beyond RFC 9114's, so neither
// asymmetric packet authentication (MANIFEST frames) nor DATA_WITH_OFFSET
// (the data-offset experiment) can be sent in it.
func (a *Advertisement) checkProfile() error {
	if a.Draft != 7 {
		return nil
	}
	if a.Session.HasExtension(manifest.ExtensionID) {
		return fmt.Errorf("%w: asymmetric packet authentication (extension %04x) sends MANIFEST frames, which h3m-07 (nghq) receivers drop; use h3m-11", ErrProfile, manifest.ExtensionID)
	}
	if a.HasExperiment(ExperimentDataOffset) {
		return fmt.Errorf("%w: DATA_WITH_OFFSET (the %s experiment) is unknown to h3m-07 (nghq) receivers; use h3m-11-%s", ErrProfile, ExperimentDataOffset, ExperimentDataOffset)
	}
	return nil
}
