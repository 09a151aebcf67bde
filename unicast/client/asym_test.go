package client

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/wire"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// asymAd returns the advertisement of an asymmetric loopback session and
// the key that signs its manifests.
func asymAd(t testing.TB, id string) (altsvc.Advertisement, ed25519.PrivateKey) {
	t.Helper()
	ad := unicasttest.Ad(t, id)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	prof, err := manifest.NewProfile(priv.Public(), 0x68336d31)
	if err != nil {
		t.Fatal(err)
	}
	ad.Session.Extensions = append(ad.Session.Extensions, mquic.Extension{ID: manifest.ExtensionID, Value: prof.Value()})
	return ad, priv
}

// manifestPacketDropper returns a loss filter that drops every packet of
// the session that carries a MANIFEST frame: it opens a copy of each packet
// with the session key and looks at its frames. It counts what it drops.
func manifestPacketDropper(t testing.TB, p mquic.Params, dropped *atomic.Int64) func([]byte) bool {
	prot, err := p.Protector()
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var f wire.Frame
	return func(pkt []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		_, payload, err := prot.Open(append([]byte(nil), pkt...), 1+len(p.SessionID), mquic.DefaultPacketNumberLen, 0, false)
		if err != nil {
			t.Errorf("the loss filter cannot open a packet of the session: %v", err)
			return false
		}
		for len(payload) > 0 {
			if manifest.IsFrame(payload) {
				dropped.Add(1)
				return true
			}
			n, err := wire.ParseFrame(payload, &f)
			if err != nil {
				t.Errorf("the loss filter cannot parse a frame: %v", err)
				return false
			}
			payload = payload[n:]
		}
		return false
	}
}

// receivers returns the receivers of the client's joined sessions, by
// session ID.
func receivers(c *Client) map[string]*h3m.Receiver {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]*h3m.Receiver{}
	for id, cs := range c.sessions {
		cs.mu.Lock()
		if cs.rcv != nil {
			out[id] = cs.rcv
		}
		cs.mu.Unlock()
	}
	return out
}

// transportOf returns the transport receiver of the client's session id.
func transportOf(c *Client, id string) *mquic.Receiver {
	if rcv := receivers(c)[id]; rcv != nil {
		return rcv.Transport()
	}
	return nil
}

// TestAsymmetricManifestsOverUnicast: an asymmetric session whose every
// packet carrying a MANIFEST frame is dropped on the way, so that no
// manifest arrives in-band. The client (which requires asymmetric
// sessions) still authenticates every packet that arrived, with manifests
// it gets from the unicast server, and every resource arrives exact; no
// packet waits past its hold time, and the streams see no gap.
func TestAsymmetricManifestsOverUnicast(t *testing.T) {
	ad, key := asymAd(t, "asym-u")
	h := origintest.New(t, origintest.Options{Files: 16, MinSize: 10 << 10, MaxSize: 200 << 10, Seed: 11,
		Publisher: func(pc *origin.PublisherConfig) { pc.ManifestKeys = []crypto.Signer{key} }})
	var dropped atomic.Int64
	h.SetDrop(manifestPacketDropper(t, ad.Session, &dropped))
	id, err := h.Pub.Start(ad)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.RequireAsymmetric = true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	// Two waves: the client starts streaming manifests during the first,
	// and the second is authenticated by the stream as it is sent.
	h.PushAll(h.Paths[:8])
	tc.waitPaths(20*time.Second, h.Paths[:8])
	h.PushAll(h.Paths[8:])
	tc.waitPaths(20*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)

	tr := transportOf(tc.c, id)
	if tr == nil {
		t.Fatal("the client left the session")
	}
	st, _ := tr.ManifestStatus(time.Now(), 0)
	rs := tr.Stats()
	cst := tc.c.Stats()
	t.Logf("deliveries %v; %d manifest packets dropped; receiver: %d packets, manifests in-band %d, over unicast %d (%d repeats); auth: %s; client: %d manifest requests, %d streams, %d manifests (%d bytes)",
		countVia(ds), dropped.Load(), rs.Packets, st.InBand, st.Unicast, st.UnicastRepeats, rs.Auth, cst.ManifestRequests, cst.ManifestStreams, cst.ManifestsFetched, cst.ManifestBytes)
	if dropped.Load() == 0 || st.InBand != 0 {
		t.Fatalf("in-band manifests were not all dropped: %d dropped, %d verified in-band", dropped.Load(), st.InBand)
	}
	if st.Unicast == 0 || rs.Auth.Expired != 0 || rs.Auth.Evicted != 0 || rs.Packets == 0 || rs.Gaps != 0 {
		t.Fatalf("packets not authenticated by unicast manifests: %d manifests, %s", st.Unicast, rs.Auth)
	}
	if via := countVia(ds); via[ViaFallback] != 0 || via[ViaMulticast] == 0 {
		t.Fatalf("deliveries %v: the multicast copies should have been used", via)
	}
	if cst.ManifestStreams == 0 || cst.Failed != 0 || cst.Refused != 0 {
		t.Fatalf("client stats %+v", cst)
	}
	if ms, _ := h.Manifests.Stats(id); ms.Kept == 0 || ms.Restarts != 0 {
		t.Fatalf("server manifests %+v", ms)
	}
}

