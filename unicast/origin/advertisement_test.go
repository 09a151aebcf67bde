package origin

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
)

func TestNewSession(t *testing.T) {
	group := netip.MustParseAddrPort("232.255.1.1:5000")
	ad, err := NewSession(SessionConfig{Group: group, Interface: "lo", Suite: protect.SuiteAES128GCM,
		IdleTimeout: 30 * time.Second, MaxConcurrentResources: 16, PeakFlowRate: 1e8, Digests: []string{"SHA-256"}})
	if err != nil {
		t.Fatal(err)
	}
	p := ad.Session
	if ad.ProtocolID != ProtocolH3M11 || p.Group != group || p.Source != netip.MustParseAddr("127.0.0.1") ||
		len(p.SessionID) != DefaultSessionIDLen || len(p.Secret) != 32 || p.Key != nil || p.MaxConcurrentResources != 16 ||
		len(ad.DigestAlgorithms) != 1 {
		t.Fatalf("default session: %+v", ad)
	}
	again, _ := NewSession(SessionConfig{Group: group, Interface: "lo", Suite: protect.SuiteAES128GCM})
	if bytes.Equal(again.Session.SessionID, p.SessionID) || bytes.Equal(again.Session.Secret, p.Secret) {
		t.Error("two sessions share a session ID or a secret")
	}
	lit, err := NewSession(SessionConfig{Group: group, Source: netip.MustParseAddr("192.0.2.1"), Suite: protect.SuiteChaCha20Poly1305,
		LiteralKeys: true, SessionID: []byte{1, 2}, ProtocolID: ProtocolH3M11DataOffset})
	if err != nil {
		t.Fatal(err)
	}
	if lit.Session.Secret != nil || len(lit.Session.Key) != 32 || len(lit.Session.IV) != 12 || !bytes.Equal(lit.Session.SessionID, []byte{1, 2}) ||
		!lit.HasExperiment(altsvc.ExperimentDataOffset) || lit.Session.Source != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("literal keys, data offset: %+v", lit)
	}
	nghq, err := NewSession(SessionConfig{Group: group, Interface: "lo", ProtocolID: ProtocolH3M07})
	if err != nil || nghq.Draft != 7 || nghq.Session.PacketNumberLen != 1 || nghq.Session.Secret != nil {
		t.Errorf("h3m-07: %+v, %v", nghq, err)
	}
	for name, cfg := range map[string]SessionConfig{
		"unicast group":          {Group: netip.MustParseAddrPort("10.0.0.1:5000"), Interface: "lo"},
		"no port":                {Group: netip.AddrPortFrom(group.Addr(), 0), Interface: "lo"},
		"no source":              {Group: group, Interface: "no-such-if0"},
		"unknown profile":        {Group: group, Interface: "lo", ProtocolID: "h3m-99"},
		"h3m-07 with encryption": {Group: group, Interface: "lo", ProtocolID: ProtocolH3M07, Suite: protect.SuiteAES128GCM},
		"long session ID":        {Group: group, Interface: "lo", SessionID: make([]byte, 21)},
	} {
		if _, err := NewSession(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	next := Rekey(ad)
	if bytes.Equal(next.Session.SessionID, p.SessionID) || bytes.Equal(next.Session.Secret, p.Secret) ||
		next.Session.Group != p.Group || len(next.Session.SessionID) != len(p.SessionID) || next.Validate() != nil {
		t.Errorf("rekeyed: %+v", next.Session)
	}
	if bytes.Equal(ad.Session.Secret, next.Session.Secret) || !bytes.Equal(ad.Session.Secret, p.Secret) {
		t.Error("Rekey changed its argument")
	}

	k1, k2 := NewManifestKey(), NewManifestKey()
	if err := MakeAsymmetric(&next, k1); err != nil {
		t.Fatal(err)
	}
	first := next.Session.Extensions
	if err := MakeAsymmetric(&next, k2); err != nil {
		t.Fatal(err)
	}
	if len(next.Session.Extensions) != 1 || next.Session.Extensions[0].ID != manifest.ExtensionID || bytes.Equal(first[0].Value, next.Session.Extensions[0].Value) {
		t.Errorf("asymmetric twice: %+v", next.Session.Extensions)
	}
	prof, err := manifest.ParseProfile(next.Session.Extensions[0].Value)
	if pub, _ := manifest.NewPublicKey(k2.Public()); err != nil || !pub.Equal(prof.Key) {
		t.Errorf("the profile does not pin the second key: %v", err)
	}
}

func TestParseSuite(t *testing.T) {
	for s, want := range map[string]protect.Suite{"1301": protect.SuiteAES128GCM, "1302": protect.SuiteAES256GCM,
		"1303": protect.SuiteChaCha20Poly1305, "none": protect.SuiteNull} {
		if got, err := ParseSuite(s); err != nil || got != want {
			t.Errorf("%s: %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "0", "0000", "1304", "13011", "x301", "AES"} {
		if _, err := ParseSuite(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
