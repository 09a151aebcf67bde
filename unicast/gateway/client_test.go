package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestGatewayWithClientAndOrigin: a real origin pushes over loopback
// multicast, a real client fills the store, and the gateway serves every
// file by multicast to a player on another origin, with the session on
// its status; the origin's session description, which the upstream
// serves over TLS, never comes out of the gateway.
func TestGatewayWithClientAndOrigin(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 5, MaxSize: 50 << 10, Seed: 3})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "gw")); err != nil {
		t.Fatal(err)
	}
	store := NewStore(64 << 20)
	rc, err := client.New(client.Config{
		URL: h.URL(), CAFile: h.CAFile, Interface: "lo", RecvBuffer: 16 << 20,
		QUICConfig:  &quic.Config{HandshakeIdleTimeout: time.Second, MaxIdleTimeout: 5 * time.Second, KeepAlivePeriod: time.Second},
		CatalogPoll: 100 * time.Millisecond, Logger: h.Log,
		OnResource: func(d client.Delivery) {
			if d.Err == nil {
				store.Put(EntryOf(&d))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	pool, err := client.LoadCertPool(h.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(func() { tr.Close() })
	upstream, _ := url.Parse(h.URL())
	g, err := New(Config{Store: store, Upstream: upstream, Transport: tr, Receiver: rc, CORSOrigins: []string{AnyOrigin}, Logger: h.Log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)

	unicasttest.WaitFor(t, 5*time.Second, "the join", func() bool { return rc.Stats().Joins == 1 })
	h.PushAll(h.Paths)
	// Files are not held as live segments are: ask once they arrived.
	unicasttest.WaitFor(t, 15*time.Second, "the deliveries", func() bool { return store.Stats().Entries == len(h.Paths) })
	for _, p := range h.Paths {
		req, _ := http.NewRequest("GET", srv.URL+p, nil)
		req.Header.Set("Origin", "http://127.0.0.1:1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Equal(b, h.Content[p]) || resp.Header.Get(ViaHeader) != client.ViaMulticast || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %d bytes via %q (%v)", p, len(b), resp.Header.Get(ViaHeader), resp.Header)
		}
	}

	// The upstream serves the description to a TLS client; the gateway
	// never does.
	resp, err := (&http.Client{Transport: tr}).Get(h.URL() + wellknown.Path[1:])
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("the origin's description: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get(srv.URL + wellknown.Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("the gateway answered %d for the session description", resp.StatusCode)
	}

	resp, err = http.Get(srv.URL + StatusJSONPath)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Sessions) != 1 || !st.Sessions[0].Joined || st.Sessions[0].State != "active" || st.Sessions[0].Bytes == 0 ||
		st.Sessions[0].PeakFlowRate != 200_000_000 {
		t.Errorf("sessions %+v", st.Sessions)
	}
	if st.Served[client.ViaMulticast] != uint64(len(h.Paths)) || st.MulticastShare != 1 || st.Receiver.Multicast != len(h.Paths) {
		t.Errorf("served %v, share %v, receiver %+v", st.Served, st.MulticastShare, st.Receiver)
	}
}
