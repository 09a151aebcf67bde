package client

import (
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// TestSessionsDescribeJoinedSession: Sessions reports a joined session as
// the advertisement describes it, with the packets and bytes its receiver
// accepted.
func TestSessionsDescribeJoinedSession(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 3, MaxSize: 20 << 10, Seed: 5})
	ad := unicasttest.Ad(t, "info")
	if _, err := h.Pub.Start(ad); err != nil {
		t.Fatal(err)
	}
	tc := runClient(h, clientConfig(h))
	tc.waitJoined(1)
	h.PushAll(h.Paths)
	tc.waitPaths(15*time.Second, h.Paths)
	ss := tc.c.Sessions()
	if len(ss) != 1 {
		t.Fatalf("%d sessions: %+v", len(ss), ss)
	}
	s := ss[0]
	if s.ID != "696e666f" || s.Group != ad.Session.Group || s.Source != ad.Session.Source || s.PeakFlowRate != ad.Session.PeakFlowRate ||
		s.State != wellknown.StateActive || !s.Joined || s.JoinedAt.IsZero() || s.Refused || s.JoinError != "" || s.Asymmetric {
		t.Errorf("session %+v", s)
	}
	if s.Packets == 0 || s.Bytes < 3 {
		t.Errorf("no packets counted: %+v", s)
	}
}
