package client

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// trickleConn queues what the sender writes and releases one packet every
// gap: the catalogue lists each push as soon as the sender has packetized
// it, while its packets reach the receiver much later, as they do when a
// loaded receiver works through the backlog in its socket buffer.
type trickleConn struct {
	net.PacketConn // the socket; not *mcast.Conn, whose WriteBatch would bypass the queue
	gap            time.Duration

	mu     sync.Mutex
	queue  [][]byte
	dst    net.Addr
	wake   chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newTrickleConn(c *mcast.Conn, gap time.Duration) *trickleConn {
	t := &trickleConn{PacketConn: c, gap: gap, wake: make(chan struct{}, 1), closed: make(chan struct{})}
	go t.release()
	return t
}

// WriteTo queues p.
func (t *trickleConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	t.mu.Lock()
	t.queue = append(t.queue, append([]byte(nil), p...))
	t.dst = addr
	t.mu.Unlock()
	select {
	case t.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

// Queued is how many packets wait.
func (t *trickleConn) Queued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.queue)
}

func (t *trickleConn) release() {
	tick := time.NewTicker(t.gap)
	defer tick.Stop()
	for {
		t.mu.Lock()
		var p []byte
		if len(t.queue) > 0 {
			p, t.queue = t.queue[0], t.queue[1:]
		}
		dst := t.dst
		t.mu.Unlock()
		if p == nil {
			select {
			case <-t.wake:
				continue
			case <-t.closed:
				return
			}
		}
		t.PacketConn.WriteTo(p, dst)
		select {
		case <-tick.C:
		case <-t.closed:
			return
		}
	}
}

func (t *trickleConn) Close() error {
	t.once.Do(func() { close(t.closed) })
	return t.PacketConn.Close()
}

// TestCatalogueAheadOfMulticast: the catalogue lists every push seconds
// before its packets reach the receiver. The receiver keeps making progress
// through the backlog, so no resource counts as lost and nothing is fetched
// over unicast: everything arrives by multicast. (LostGrace measured from
// the listing alone fetched every push still in the backlog.)
func TestCatalogueAheadOfMulticast(t *testing.T) {
	var tq *trickleConn
	h := origintest.New(t, origintest.Options{Files: 150, MaxSize: 900, Seed: 21,
		Publisher: func(pc *origin.PublisherConfig) {
			pc.Listen = func(c mcast.Config) (net.PacketConn, error) {
				conn, err := mcast.ListenSender(c)
				if err != nil {
					return nil, err
				}
				// A packet every 40 ms: the backlog takes seconds, and the
				// receiver hears of a push far more often than LostGrace.
				tq = newTrickleConn(conn, 40*time.Millisecond)
				return tq, nil
			}
		}})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "backlog")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	// The sender writes on a goroutine of its own: once it has handed every
	// packet to the trickle, the whole catalogue is listed and most packets
	// are still queued.
	h.Pub.Transport().Flush()
	if backlog := time.Duration(tq.Queued()) * tq.gap; backlog < 2*cfg.LostGrace {
		t.Fatalf("the backlog lasts %v, not long past LostGrace (%v): nothing is tested", backlog, cfg.LostGrace)
	}
	tc.waitPaths(60*time.Second, h.Paths)
	for _, d := range tc.checkExact(h, h.Paths) {
		if d.Via != ViaMulticast {
			t.Errorf("%s via %s, want multicast (%d requests)", d.Path, d.Via, d.Requests)
		}
	}
	if st := tc.c.Stats(); st.Fallback != 0 || st.FallbackEntered != 0 {
		t.Errorf("stats: %+v", st)
	}
}

// TestIncrementalReadsAfterABurst: once a burst of pushes is listed, each
// later poll asks for the entries from the origin's number for its next
// one (resources_from), which lists none of them again, however many
// pushes the burst held and however long the client keeps polling: the
// origin answers 304.
func TestIncrementalReadsAfterABurst(t *testing.T) {
	var mu sync.Mutex
	var froms []uint64
	h := origintest.New(t, origintest.Options{Files: 40, MaxSize: 500, Seed: 22,
		Front: func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if v := r.URL.Query().Get(wellknown.ResourcesFromParam); r.URL.Path == wellknown.Path && v != "" {
					if from, err := strconv.ParseUint(v, 10, 64); err == nil {
						mu.Lock()
						froms = append(froms, from)
						mu.Unlock()
					}
				}
				next.ServeHTTP(w, r)
			})
		}})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "burst")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.CatalogIdlePoll = cfg.CatalogPoll // reads at a fixed rate, though the session is live in-band: what they ask is the test
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)
	unicasttest.WaitFor(t, 10*time.Second, "the catalogue read with every push", func() bool {
		tc.c.mu.Lock()
		defer tc.c.mu.Unlock()
		return tc.c.catalogNext == uint64(len(h.Paths))+1
	})
	mu.Lock()
	from := len(froms)
	mu.Unlock()
	nm := tc.c.Stats().DescriptionNotModified
	// Events, not time: the origin sees a poll's request before the client
	// has counted its answer, and on a loaded machine that gap is long.
	unicasttest.WaitFor(t, 10*time.Second, "three polls after the burst, two of them answered 304", func() bool {
		mu.Lock()
		polls := len(froms) - from
		mu.Unlock()
		return polls >= 3 && tc.c.Stats().DescriptionNotModified-nm >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	for _, f := range froms[from:] {
		if f != uint64(len(h.Paths))+1 {
			t.Errorf("a poll after the burst asked for the entries from %d, want %d (the number of the next)", f, len(h.Paths)+1)
		}
	}
}
