package h3m_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
)

// testSession is a pusher and a receiver of one session over real loopback
// multicast.
type testSession struct {
	t      testing.TB
	params mquic.Params
	prof   h3m.Profile
	sconn  *mcast.Conn
	lossy  *mcasttest.Lossy
	snd    *mquic.Sender
	pusher *h3m.Pusher
	rcv    *h3m.Receiver

	mu     sync.Mutex
	cond   *sync.Cond // on mu, broadcast on every event
	events []h3m.Event
	byPath map[string]*h3m.Resource
	wrote  [][]byte // every packet sent, when recording
	record bool

	cancel context.CancelFunc
	runErr chan error
}

type sessionOpts struct {
	dataOffset bool
	loss       float64
	record     bool
	pusher     h3m.PusherConfig
	receiver   h3m.ReceiverConfig
	rate       uint64
}

func newSession(t testing.TB, o sessionOpts) *testSession {
	t.Helper()
	group := mcasttest.Group()
	secret := make([]byte, 32)
	rand.Read(secret)
	params := mquic.Params{
		Group: group, Source: mcasttest.Source, SessionID: []byte("h3m-test"),
		CipherSuite: protect.SuiteAES128GCM, Secret: secret,
		PeakFlowRate: 1_000_000_000, MaxConcurrentResources: 16,
	}
	if o.rate != 0 {
		params.PeakFlowRate = o.rate
	}
	s := &testSession{t: t, params: params, prof: h3m.Profile{DataOffset: o.dataOffset}, byPath: map[string]*h3m.Resource{}, record: o.record}
	s.cond = sync.NewCond(&s.mu)
	rconn := mcasttest.Receiver(t, group)
	s.sconn = mcasttest.Sender(t, group)
	s.lossy = mcasttest.NewLossy(s.sconn, o.loss, 42)

	rc := o.receiver
	rc.Session = params
	rc.Profile = s.prof
	rc.OnEvent = s.onEvent
	rcv, err := h3m.NewReceiver(rconn, rc)
	if err != nil {
		t.Fatal(err)
	}
	s.rcv = rcv
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.runErr = make(chan error, 1)
	go func() { s.runErr <- rcv.Run(ctx) }()

	sc := mquic.SenderConfig{Params: params}
	if o.record {
		sc.OnPacket = func(pn uint64, pkt []byte) {
			s.mu.Lock()
			s.wrote = append(s.wrote, append([]byte(nil), pkt...))
			s.mu.Unlock()
		}
	}
	snd, err := mcasttest.RunSender(t, s.lossy, sc)
	if err != nil {
		t.Fatal(err)
	}
	s.snd = snd
	pc := o.pusher
	pc.Profile = s.prof
	if pc.Authority == "" {
		pc.Authority = "example.org"
	}
	pc.MaxConcurrentResources = params.MaxConcurrentResources
	s.pusher, err = h3m.NewPusher(snd, pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		snd.Close()
	})
	return s
}

func (s *testSession) onEvent(e h3m.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	if p := e.Resource.Path(); p != "" {
		s.byPath[p] = e.Resource
	}
	s.cond.Broadcast()
}

// awaitTimeout bounds a wait for an event, so that a receiver that never
// reports one fails its test with a message instead of hanging the binary.
const awaitTimeout = 2 * time.Minute

// await waits until an event of kind has been reported for path.
func (s *testSession) await(path string, kind h3m.EventKind) *h3m.Resource {
	s.t.Helper()
	deadline := time.Now().Add(awaitTimeout)
	wake := time.AfterFunc(awaitTimeout, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer wake.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for _, e := range s.events {
			if e.Kind == kind && e.Resource.Path() == path {
				return e.Resource
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %v event for %s within %v (%d events so far)", kind, path, awaitTimeout, len(s.events))
		}
		s.cond.Wait()
	}
}

// receiverErr waits for the receiver's Run to return, at most awaitTimeout.
func (s *testSession) receiverErr() error {
	s.t.Helper()
	select {
	case err := <-s.runErr:
		return err
	case <-time.After(awaitTimeout):
		s.t.Fatalf("the receiver did not return within %v", awaitTimeout)
		return nil
	}
}

// finish ends the session and waits for the receiver to see the end.
func (s *testSession) finish() {
	s.t.Helper()
	if err := s.pusher.Close(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.snd.Close()
	if err := s.receiverErr(); err != nil {
		s.t.Fatalf("receiver: %v", err)
	}
}

// stop ends the session, waits until the receiver has received its last
// push, then stops the receiver, which settles every push still in
// progress as it does when a push times out. Tests of loss use it so that
// no outcome depends on how long a push went quiet.
func (s *testSession) stop() {
	s.t.Helper()
	if err := s.pusher.Close(context.Background()); err != nil {
		s.t.Fatal(err)
	}
	s.snd.Close()
	s.await(h3m.EndPath, h3m.EventComplete)
	s.cancel()
	if err := s.receiverErr(); err != nil {
		s.t.Fatalf("receiver: %v", err)
	}
}

func (s *testSession) resource(path string) *h3m.Resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byPath[path]
}

// pushAll pushes the resources with up to 16 concurrent pushes.
func (s *testSession) pushAll(pushes []*h3m.Push) {
	s.t.Helper()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(pushes))
	for _, p := range pushes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := s.pusher.Push(context.Background(), p); err != nil {
				errs <- fmt.Errorf("%s: %w", p.Request.Path, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatal(err)
	}
}

func bytesPush(path string, body []byte) *h3m.Push {
	return &h3m.Push{
		Request:       h3frame.Request{Authority: "example.org", Path: path},
		Header:        http.Header{"Content-Type": {"application/octet-stream"}, "X-Test": {path}},
		Body:          bytes.NewReader(body),
		ContentLength: int64(len(body)),
	}
}

func bodyOf(t testing.TB, res *h3m.Resource) []byte {
	t.Helper()
	mb, ok := res.Body().(*h3m.MemoryBody)
	if !ok {
		t.Fatalf("%s: body is %T", res.Path(), res.Body())
	}
	return mb.Bytes()
}

// captureConn keeps what a sender writes (see mcasttest.CaptureConn).
type captureConn = mcasttest.CaptureConn
