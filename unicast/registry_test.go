package unicast

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
)

func TestSessions(t *testing.T) {
	var ss Sessions
	bad := testAd(t, "x")
	bad.Session.Secret = bad.Session.Secret[:5]
	if _, err := ss.Announce(bad); err == nil {
		t.Error("invalid advertisement announced")
	}
	ad := testAd(t, "s1")
	id, err := ss.Announce(ad)
	if err != nil || id != "7331" {
		t.Fatalf("announce: %q, %v", id, err)
	}
	if _, err := ss.Announce(ad); !errors.Is(err, ErrDuplicateSession) {
		t.Errorf("duplicate: %v", err)
	}
	// The registry keeps its own copy.
	ad.Session.Secret[0] ^= 1
	if s, _ := ss.Get(id); s.Advertisement.Session.Secret[0] == ad.Session.Secret[0] {
		t.Error("registry shares the caller's secret")
	}
	if err := ss.Activate("nope"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("activate unknown: %v", err)
	}
	if err := ss.SetSuccessor(id, "nope"); !errors.Is(err, ErrUnknownSession) {
		t.Errorf("unknown successor: %v", err)
	}
	if err := ss.SetSuccessor(id, id); !errors.Is(err, ErrSessionState) {
		t.Errorf("self successor: %v", err)
	}
	ss.Activate(id)
	ss.End(id)
	if err := ss.Activate(id); !errors.Is(err, ErrSessionState) {
		t.Errorf("activate ended: %v", err)
	}
	if s, _ := ss.Get(id); s.State != StateEnded || s.Started.IsZero() || s.Ended.IsZero() || s.Announced.IsZero() {
		t.Errorf("session: %+v", s)
	}

	small := Sessions{MaxEnded: 2}
	var ids []string
	for i := range 4 {
		id, err := small.Announce(testAd(t, fmt.Sprintf("e%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	live, _ := small.Announce(testAd(t, "live"))
	for _, id := range ids {
		small.End(id)
	}
	var kept []string
	for _, s := range small.List() {
		kept = append(kept, s.ID)
	}
	if want := []string{ids[2], ids[3], live}; strings.Join(kept, ",") != strings.Join(want, ",") {
		t.Errorf("kept %v, want %v", kept, want)
	}
}

func TestSessionsAltSvc(t *testing.T) {
	var ss Sessions
	if v := ss.AltSvc(time.Now()); v != "" {
		t.Errorf("empty registry: %q", v)
	}
	id, _ := ss.Announce(testAd(t, "ma"))
	now := time.Now()
	ss.SetExpiry(id, now.Add(30*time.Second+time.Millisecond))
	ads, _, err := altsvc.Parse(ss.AltSvc(now))
	if err != nil || len(ads) != 1 || ads[0].MaxAge != 31*time.Second {
		t.Errorf("ma: %+v, %v", ads, err)
	}
	// Past its expiry but not ended: still advertised, briefly.
	ads, _, _ = altsvc.Parse(ss.AltSvc(now.Add(time.Hour)))
	if len(ads) != 1 || ads[0].MaxAge != time.Second {
		t.Errorf("expired: %+v", ads)
	}
	ss.End(id)
	if v := ss.AltSvc(now); v != altsvc.Clear {
		t.Errorf("all ended: %q", v)
	}
}

func TestCatalog(t *testing.T) {
	c := Catalog{MaxEntries: 3, MaxAge: time.Minute}
	now := time.Now()
	for i := range 5 {
		c.Add(CatalogEntry{Path: fmt.Sprintf("/%d", i), Pushed: now.Add(time.Duration(i) * time.Second)})
	}
	l := c.listAt(now.Add(5 * time.Second))
	if len(l) != 3 || l[0].Path != "/2" || l[2].Path != "/4" {
		t.Errorf("bounded by count: %+v", l)
	}
	l = c.listAt(now.Add(63500 * time.Millisecond))
	if len(l) != 1 || l[0].Path != "/4" {
		t.Errorf("bounded by age: %+v", l)
	}
	var z Catalog
	z.Add(CatalogEntry{Path: "/z"})
	if l := z.List(); len(l) != 1 || l[0].Pushed.IsZero() {
		t.Errorf("zero catalog: %+v", l)
	}
}

func TestLoadOrCreateCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	cert, err := LoadOrCreateCertificate(certFile, keyFile, []string{"media.example", "192.0.2.7"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v", st.Mode(), err)
	}
	pool, err := LoadCertPool(certFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"media.example", "192.0.2.7", "localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("valid for a host it was not made for")
	}
	again, err := LoadOrCreateCertificate(certFile, keyFile, nil)
	if err != nil || string(again.Certificate[0]) != string(cert.Certificate[0]) {
		t.Errorf("reload: %v", err)
	}
	b, _ := os.ReadFile(keyFile)
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "PRIVATE KEY" {
		t.Error("key is not PKCS #8 PEM")
	}
	os.Remove(keyFile)
	if _, err := LoadOrCreateCertificate(certFile, keyFile, nil); err == nil {
		t.Error("generated over a lone certificate")
	}
	if _, err := LoadCertPool(filepath.Join(dir, "none")); err == nil {
		t.Error("missing CA file accepted")
	}
	os.WriteFile(filepath.Join(dir, "junk"), []byte("junk"), 0o644)
	if _, err := LoadCertPool(filepath.Join(dir, "junk")); err == nil {
		t.Error("CA file without a certificate accepted")
	}
}
