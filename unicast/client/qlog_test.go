package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlogwriter"
)

// memTrace is the io.WriteCloser of a trace kept in memory.
type memTrace struct {
	mu     sync.Mutex
	b      bytes.Buffer
	closed bool
}

func (m *memTrace) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.b.Write(p)
}

func (m *memTrace) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// events returns the names of the trace's events and its group ID, once
// the trace is closed.
func (m *memTrace) events(t *testing.T) (names map[string]int, groupID string) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.closed {
		t.Fatal("trace not closed")
	}
	names = map[string]int{}
	for i, rec := range bytes.Split(bytes.TrimPrefix(m.b.Bytes(), []byte{0x1e}), []byte{0x1e}) {
		var r struct {
			Name  string `json:"name"`
			Trace struct {
				CommonFields struct {
					GroupID string `json:"group_id"`
				} `json:"common_fields"`
			} `json:"trace"`
		}
		if err := json.Unmarshal(rec, &r); err != nil {
			t.Fatalf("record %d: %v: %s", i, err, rec)
		}
		if i == 0 {
			groupID = r.Trace.CommonFields.GroupID
		} else {
			names[r.Name]++
		}
	}
	return names, groupID
}

// memTracer is a session tracer (PublisherConfig.Tracer,
// Config.Tracer) that keeps the traces in memory.
type memTracer struct {
	mu     sync.Mutex
	traces map[string][]*memTrace // by session ID
}

func (m *memTracer) tracer(isClient bool) func([]byte) qlogwriter.Trace {
	return func(sessionID []byte) qlogwriter.Trace {
		mt := &memTrace{}
		m.mu.Lock()
		if m.traces == nil {
			m.traces = map[string][]*memTrace{}
		}
		m.traces[string(sessionID)] = append(m.traces[string(sessionID)], mt)
		m.mu.Unlock()
		fs := qlogwriter.NewConnectionFileSeq(mt, isClient, quic.ConnectionIDFromBytes(sessionID))
		go fs.Run()
		return fs
	}
}

func (m *memTracer) get(sessionID string) []*memTrace {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.traces[sessionID]
}

// TestQlog: with QLOGDIR set, the unicast server and client write quic-go's
// qlog of their QUIC connections there; the publisher's and the client's
// session tracers get a trace of the multicast session's sender and
// receiver, with the session ID as group ID, and both are closed when the
// session ends.
func TestQlog(t *testing.T) {
	qdir := t.TempDir()
	t.Setenv("QLOGDIR", qdir)
	var senders, receivers memTracer
	h := origintest.New(t, origintest.Options{Files: 3, MaxSize: 40 << 10, Seed: 9,
		Publisher: func(pc *origin.PublisherConfig) { pc.Tracer = senders.tracer(false) }})
	if _, err := h.Pub.Start(unicasttest.Ad(t, "qlog")); err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(h)
	cfg.QUICConfig = nil // the default, which traces under QLOGDIR
	cfg.Tracer = receivers.tracer(true)
	cfg.ExitOnEnd = true
	tc := runClient(h, cfg)
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(10*time.Second, h.Paths)
	tc.checkExact(h, h.Paths)
	if err := h.Pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-tc.done:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not end with the session")
	}

	sid := hex.EncodeToString([]byte("qlog"))
	for _, c := range []struct {
		side  string
		tr    *memTracer
		event string
	}{{"sender", &senders, "transport:packet_sent"}, {"receiver", &receivers, "transport:packet_received"}} {
		traces := c.tr.get("qlog")
		if len(traces) != 1 {
			t.Fatalf("%s: %d traces of the session, want 1", c.side, len(traces))
		}
		names, group := traces[0].events(t)
		if group != sid || names[c.event] == 0 {
			t.Errorf("%s trace: group ID %q (want %q), events %v", c.side, group, sid, names)
		}
		t.Logf("%s trace: %v", c.side, names)
	}

	// quic-go's traces of the unicast connections.
	unicasttest.WaitFor(t, 5*time.Second, "the client's qlog of its unicast connection", func() bool {
		m, _ := filepath.Glob(filepath.Join(qdir, "*_client.sqlog"))
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && st.Size() > 0 {
				return true
			}
		}
		return false
	})
	server, _ := filepath.Glob(filepath.Join(qdir, "*_server.sqlog"))
	if len(server) == 0 {
		entries, _ := os.ReadDir(qdir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("no server qlog in QLOGDIR: %s", strings.Join(names, " "))
	}
}
