package origin

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

func TestSessions(t *testing.T) {
	var ss Sessions
	bad := unicasttest.Ad(t, "x")
	bad.Session.Secret = bad.Session.Secret[:5]
	if _, err := ss.Announce(bad); err == nil {
		t.Error("invalid advertisement announced")
	}
	ad := unicasttest.Ad(t, "s1")
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
	if s, _ := ss.Get(id); s.State != wellknown.StateEnded || s.Started.IsZero() || s.Ended.IsZero() || s.Announced.IsZero() {
		t.Errorf("session: %+v", s)
	}

	small := Sessions{MaxEnded: 2}
	var ids []string
	for i := range 4 {
		id, err := small.Announce(unicasttest.Ad(t, fmt.Sprintf("e%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	live, _ := small.Announce(unicasttest.Ad(t, "live"))
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
	id, _ := ss.Announce(unicasttest.Ad(t, "ma"))
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
		c.Add(wellknown.CatalogEntry{Path: fmt.Sprintf("/%d", i), Pushed: now.Add(time.Duration(i) * time.Second)})
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
	z.Add(wellknown.CatalogEntry{Path: "/z"})
	if l := z.List(); len(l) != 1 || l[0].Pushed.IsZero() {
		t.Errorf("zero catalog: %+v", l)
	}
	// Push times never go back along the list: a push that finished after
	// a later one is listed at that one's time.
	var m Catalog
	t0 := time.Now()
	m.Add(wellknown.CatalogEntry{Path: "/later", Pushed: t0})
	m.Add(wellknown.CatalogEntry{Path: "/earlier", Pushed: t0.Add(-time.Second)})
	if l := m.List(); len(l) != 2 || l[1].Path != "/earlier" || !l[1].Pushed.Equal(t0) {
		t.Errorf("out of order: %+v", l)
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
	pool := x509.NewCertPool()
	if certPEM, err := os.ReadFile(certFile); err != nil || !pool.AppendCertsFromPEM(certPEM) {
		t.Fatalf("certificate file: %v", err)
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
}

// TestDescriptionRoundTrip: what the server writes, the client reads back.
func TestDescriptionRoundTrip(t *testing.T) {
	ad := unicasttest.Ad(t, "rt")
	var ss Sessions
	id, err := ss.Announce(ad)
	if err != nil {
		t.Fatal(err)
	}
	ss.Activate(id)
	var cat Catalog
	cat.Add(wellknown.CatalogEntry{Path: "/a", Size: 3, ETag: `"x"`, Session: id, PushID: 1})
	b, err := json.Marshal(describe(&ss, &cat))
	if err != nil {
		t.Fatal(err)
	}
	d, err := wellknown.Parse(b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if len(d.Sessions) != 1 || !d.Sessions[0].Advertisement.Equal(&ad) || d.Sessions[0].State != wellknown.StateActive {
		t.Errorf("sessions: %+v", d.Sessions)
	}
	if len(d.Resources) != 1 || d.Resources[0].Path != "/a" {
		t.Errorf("resources: %+v", d.Resources)
	}
	for _, absent := range []string{`"ended"`, `"successor"`, `"expires"`} {
		if strings.Contains(string(b), absent) {
			t.Errorf("%s present for a session without it: %s", absent, b)
		}
	}
}