// TestRequireAsymmetricRefusesSymmetric: a client that requires asymmetric
// sessions does not join a symmetric one; it says so once and gets every
// resource over unicast instead.
func TestRequireAsymmetricRefusesSymmetric(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 6, MaxSize: 50 << 10, Seed: 12})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "sym")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.RequireAsymmetric = true
	tc := runClient(h, cfg)
	unicasttest.WaitFor(t, 5*time.Second, "the refusal", func() bool { return tc.c.Stats().Refused == 1 })
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	ds := tc.checkExact(h, h.Paths)
	st := tc.c.Stats()
	if via := countVia(ds); via[ViaFallback] != len(h.Paths) || st.Joins != 0 || st.Refused != 1 || !st.FallbackActive {
		t.Fatalf("deliveries %v, stats %+v", via, st)
	}
}

// swapSigner signs with whichever signer it holds now.
type swapSigner struct {
	mu sync.Mutex
	s  h3m.Signer
}

func (w *swapSigner) Sign(m *integrity.Message) (http.Header, error) {
	w.mu.Lock()
	s := w.s
	w.mu.Unlock()
	return s.Sign(m)
}

func (w *swapSigner) set(s h3m.Signer) {
	w.mu.Lock()
	w.s = s
	w.mu.Unlock()
}

