package origin_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go/http3"
)

// TestServeTCP: the content over TLS on TCP (HTTP/2 by ALPN, and
// HTTP/1.1), for caches, with ranges and validators, without the Alt-Svc
// field (session keys) and without the well-known paths; the repair URLs
// are in the description served over HTTP/3; the file counters count both.
func TestServeTCP(t *testing.T) {
	dir := t.TempDir()
	content := bytes.Repeat([]byte("0123456789abcdef"), 8192)
	if err := os.WriteFile(filepath.Join(dir, "a.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	cert, err := origin.LoadOrCreateCertificate(filepath.Join(certDir, "cert.pem"), filepath.Join(certDir, "key.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	files, err := origin.NewFileServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer files.Close()
	var ss origin.Sessions
	id, err := ss.Announce(unicasttest.Ad(t, "tcp"))
	if err != nil {
		t.Fatal(err)
	}
	ss.Activate(id)
	var cat origin.Catalog
	entry := wellknown.CatalogEntry{Path: "/a.bin", Size: int64(len(content)), ETag: `"e"`, Session: "0a0b", PushID: 3, StreamID: 15, Pushed: time.Now()}
	cat.Add(entry)
	srv := &origin.Server{Handler: files, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Sessions: &ss, Catalog: &cat,
		RepairURLs: []string{"https://cache.example/h3m"}, Logger: unicasttest.Logger(t)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcpDone := make(chan error, 1)
	go func() { tcpDone <- srv.ServeTCP(ln) }()
	go srv.Serve(udp)
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(filepath.Join(certDir, "cert.pem"))
	pool.AppendCertsFromPEM(pem)
	tlsConf := &tls.Config{RootCAs: pool}

	var entries [][]byte
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: tlsConf.Clone(), ForceAttemptHTTP2: h2, DisableCompression: true}
		if !h2 {
			tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		}
		hc := &http.Client{Transport: tr}
		base := "https://" + ln.Addr().String()
		resp, body := fetch(t, hc, "GET", base+"/a.bin", http.Header{"Range": {"bytes=65536-131071"}})
		wantProto := map[bool]int{true: 2, false: 1}[h2]
		if resp.ProtoMajor != wantProto || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, content[65536:131072]) {
			t.Errorf("h2 %v: %s %s, %d bytes", h2, resp.Proto, resp.Status, len(body))
		}
		if resp.Header.Get("Etag") == "" || resp.Header.Get("Repr-Digest") == "" || resp.Header.Get("Alt-Svc") != "" {
			t.Errorf("h2 %v: fields %v", h2, resp.Header)
		}
		for _, p := range []string{wellknown.Path, wellknown.KeysPath + "/k"} {
			resp, body := fetch(t, hc, "GET", base+p, nil)
			if resp.StatusCode != http.StatusNotFound || bytes.Contains(body, []byte("secret")) || resp.Header.Get("Alt-Svc") != "" {
				t.Errorf("%s over TCP: %s, Alt-Svc %q", p, resp.Status, resp.Header.Get("Alt-Svc"))
			}
		}
		// The signed catalogue entries are served over TCP (for caches),
		// cacheable; one not listed is a 404 no cache keeps.
		resp, body = fetch(t, hc, "GET", base+wellknown.CatalogEntryPath("0a0b", 3), nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
			t.Errorf("h2 %v: signed entry: %s, Cache-Control %q", h2, resp.Status, resp.Header.Get("Cache-Control"))
		}
		entries = append(entries, body)
		// The same entry by the stream that carried the push (what a
		// receiver knows of a stream whose push ID was lost).
		byStream := wellknown.EntryRef{Session: "0a0b", StreamID: 15, ByStream: true}
		resp, sbody := fetch(t, hc, "GET", base+byStream.Path(), nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !bytes.Equal(sbody, body) {
			t.Errorf("h2 %v: signed entry by stream: %s, Cache-Control %q, %q", h2, resp.Status, resp.Header.Get("Cache-Control"), sbody)
		}
		resp, _ = fetch(t, hc, "GET", base+wellknown.EntryRef{Session: "0a0b", StreamID: 19, ByStream: true}.Path(), nil)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("h2 %v: unlisted stream: %s, Cache-Control %q", h2, resp.Status, resp.Header.Get("Cache-Control"))
		}
		resp, _ = fetch(t, hc, "GET", base+wellknown.CatalogEntryPath("0a0b", 4), nil)
		if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("h2 %v: unlisted entry: %s, Cache-Control %q", h2, resp.Status, resp.Header.Get("Cache-Control"))
		}
		tr.CloseIdleConnections()
	}

	// With repair URLs listed the origin issues no TLS session ticket
	// over HTTP/3 (h3m's client never presents one): a session cache
	// gets nothing to keep.
	tickets := &ticketCache{}
	h3conf := tlsConf.Clone()
	h3conf.ClientSessionCache = tickets
	h3 := &http3.Transport{TLSClientConfig: h3conf}
	defer h3.Close()
	resp, body := fetch(t, &http.Client{Transport: h3}, "GET", "https://"+udp.LocalAddr().String()+wellknown.Path, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("description: %s", resp.Status)
	}
	d, err := wellknown.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.RepairURLs) != 1 || d.RepairURLs[0] != "https://cache.example/h3m" {
		raw, _ := json.Marshal(d.RepairURLs)
		t.Errorf("repair URLs in the description: %s", raw)
	}
	if n := tickets.puts.Load(); n != 0 {
		t.Errorf("%d TLS session tickets issued over HTTP/3 with repair URLs listed; want none", n)
	}
	key, err := wellknown.ParseCatalogKey(d.CatalogKey)
	if err != nil {
		t.Fatalf("the description's catalogue key: %v", err)
	}
	for _, b := range entries {
		e, err := wellknown.VerifyCatalogEntry(key, b, "0a0b", 3)
		if err != nil || e.Path != "/a.bin" || e.ETag != `"e"` {
			t.Errorf("signed entry over TCP: %+v, %v", e, err)
		}
	}
	if ss := srv.Stats(); ss.CatalogEntries != 4 || ss.RepairRequests != 2 || ss.RepairBytes != 2*65536 || ss.Rejected["not_found"] != 8 {
		t.Errorf("server counters %+v; want the TCP answers counted", ss)
	}
	st := files.Stats()
	if st.Responses != 2 || st.Partial != 2 || st.BodyBytes != 2*65536 {
		t.Errorf("file counters %+v; want 2 partial responses of 64 KiB", st)
	}

	srv.Close()
	select {
	case err := <-tcpDone:
		if err != origin.ErrServerClosed {
			t.Errorf("ServeTCP returned %v after Close", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("ServeTCP did not return after Close")
	}
}

// ticketCache is a TLS client session cache that counts the tickets it is
// given and keeps none.
type ticketCache struct{ puts atomic.Int64 }

func (c *ticketCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }

func (c *ticketCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs != nil {
		c.puts.Add(1)
	}
}
