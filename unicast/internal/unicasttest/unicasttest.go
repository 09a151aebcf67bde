// Package unicasttest holds the small helpers the tests of the unicast
// packages share: a logger into the test, session advertisements on
// loopback, and polling for a condition.
package unicasttest

import (
	"crypto/rand"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
)

// Logger logs to t until the test ends (goroutines that outlive it log
// nowhere). H3M_TEST_DEBUG=1 lowers the level to debug.
func Logger(t testing.TB) *slog.Logger {
	lw := &logWriter{t: t}
	t.Cleanup(lw.stop)
	level := slog.LevelInfo
	if os.Getenv("H3M_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: level}))
}

type logWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *logWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Ad returns the advertisement of a new loopback session.
func Ad(t testing.TB, id string) altsvc.Advertisement {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	return altsvc.Advertisement{
		Draft: 11,
		Session: mquic.Params{
			Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte(id),
			CipherSuite: protect.SuiteAES128GCM, Secret: secret,
			// Modest rate: CI runs several packages on 2 cores.
			PeakFlowRate: 200_000_000, MaxConcurrentResources: 16,
			// Idle pings every ~0.5 s let a client see that multicast is back
			// even when nothing is pushed.
			IdleTimeout: 1500 * time.Millisecond,
		},
	}
}

// WaitFor polls cond until it holds or timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
