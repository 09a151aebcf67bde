package origin_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// TestPublisherRolloverAsymmetric: with Rollover, the publisher replaces
// its session by a successor with a new ID and new keys, again and again
// until Close; with Asymmetric and no ManifestKey, every session is
// asymmetric with a manifest key of its own, whose manifests are kept for
// the server.
func TestPublisherRolloverAsymmetric(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1, Publisher: func(pc *origin.PublisherConfig) {
		pc.Asymmetric, pc.Rollover, pc.RolloverLead = true, 150*time.Millisecond, 30*time.Millisecond
	}})
	first, err := h.Pub.Start(unicasttest.Ad(t, "roll"))
	if err != nil {
		t.Fatal(err)
	}
	unicasttest.WaitFor(t, 20*time.Second, "three sessions", func() bool { return len(h.Sessions.List()) >= 3 })
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Close waited for the rollover loop: nothing starts any more.
	list := h.Sessions.List()
	if list[0].ID != first {
		t.Errorf("first session %s, want %s", list[0].ID, first)
	}
	profiles := map[string]bool{}
	for i, s := range list {
		if s.State != wellknown.StateEnded {
			t.Errorf("session %d (%s) %s after Close", i, s.ID, s.State)
		}
		if i+1 < len(list) && s.Successor != list[i+1].ID {
			t.Errorf("session %d: successor %q, want %q", i, s.Successor, list[i+1].ID)
		}
		var prof []byte
		for _, e := range s.Advertisement.Session.Extensions {
			if e.ID == manifest.ExtensionID {
				prof = e.Value
			}
		}
		if prof == nil || profiles[string(prof)] {
			t.Errorf("session %d: manifest profile %x (new for each session)", i, prof)
		}
		profiles[string(prof)] = true
		if !h.Manifests.Has(s.ID) {
			t.Errorf("session %d: manifests not kept", i)
		}
	}
	if bytes.Equal(list[0].Advertisement.Session.Secret, list[1].Advertisement.Session.Secret) {
		t.Error("the successor has the same key")
	}
	time.Sleep(300 * time.Millisecond) // two rollover intervals: none may come
	if n := len(h.Sessions.List()); n != len(list) {
		t.Errorf("%d sessions after Close, %d at Close", n, len(list))
	}
}

// serveFolder writes files (name: content) into a folder and serves it
// with origin.New on a loopback port until ctx ends; served receives
// ListenAndServe's error.
func serveFolder(ctx context.Context, t *testing.T, files map[string]string) (o *origin.Origin, certFile string, served chan error) {
	t.Helper()
	dir, certDir := t.TempDir(), t.TempDir()
	for name, content := range files {
		f := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(f), 0o755)
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	certFile = filepath.Join(certDir, "cert.pem")
	cert, err := origin.LoadOrCreateCertificate(certFile, filepath.Join(certDir, "key.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err = origin.New(origin.Config{Dir: dir, Addr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Publisher: origin.PublisherConfig{Interface: "lo", TTL: 1}, Logger: unicasttest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	served = make(chan error, 1)
	go func() { served <- o.Server.ListenAndServe(ctx) }()
	unicasttest.WaitFor(t, 5*time.Second, "the server to listen", func() bool { return o.Server.LocalAddr() != nil })
	return o, certFile, served
}

// TestNew: origin.New serves a folder, and a session started on it
// announces itself and lists what it pushed, as "h3m serve" does.
func TestNew(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o, certFile, served := serveFolder(ctx, t, map[string]string{"a.txt": "hello"})
	ad, err := origin.NewSession(origin.SessionConfig{Group: mcasttest.Group(),
		Interface: "lo", Suite: protect.SuiteAES128GCM, IdleTimeout: time.Second, PeakFlowRate: 1e8})
	if err != nil {
		t.Fatal(err)
	}
	id, err := o.Publisher.Start(ad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Publisher.PushFile(ctx, "/a.txt"); err != nil {
		t.Fatal(err)
	}
	d := discoverOrigin(ctx, t, o, certFile)
	if len(d.Sessions) != 1 || d.Sessions[0].ID != id || d.Sessions[0].State != wellknown.StateActive ||
		len(d.Resources) != 1 || d.Resources[0].Path != "/a.txt" || d.Resources[0].Size != 5 || d.Resources[0].Session != id {
		t.Fatalf("description: %+v", d)
	}
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-served; err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
}

// discoverOrigin reads o's session description over HTTP/3, trusting
// certFile.
func discoverOrigin(ctx context.Context, t *testing.T, o *origin.Origin, certFile string) *wellknown.Description {
	t.Helper()
	pool, err := client.LoadCertPool(certFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.Close()
	d, err := client.Discover(ctx, &http.Client{Transport: tr}, o.URL())
	if err != nil {
		t.Fatal(err)
	}
	return d
}