// TestSignedPushesKeysOverTLS: pushes signed with RFC 9421 (Ed25519) or
// cavage-12 (RSA), a client that requires signatures, and the key fetched
// once from the origin over TLS (the description lists it). Every genuine
// push verifies and arrives by multicast. Then a forger signs a push under
// the same key ID with another key: it is never delivered from multicast;
// the resource comes whole over unicast, and the key is not fetched again.
func TestSignedPushesKeysOverTLS(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaForger, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	_, edForger, _ := ed25519.GenerateKey(rand.Reader)
	for _, tt := range []struct {
		name            string
		genuine, forged h3m.Signer
	}{
		{"rfc9421-ed25519",
			h3m.MessageSigner{MessageSigner: &integrity.MessageSigner{Label: "h3m", KeyID: "origin-key", Key: edKey, Components: integrity.DefaultResponseComponents}},
			h3m.MessageSigner{MessageSigner: &integrity.MessageSigner{Label: "h3m", KeyID: "origin-key", Key: edForger, Components: integrity.DefaultResponseComponents}}},
		{"cavage-rsa",
			h3m.CavageSigner{CavageSigner: &integrity.CavageSigner{KeyID: "sender.pem", Key: rsaKey}},
			h3m.CavageSigner{CavageSigner: &integrity.CavageSigner{KeyID: "sender.pem", Key: rsaForger}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sw := &swapSigner{s: tt.genuine}
			var keyFetches atomic.Int64
			h := origintest.New(t, origintest.Options{Files: 6, MaxSize: 60 << 10, Seed: 13,
				Publisher: func(pc *origin.PublisherConfig) { pc.Signer = sw },
				Front: func(next http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if strings.HasPrefix(r.URL.Path, wellknown.KeysPath+"/") {
							keyFetches.Add(1)
						}
						next.ServeHTTP(w, r)
					})
				}})
			kid, pub, alg, ok := origin.SignerKey(tt.genuine)
			if !ok {
				t.Fatal("SignerKey does not know the signer")
			}
			if err := h.Keys.Add(kid, pub, alg); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Pub.Start(unicasttest.Ad(t, "signed")); err != nil {
				t.Fatal(err)
			}
			cfg := clientConfig(h)
			cfg.RequireSignature = true
			tc := runClient(h, cfg)
			tc.waitJoined(1)
			genuine, forged := h.Paths[:len(h.Paths)-1], h.Paths[len(h.Paths)-1]
			h.PushAll(genuine)
			tc.waitPaths(15*time.Second, genuine)
			sw.set(tt.forged)
			h.PushAll([]string{forged})
			tc.waitPaths(15*time.Second, h.Paths)
			ds := tc.checkExact(h, h.Paths)
			for _, d := range ds {
				want := ViaMulticast
				if d.Path == forged {
					want = ViaFallback
				}
				if d.Via != want {
					t.Errorf("%s came via %s, want %s", d.Path, d.Via, want)
				}
			}
			if n := keyFetches.Load(); n != 1 {
				t.Errorf("the key was fetched %d times, want once", n)
			}
			// The forged push failed its signature check at the receiver.
			var failed []error
			for _, rcv := range receivers(tc.c) {
				for _, res := range rcv.Resources() {
					if st, err := res.State(); st == h3m.StateFailed {
						failed = append(failed, err)
					}
				}
			}
			if len(failed) != 1 || !errors.Is(failed[0], h3m.ErrIntegrity) || !errors.Is(failed[0], integrity.ErrBadSignature) {
				t.Fatalf("failed multicast resources: %v, want the forged one failing its signature", failed)
			}
		})
	}
}

