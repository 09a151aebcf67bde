package h3m_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// captured is a session whose packets were written to memory, to be fed to
// a receiver packet by packet.
type captured struct {
	params mquic.Params
	prof   h3m.Profile
	pkts   [][]byte
}

var capturedSource = netip.AddrPortFrom(mcasttest.Source, 1)

// capture pushes the resources (one after the other) into memory, in a
// NULL-suite session so that tests can read and change the packets.
func capture(t testing.TB, prof h3m.Profile, pc h3m.PusherConfig, pushes ...*h3m.Push) *captured {
	t.Helper()
	params := mquic.Params{Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte("verify"),
		CipherSuite: protect.SuiteNull, PacketNumberLen: 4}
	cc := &captureConn{}
	snd, err := mcasttest.RunSender(t, cc, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	pc.Profile = prof
	p, err := h3m.NewPusher(snd, pc)
	if err != nil {
		t.Fatal(err)
	}
	for _, push := range pushes {
		if _, err := p.Push(context.Background(), push); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.Close(); err != nil {
		t.Fatal(err)
	}
	return &captured{params: params, prof: prof, pkts: cc.Packets()}
}

// receiver returns a receiver of the captured session reading from conn
// (nil: none; packets are fed with feed).
func (c *captured) receiver(t testing.TB, rc h3m.ReceiverConfig, conn net.PacketConn) *h3m.Receiver {
	t.Helper()
	rc.Session, rc.Profile = c.params, c.prof
	if conn == nil {
		conn = &captureConn{}
	}
	r, err := h3m.NewReceiver(conn, rc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// feed hands the packets to r, skipping those drop selects (by index).
func (c *captured) feed(r *h3m.Receiver, pkts [][]byte, drop func(i int) bool) {
	for i, p := range pkts {
		if drop != nil && drop(i) {
			continue
		}
		r.HandlePacket(append([]byte(nil), p...), capturedSource)
	}
}

// streamFrames calls f with the STREAM frames of packet i.
func (c *captured) streamFrames(t testing.TB, i int, f func(sf wire.StreamFrame)) {
	t.Helper()
	streamFrames(t, c.params, c.pkts[i], f)
}

// streamFrames opens a packet of the session and calls f with its STREAM
// frames.
func streamFrames(t testing.TB, params mquic.Params, pkt []byte, f func(sf wire.StreamFrame)) {
	t.Helper()
	mcasttest.StreamFrames(t, params, pkt, f)
}

// afterFin returns the index of the packet after the one that ends stream.
func (c *captured) afterFin(t testing.TB, stream uint64) int {
	t.Helper()
	for i := range c.pkts {
		fin := false
		c.streamFrames(t, i, func(sf wire.StreamFrame) { fin = fin || (sf.StreamID == stream && sf.Fin) })
		if fin {
			return i + 1
		}
	}
	t.Fatalf("stream %d never ends", stream)
	return 0
}

// readCounting is a memory storage whose bodies record where they were
// read: a body pass shows up as ReadAt calls.
type readCounting struct {
	mu     sync.Mutex
	reads  int
	lowest int64 // lowest offset read, -1 none
	gate   chan struct{}
	inRead chan struct{} // receives when a ReadAt starts (if gate is set)
	bodies []*h3m.MemoryBody
}

func newReadCounting() *readCounting { return &readCounting{lowest: -1} }

func (s *readCounting) NewBody(res *h3m.Resource, size int64) (h3m.Body, error) {
	b, err := h3m.MemoryStorage{}.NewBody(res, size)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, b.(*h3m.MemoryBody))
	s.mu.Unlock()
	return &countedBody{MemoryBody: b.(*h3m.MemoryBody), s: s}, nil
}

func (s *readCounting) stats() (reads int, lowest int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reads, s.lowest
}

type countedBody struct {
	*h3m.MemoryBody
	s *readCounting
}

func (b *countedBody) ReadAt(p []byte, off int64) (int, error) {
	s := b.s
	s.mu.Lock()
	s.reads++
	if s.lowest < 0 || off < s.lowest {
		s.lowest = off
	}
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		s.inRead <- struct{}{}
		<-gate
	}
	return b.MemoryBody.ReadAt(p, off)
}

func randomBody(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// onlyReader hides io.Seeker, so that the pusher sends digests in trailers.
type onlyReader struct{ io.Reader }

// TestWholePushIsCheckedWithoutReadingItsBody: a push that arrives whole,
// in order, is verified from the digests computed as its bytes arrived —
// its body is never read back — whether the digests come in the header or,
// in a session that advertises its digest algorithms, in trailers.
func TestWholePushIsCheckedWithoutReadingItsBody(t *testing.T) {
	body := randomBody(3 << 20)
	for _, tc := range []struct {
		name    string
		prof    h3m.Profile
		trailer bool
	}{
		{"header digests", h3m.Profile{}, false},
		{"header digests, data-offset", h3m.Profile{DataOffset: true}, false},
		{"trailer digests, advertised algorithms", h3m.Profile{DigestAlgorithms: []string{"SHA-256", "SHA-512"}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			push := bytesPush("/whole", body)
			if tc.trailer {
				push.Body = onlyReader{push.Body}
			}
			c := capture(t, tc.prof, h3m.PusherConfig{Digests: []string{"SHA-256", "SHA-512"}}, push)
			store := newReadCounting()
			r := c.receiver(t, h3m.ReceiverConfig{Storage: store, Verifier: &h3m.Verifier{RequireDigest: true}}, nil)
			c.feed(r, c.pkts, nil)
			res := r.Resources()[0]
			if st, err := res.State(); st != h3m.StateComplete {
				t.Fatalf("%v %v", st, err)
			}
			if tc.trailer != (res.Trailer().Get("Digest") != "") {
				t.Fatalf("digests in the trailer %v, want %v", res.Trailer(), tc.trailer)
			}
			if n, _ := store.stats(); n != 0 {
				t.Fatalf("the body was read back %d times to check it", n)
			}
			if !bytes.Equal(store.bodies[0].Bytes(), body) {
				t.Fatal("body differs")
			}
		})
	}
}

// TestWholePushWithWrongDigestFails: the digests computed on arrival are
// really compared.
func TestWholePushWithWrongDigestFails(t *testing.T) {
	body := randomBody(200_000)
	push := bytesPush("/wrong", body)
	c := capture(t, h3m.Profile{}, h3m.PusherConfig{Digests: []string{"SHA-256"}}, push)
	flipped := 0
	for _, p := range c.pkts { // NULL suite: the body is in the clear
		if i := bytes.Index(p, body[100_000:100_032]); i >= 0 {
			p[i] ^= 1
			flipped++
		}
	}
	if flipped != 1 {
		t.Fatalf("found the bytes in %d packets", flipped)
	}
	store := newReadCounting()
	r := c.receiver(t, h3m.ReceiverConfig{Storage: store}, nil)
	c.feed(r, c.pkts, nil)
	res := r.Resources()[0]
	if st, err := res.State(); st != h3m.StateFailed || !errors.Is(err, h3m.ErrIntegrity) {
		t.Fatalf("%v %v", st, err)
	}
}

// TestVerificationNeverBlocksIntake: a push whose digests can only be
// checked by reading its body back (they came in trailers the session did
// not announce) is verified off the packet path. Its body's ReadAt blocks
// until a second push has been received whole and reported; were the
// verification done under the receiver's locks, the second push could not
// be taken in and this test would stop there.
func TestVerificationNeverBlocksIntake(t *testing.T) {
	slow := bytesPush("/slow", randomBody(1<<20))
	slow.Body = onlyReader{slow.Body} // digests in trailers
	fast := bytesPush("/fast", randomBody(100_000))
	c := capture(t, h3m.Profile{}, h3m.PusherConfig{Digests: []string{"SHA-256"}}, slow, fast)
	store := newReadCounting()
	store.gate, store.inRead = make(chan struct{}), make(chan struct{}, 64)
	r, completed, stop := c.run(t, h3m.ReceiverConfig{Storage: store})

	split := c.afterFin(t, 3) // /slow is on stream 3, /fast on 7
	c.feed(r, c.pkts[:split], nil)
	<-store.inRead // /slow is being verified, and its read is held
	c.feed(r, c.pkts[split:], nil)
	if got := <-completed; got != "/fast" {
		t.Fatalf("first settled: %s", got)
	}
	close(store.gate)
	if got := <-completed; got != "/slow" {
		t.Fatalf("second settled: %s", got)
	}
	for _, res := range r.Resources() {
		if st, err := res.State(); st != h3m.StateComplete {
			t.Fatalf("%s: %v %v", res.Path(), st, err)
		}
	}
	stop()
}

// TestVerifyAfterRepairReadsFromTheFirstLoss: a push that lost a packet is
// incomplete; once the missing bytes are written, Verify checks it by
// reading the body back only from the first loss on, and refuses wrong
// repair bytes. It leaves the resource as it was, so it can be repeated.
func TestVerifyAfterRepairReadsFromTheFirstLoss(t *testing.T) {
	body := randomBody(2 << 20)
	for _, dataOffset := range []bool{false, true} {
		prof := h3m.Profile{DataOffset: dataOffset}
		c := capture(t, prof, h3m.PusherConfig{Digests: []string{"SHA-256", "SHA-512"}}, bytesPush("/lossy", body))
		store := newReadCounting()
		r := c.receiver(t, h3m.ReceiverConfig{Storage: store}, nil)
		lost := len(c.pkts) / 2
		c.feed(r, c.pkts, func(i int) bool { return i == lost })
		res := r.Resources()[0]
		if st, err := res.State(); st != h3m.StateIncomplete {
			t.Fatalf("%v %v", st, err)
		}
		missing := res.Missing()
		if len(missing) != 1 {
			t.Fatalf("missing %v", missing)
		}
		m := missing[0]
		v := &h3m.Verifier{RequireDigest: true}
		rb := res.Body()
		wrong := bytes.Clone(body[m.Start:m.End])
		wrong[0] ^= 0xff
		rb.WriteAt(wrong, int64(m.Start))
		if err := v.Verify(res, prof); !errors.Is(err, h3m.ErrIntegrity) {
			t.Fatalf("wrong repair: %v", err)
		}
		rb.WriteAt(body[m.Start:m.End], int64(m.Start))
		for range 2 {
			if err := v.Verify(res, prof); err != nil {
				t.Fatalf("repaired: %v", err)
			}
		}
		if _, lowest := store.stats(); lowest < int64(m.Start) {
			t.Fatalf("read the body from %d, the first loss is at %d", lowest, m.Start)
		}
	}
}

// TestTrailerDigestsWithoutAnnouncement: digests that come only in
// trailers, in a session that does not advertise its algorithms, are
// checked by a pass over the body after it arrived — and a wrong one
// fails the push.
func TestTrailerDigestsWithoutAnnouncement(t *testing.T) {
	body := randomBody(300_000)
	push := bytesPush("/live", body)
	push.Body = onlyReader{push.Body}
	c := capture(t, h3m.Profile{}, h3m.PusherConfig{Digests: []string{"SHA-512"}}, push)
	store := newReadCounting()
	r := c.receiver(t, h3m.ReceiverConfig{Storage: store}, nil)
	c.feed(r, c.pkts, nil)
	res := r.Resources()[0]
	if st, err := res.State(); st != h3m.StateComplete {
		t.Fatalf("%v %v", st, err)
	}
	if n, _ := store.stats(); n == 0 {
		t.Fatal("trailer digests checked without reading the body")
	}
}

// run starts a receiver of the captured session with Run, on an idle
// socket (the test feeds the packets by hand), once its workers run. It
// returns the paths of the pushes as they settle, and stop, which ends Run.
func (c *captured) run(t *testing.T, rc h3m.ReceiverConfig) (r *h3m.Receiver, settled <-chan string, stop func()) {
	t.Helper()
	ch := make(chan string, 16)
	rc.OnEvent = func(e h3m.Event) {
		if e.Kind == h3m.EventComplete || e.Kind == h3m.EventFailed || e.Kind == h3m.EventIncomplete {
			ch <- e.Resource.Path()
		}
	}
	r = c.receiver(t, rc, mcasttest.Receiver(t, c.params.Group))
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	for !h3m.ReceiverRunning(r) {
		runtime.Gosched()
	}
	return r, ch, func() {
		t.Helper()
		cancel()
		if err := <-runErr; err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyRefusesAnUnfinishedResource: a promised resource whose response
// never came cannot be checked, and Verify says so.
func TestVerifyRefusesAnUnfinishedResource(t *testing.T) {
	c := capture(t, h3m.Profile{}, h3m.PusherConfig{})
	cc := &captureConn{}
	snd, err := mcasttest.RunSender(t, cc, mquic.SenderConfig{Params: c.params})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := h3frame.AppendFieldSection(nil, h3frame.RequestFields(&h3frame.Request{Method: "GET", Scheme: "https", Authority: "a", Path: "/x"}))
	if err := snd.Stream0().WriteChunk(h3frame.AppendPushPromise(nil, 0, block)); err != nil {
		t.Fatal(err)
	}
	snd.Close()
	r := c.receiver(t, h3m.ReceiverConfig{}, nil)
	c.feed(r, cc.Packets(), nil)
	res := r.Resources()
	if len(res) != 1 || res[0].Path() != "/x" {
		t.Fatalf("resources %v", res)
	}
	if err := (&h3m.Verifier{}).Verify(res[0], c.prof); !errors.Is(err, h3m.ErrIntegrity) {
		t.Fatalf("%v", err)
	}
}

// TestDigestBacklogFallsBackToReadBack: while the digest worker is held
// (here by a key resolver that waits), a large push's blocks back up to the
// cap; that push then stops being hashed on arrival and is checked by
// reading it back on the other worker, so it completes — and memory stays
// bounded — while the first push's check still waits.
func TestDigestBacklogFallsBackToReadBack(t *testing.T) {
	signed := bytesPush("/signed", randomBody(10_000))
	signed.Header.Set("Signature", `keyId="k",algorithm="ed25519",headers="(request-target)",signature="AAAA"`)
	big := bytesPush("/big", randomBody(24<<20))
	c := capture(t, h3m.Profile{}, h3m.PusherConfig{Digests: []string{"SHA-256"}}, signed, big)
	resolving, release := make(chan struct{}, 1), make(chan struct{})
	keys := func(string) (crypto.PublicKey, error) {
		resolving <- struct{}{}
		<-release
		return nil, errors.New("no such key")
	}
	store := newReadCounting()
	// MaxAge -1: the signature covers no time, and the test needs its key
	// resolved.
	r, completed, stop := c.run(t, h3m.ReceiverConfig{Storage: store, Verifier: &h3m.Verifier{Keys: keys, MaxAge: -1}})

	split := c.afterFin(t, 3)
	c.feed(r, c.pkts[:split], nil)
	<-resolving // the digest worker is held in /signed's check
	c.feed(r, c.pkts[split:], nil)
	if got := <-completed; got != "/big" {
		t.Fatalf("first settled: %s", got)
	}
	if n, _ := store.stats(); n == 0 {
		t.Fatal("/big completed without being read back")
	}
	close(release)
	if got := <-completed; got != "/signed" {
		t.Fatalf("second settled: %s", got)
	}
	byPath := map[string]*h3m.Resource{}
	for _, res := range r.Resources() {
		byPath[res.Path()] = res
	}
	if st, err := byPath["/big"].State(); st != h3m.StateComplete {
		t.Fatalf("/big: %v %v", st, err)
	}
	if st, err := byPath["/signed"].State(); st != h3m.StateFailed || !errors.Is(err, h3m.ErrIntegrity) {
		t.Fatalf("/signed: %v %v", st, err)
	}
	stop()
}
