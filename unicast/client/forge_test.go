package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/internal/forger"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go/http3"
)

// forgery is what any receiver of a symmetric session can be: it reads
// the session description over TLS like every receiver, and sends packets
// sealed with the session key from the session's source (internal/forger),
// with whatever pushes it likes, paths the origin would never promise
// included. The tests below announce a session that only the forger
// speaks, so that its packet and push numbers are the session's.
type forgery struct {
	t    testing.TB
	ad   altsvc.Advertisement
	f    *forger.Forger
	conn *forger.Conn
	prof h3m.Profile
	auth string
}

// announceForged announces and activates a session on h's origin that no
// publisher sends, and returns a forgery of it that learnt the session
// from the description, as an attacker would.
func announceForged(h *origintest.Harness, id string) *forgery {
	t := h.T
	t.Helper()
	sid, err := h.Sessions.Announce(unicasttest.Ad(t, id))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Sessions.Activate(sid); err != nil {
		t.Fatal(err)
	}
	var ad *altsvc.Advertisement
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ads, err := forger.Discover(ctx, h.HTTPClient(), h.URL()); err == nil {
		for i := range ads {
			if wellknown.SessionID(&ads[i]) == sid {
				ad = &ads[i]
			}
		}
	} else if s, ok := h.Sessions.Get(sid); ok {
		ad = &s.Advertisement // an origin that serves no description
	}
	if ad == nil {
		t.Fatalf("session %s is not in the description", sid)
	}
	f, err := forger.FromAdvertisement(ad)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := forger.Dial(&ad.Session, "lo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &forgery{t: t, ad: *ad, f: f, conn: conn, prof: h3m.ProfileOf(ad), auth: h.Addr}
}

// send builds p's packets and sends them.
func (fg *forgery) send(p *forger.Push) uint64 {
	fg.t.Helper()
	p.Request.Authority = fg.auth
	p.DataOffset = fg.prof.DataOffset
	pkts, err := fg.f.Packets(p)
	if err != nil {
		fg.t.Fatal(err)
	}
	if err := forger.Replay(fg.conn, pkts); err != nil {
		fg.t.Fatal(err)
	}
	return p.PushID
}

// promise sends a PUSH_PROMISE for path and no push stream; it returns the
// push ID.
func (fg *forgery) promise(path string) uint64 {
	fg.t.Helper()
	p := fg.f.NewPush(path)
	p.NoStream = true
	return fg.send(&p)
}

// push promises path and sends a 200 response with hdr and body; a
// contentLength other than len(body) makes the push lose bytes on purpose.
func (fg *forgery) push(path string, hdr http.Header, body []byte, contentLength int) uint64 {
	fg.t.Helper()
	p := fg.f.NewPush(path)
	p.Header = hdr.Clone()
	if p.Header == nil {
		p.Header = http.Header{}
	}
	p.Header.Set("Content-Length", strconv.Itoa(contentLength))
	p.Body = body
	return fg.send(&p)
}

// countingServer is another HTTP/3 server on loopback, with the origin's
// certificate (an attacker's server would need one the client trusts for
// its name; here the point is only whether the client asks it anything).
type countingServer struct {
	addr     string
	requests atomic.Int64
}

func startCountingServer(h *origintest.Harness) *countingServer {
	h.T.Helper()
	cs := &countingServer{}
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		h.T.Fatal(err)
	}
	srv := &http3.Server{TLSConfig: http3.ConfigureTLSConfig(h.TLSConfig.Clone()), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cs.requests.Add(1)
		fmt.Fprint(w, "not from the origin")
	})}
	go srv.Serve(conn)
	h.T.Cleanup(func() {
		srv.Close()
		conn.Close()
	})
	cs.addr = conn.LocalAddr().String()
	return cs
}

// waitSettled waits until the receivers of the client have settled n
// pushes (complete, incomplete or failed) and the client has no unicast
// work left.
func waitSettled(tc *testClient, n uint64) {
	tc.t.Helper()
	unicasttest.WaitFor(tc.t, 60*time.Second, fmt.Sprintf("%d pushes settled and no unicast job left", n), func() bool {
		return settledPushes(tc) >= n && tc.idle()
	})
}

// requestCounter counts the requests an origin's file handler gets, by
// path; paths under hang are never answered (until the test ends).
type requestCounter struct {
	mu   sync.Mutex
	by   map[string]int
	hang string
}

func (rc *requestCounter) wrap(_ *origin.FileServer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		if rc.by == nil {
			rc.by = map[string]int{}
		}
		rc.by[r.URL.Path]++
		hang := rc.hang != "" && strings.HasPrefix(r.URL.Path, rc.hang)
		rc.mu.Unlock()
		if hang {
			<-r.Context().Done()
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rc *requestCounter) count(path string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.by[path]
}

// prefixed counts the requests for paths that start with prefix.
func (rc *requestCounter) prefixed(prefix string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	n := 0
	for p, k := range rc.by {
		if strings.HasPrefix(p, prefix) {
			n += k
		}
	}
	return n
}

// list adds the catalogue entry of file path (as the origin serves it) to
// h's catalogue, as pushed now in session sid.
func list(h *origintest.Harness, sid, path string, pushID uint64) wellknown.CatalogEntry {
	h.T.Helper()
	f, rep, err := h.Files.Open(path)
	if err != nil {
		h.T.Fatal(err)
	}
	f.Close()
	e := wellknown.CatalogEntry{Path: path, Size: rep.Size, ContentType: rep.ContentType, ETag: rep.ETag,
		ContentDigest: rep.ContentDigest, Digest: rep.Digest, Pushed: time.Now(), Session: sid, PushID: pushID}
	h.Catalog.Add(e)
	return e
}

// settledPushes is how many pushes the receivers of tc's client settled.
func settledPushes(tc *testClient) uint64 {
	var n uint64
	for _, r := range tc.c.receivers() {
		st := r.Stats()
		// Pushes the receiver's caps refused, or evicted before anyone
		// heard of them, are settled too (the others evicted failed).
		n += st.Complete + st.Incomplete + st.Failed + st.PushesRefused + st.PushesForgotten
	}
	return n
}

// idle reports whether the client has no unicast job and holds nothing.
func (tc *testClient) idle() bool {
	tc.c.mu.Lock()
	defer tc.c.mu.Unlock()
	return len(tc.c.jobs) == 0 && len(tc.c.held) == 0
}