// TestKeysServedAndResolved: the server serves published keys as PEM over
// TLS only and lists them; the client resolves only keys the origin lists,
// never URLs of another origin, and caches what it fetched.
func TestKeysServedAndResolved(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1})
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	kid, err := origin.DefaultKeyID(priv.Public())
	if err != nil || !strings.HasPrefix(kid, "h3m-") || len(kid) != 20 {
		t.Fatalf("default key ID %q: %v", kid, err)
	}
	if err := h.Keys.Add(kid, priv.Public(), ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Keys.Add(kid, priv.Public(), ""); err != nil {
		t.Fatalf("adding the same key again: %v", err)
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if err := h.Keys.Add(kid, other.Public(), ""); !errors.Is(err, origin.ErrKeyConflict) {
		t.Fatalf("another key under the same ID: %v", err)
	}
	for _, bad := range []string{"", "a b", `q"`, strings.Repeat("k", wellknown.MaxKeyIDLen+1)} {
		if err := h.Keys.Add(bad, priv.Public(), ""); !errors.Is(err, wellknown.ErrKeyID) {
			t.Errorf("key ID %q: %v", bad, err)
		}
	}
	// A key ID with a slash and a percent sign survives the URL path.
	if err := h.Keys.Add("team/key%1", other.Public(), ""); err != nil {
		t.Fatal(err)
	}
	d, err := Discover(context.Background(), h.HTTPClient(), h.URL())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Keys) != 2 || d.Keys[0] != (wellknown.KeyInfo{ID: kid, Alg: integrity.AlgEd25519}) || d.Keys[1].ID != "team/key%1" {
		t.Fatalf("description keys %+v", d.Keys)
	}

	c, err := New(clientConfig(h))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer c.wg.Wait()
	kr := c.keys
	kr.setListed(d.Keys, true)
	if _, err := kr.resolve(ctx, kid); !errors.Is(err, ErrKeyUnavailable) {
		t.Fatalf("before any fetch: %v", err)
	}
	kr.prefetch(ctx)
	for id, want := range map[string]crypto.PublicKey{kid: priv.Public(), "team/key%1": other.Public()} {
		k, err := kr.resolve(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		ak, ok := k.(integrity.AlgorithmKey)
		if !ok || ak.Algorithm != integrity.AlgEd25519 || !ak.Key.(ed25519.PublicKey).Equal(want) {
			t.Fatalf("%s resolved to %#v", id, k)
		}
	}
	if _, err := kr.resolve(ctx, "not-listed"); !errors.Is(err, ErrKeyUnavailable) || !strings.Contains(err.Error(), "lists") {
		t.Fatalf("unlisted key: %v", err)
	}
	for _, id := range []string{"https://elsewhere.example/k", "http://" + h.Addr + "/k", "ftp://x/y"} {
		if _, err := kr.keyURL(id); !errors.Is(err, wellknown.ErrKeyID) {
			t.Errorf("key URL %q accepted: %v", id, err)
		}
	}
	if u, err := kr.keyURL("https://" + h.Addr + wellknown.KeysPath + "/x"); err != nil || u != "https://"+h.Addr+wellknown.KeysPath+"/x" {
		t.Fatalf("same-origin key URL: %q %v", u, err)
	}
	if got := cacheMaxAge("public, max-age=60"); got != time.Minute {
		t.Fatalf("max-age: %v", got)
	}

	// Plain HTTP gets nothing.
	rec := httptest.NewRecorder()
	(&origin.Server{Keys: h.Keys, Handler: http.NotFoundHandler()}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, wellknown.KeyPath(kid), nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("key without TLS: %d", rec.Code)
	}
}

// TestAsymmetricManifestStreamCloses: in-band manifests are dropped, so the
// client streams them from the server; then they arrive in-band again, and
// once nearly all recent manifests came in-band the client closes the
// stream. Every resource arrives exact, by multicast.
func TestAsymmetricManifestStreamCloses(t *testing.T) {
	ad, key := asymAd(t, "asym-c")
	h := origintest.New(t, origintest.Options{Files: 4, MinSize: 50 << 10, MaxSize: 100 << 10, Seed: 14,
		Publisher: func(pc *origin.PublisherConfig) { pc.ManifestKeys = []crypto.Signer{key} }})
	var dropped atomic.Int64
	h.SetDrop(manifestPacketDropper(t, ad.Session, &dropped))
	if _, err := h.Pub.Start(ad); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.ManifestStreamMin = 300 * time.Millisecond
	var bigOK atomic.Bool
	big := make([]byte, 24<<20) // about 320 manifests of 65 packets: the whole coverage window
	rand.Read(big)
	cfg.OnResource = func(d Delivery) {
		if d.Path == "/big" && d.Err == nil && d.Via == ViaMulticast && d.Size == int64(len(big)) {
			bigOK.Store(bytes.Equal(readBody(t, d), big))
		}
	}
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	unicasttest.WaitFor(t, 5*time.Second, "a manifest stream", func() bool { return tc.c.Stats().ManifestStreamsOpen == 1 })
	h.SetDrop(nil) // in-band manifests arrive again
	if _, err := h.Pub.Push(context.Background(), &origin.Content{Path: "/big", Body: bytes.NewReader(big), Size: int64(len(big))}); err != nil {
		t.Fatal(err)
	}
	unicasttest.WaitFor(t, 15*time.Second, "the big resource", bigOK.Load)
	unicasttest.WaitFor(t, 5*time.Second, "the manifest stream to close", func() bool { return tc.c.Stats().ManifestStreamsOpen == 0 })
	ds := tc.checkExact(h, h.Paths)
	if via := countVia(ds); via[ViaMulticast] != len(h.Paths) {
		t.Fatalf("deliveries %v", via)
	}
	st := tc.c.Stats()
	t.Logf("%d manifest packets dropped; client: %d streams opened, %d manifests fetched", dropped.Load(), st.ManifestStreams, st.ManifestsFetched)
	if st.ManifestStreams != 1 || st.ManifestStreamsClosed != 1 {
		t.Fatalf("%d streams opened, %d closed because in-band manifests came back; want 1 and 1", st.ManifestStreams, st.ManifestStreamsClosed)
	}
}
