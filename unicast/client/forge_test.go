package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/quic-go/quic-go/http3"
)

// forger is what any receiver of a symmetric session can be: it reads the
// session description over TLS like every receiver, and sends packets
// sealed with the session key from the session's source, with whatever
// pushes it likes (paths the origin would never promise included). The
// tests below announce a session that only the forger speaks, so that its
// packet and push numbers are the session's.
type forger struct {
	t    testing.TB
	ad   altsvc.Advertisement
	snd  *mquic.Sender
	prof h3m.Profile
	auth string

	mu     sync.Mutex
	nextID uint64
}

// announceForged announces and activates a session on h's origin that no
// publisher sends, and returns a forger for it that learnt the session
// from the description, as an attacker would.
func announceForged(h *origintest.Harness, id string) *forger {
	t := h.T
	t.Helper()
	sid, err := h.Sessions.Announce(unicasttest.Ad(t, id))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Sessions.Activate(sid); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := Discover(ctx, h.HTTPClient(), h.URL())
	if err != nil {
		t.Fatal(err)
	}
	var ad *altsvc.Advertisement
	for i := range d.Sessions {
		if d.Sessions[i].ID == sid {
			ad = &d.Sessions[i].Advertisement
		}
	}
	if ad == nil {
		t.Fatalf("session %s is not in the description", sid)
	}
	p := ad.Session
	conn, err := mcast.ListenSender(mcast.Config{Group: p.Group, Source: p.Source, Interface: "lo", TTL: 1})
	if err != nil {
		t.Fatal(err)
	}
	snd, err := mquic.NewSender(conn, mquic.SenderConfig{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		snd.Run(rctx)
	}()
	t.Cleanup(func() {
		snd.Close()
		stop()
		<-done
		conn.Close()
	})
	return &forger{t: t, ad: *ad, snd: snd, prof: h3m.ProfileOf(ad), auth: h.Addr}
}

// promise sends a PUSH_PROMISE for path and returns its push ID; no push
// stream follows (push sends one).
func (f *forger) promise(path string) uint64 {
	f.t.Helper()
	f.mu.Lock()
	id := f.nextID
	f.nextID++
	f.mu.Unlock()
	req := h3frame.Request{Method: http.MethodGet, Scheme: "https", Authority: f.auth, Path: path}
	block, err := h3frame.AppendFieldSection(nil, h3frame.RequestFields(&req))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.snd.Stream0().WriteChunk(h3frame.AppendPushPromise(nil, id, block)); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// push promises path and sends a 200 response with hdr and body; a
// contentLength other than len(body) makes the push lose bytes on purpose.
func (f *forger) push(path string, hdr http.Header, body []byte, contentLength int) uint64 {
	f.t.Helper()
	id := f.promise(path)
	resp := h3frame.Response{Status: http.StatusOK, Header: hdr.Clone()}
	if resp.Header == nil {
		resp.Header = http.Header{}
	}
	resp.Header.Set("Content-Length", strconv.Itoa(contentLength))
	block, err := h3frame.AppendFieldSection(nil, h3frame.ResponseFields(&resp))
	if err != nil {
		f.t.Fatal(err)
	}
	st, err := f.snd.OpenStream()
	if err != nil {
		f.t.Fatal(err)
	}
	b := h3frame.AppendHeadersFrame(h3frame.AppendPushStreamHeader(nil, id), block)
	if err := st.WriteChunk(b); err != nil {
		f.t.Fatal(err)
	}
	size := f.snd.MaxChunk() - h3frame.DataWithOffsetHeaderLen(h3frame.MaxVarint, f.snd.MaxChunk())
	for off := 0; off < len(body); off += size {
		chunk := body[off:min(off+size, len(body))]
		var fr []byte
		if f.prof.DataOffset {
			fr = h3frame.AppendDataWithOffsetHeader(nil, uint64(off), len(chunk))
		} else {
			fr = h3frame.AppendDataHeader(nil, len(chunk))
		}
		if err := st.WriteChunk(append(fr, chunk...)); err != nil {
			f.t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		f.t.Fatal(err)
	}
	return id
}

// flush sends what is queued.
func (f *forger) flush() {
	f.t.Helper()
	if err := f.snd.Flush(); err != nil {
		f.t.Fatal(err)
	}
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

// waitSettled waits until the receiver of the client's only session has
// settled n pushes (complete, incomplete or failed) and the client has no
// unicast work left.
func waitSettled(tc *testClient, n uint64) {
	tc.t.Helper()
	unicasttest.WaitFor(tc.t, 30*time.Second, fmt.Sprintf("%d pushes settled and no unicast job left", n), func() bool {
		c := tc.c
		c.mu.Lock()
		var rcvs []*h3m.Receiver
		for _, cs := range c.sessions {
			cs.mu.Lock()
			if cs.rcv != nil {
				rcvs = append(rcvs, cs.rcv)
			}
			cs.mu.Unlock()
		}
		idle := len(c.jobs) == 0
		c.mu.Unlock()
		var settled uint64
		for _, r := range rcvs {
			st := r.Stats()
			settled += st.Complete + st.Incomplete + st.Failed
		}
		return idle && settled >= n
	})
}
