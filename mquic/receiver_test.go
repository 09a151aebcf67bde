package mquic_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// captureConn keeps what a sender writes (see mcasttest.CaptureConn).
type captureConn = mcasttest.CaptureConn

var src = netip.AddrPortFrom(mcasttest.Source, 4433)

// runSender creates a sender and runs it until the test ends.
func runSender(t testing.TB, conn net.PacketConn, cfg mquic.SenderConfig) (*mquic.Sender, error) {
	return mcasttest.RunSender(t, conn, cfg)
}

// capturedSession sends n bytes of pattern on one stream and returns the
// packets as they would go on the wire.
func capturedSession(t testing.TB, params mquic.Params, pat pattern, n int) [][]byte {
	t.Helper()
	cc := &captureConn{}
	snd, err := runSender(t, cc, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	sendStreams(t, snd, pat, 1, n)
	snd.Close()
	return cc.Packets()
}

func newTestReceiver(t testing.TB, params mquic.Params, col *collector) *mquic.Receiver {
	t.Helper()
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: col})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestReceiverDropsBadPackets(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	pkts := capturedSession(t, params, pat, 20000)
	if len(pkts) < 10 {
		t.Fatalf("only %d packets", len(pkts))
	}
	wrongKey := params.Clone()
	wrongKey.Secret[0] ^= 1
	otherSession := params.Clone()
	otherSession.SessionID[0] ^= 1
	forged := capturedSession(t, wrongKey, pat, 2000)
	otherSess := capturedSession(t, otherSession, pat, 2000)

	col := newCollector(pat)
	r := newTestReceiver(t, params, col)
	good := 0
	feed := func(p []byte, from netip.AddrPort) { r.HandlePacket(append([]byte(nil), p...), from) }
	for i, p := range pkts {
		switch i % 7 {
		case 1:
			feed(p[:len(p)-1], src) // truncated: tag fails
		case 2:
			q := append([]byte(nil), p...)
			q[len(q)/2] ^= 0x10 // bit flip in the payload
			feed(q, src)
		case 3:
			feed(p, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), 4433)) // another source
		case 4:
			q := append([]byte(nil), p...)
			q[0] |= 0x80 // long header
			feed(q, src)
		case 5:
			feed(p[:5], src) // too short for header
		}
		feed(p, src) // the real one
		good++
		if i%5 == 0 {
			feed(p, src) // replay
		}
	}
	for _, p := range forged {
		feed(p, src)
	}
	for _, p := range otherSess {
		feed(p, src)
	}
	r.Flush()
	for _, err := range col.errs {
		t.Error(err)
	}
	st := r.Stats()
	l := col.streams[3]
	if l == nil || !l.finished || !l.got.Contains(0, 20000) {
		t.Fatalf("the real stream did not arrive whole: %+v", l)
	}
	if st.Packets != uint64(good) {
		t.Errorf("accepted %d packets, want %d", st.Packets, good)
	}
	n := uint64(len(pkts))
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"decrypt failures (truncated, flipped, wrong key)", st.DecryptFailed, (n+5)/7 + (n+4)/7 + uint64(len(forged))},
		{"wrong source", st.WrongSource, (n + 3) / 7},
		{"not short (long header, too short)", st.NotShort, (n+2)/7 + (n+1)/7},
		{"wrong session", st.WrongSession, uint64(len(otherSess))},
		{"duplicates", st.Duplicate, (n + 4) / 5},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	total := st.Packets + st.DecryptFailed + st.WrongSource + st.NotShort + st.WrongSession + st.Duplicate + st.Stale + st.UnknownFrame + st.BadFrame
	if total != st.Datagrams {
		t.Errorf("%d datagrams but %d accounted for: %+v", st.Datagrams, total, st)
	}
}

// rawPacket builds and protects a packet with the given frames.
func rawPacket(t testing.TB, params mquic.Params, pn uint64, payload []byte) []byte {
	t.Helper()
	prot, err := params.Protector()
	if err != nil {
		t.Fatal(err)
	}
	b := wire.AppendShortHeader(make([]byte, 0, 1500), params.SessionID, pn, params.PNLen())
	b = append(b, payload...)
	return prot.Seal(b, 1+len(params.SessionID), pn)
}

func TestReceiverFrames(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	data := make([]byte, 100)
	pat.fill(data, 7, 0)
	stream := func(id, off uint64, p []byte, fin bool) []byte {
		return wire.AppendStreamFrame(nil, wire.StreamFrame{StreamID: id, Offset: off, Data: p, Fin: fin}, true)
	}
	ack := []byte{0x02, 0x05, 0x00, 0x00, 0x05} // ACK largest 5, delay 0, 0 ranges, first range 5
	crypto := []byte{0x06, 0x00, 0x01, 0xaa}
	unknown := []byte{0x40, 0x21} // frame type 0x21: not defined
	cases := []struct {
		name    string
		payload []byte
		check   func(t *testing.T, st mquic.ReceiverStats, col *collector)
	}{
		{"prohibited frames are ignored, the rest is used",
			append(append(append([]byte{}, ack...), crypto...), stream(7, 0, data, true)...),
			func(t *testing.T, st mquic.ReceiverStats, col *collector) {
				if st.ProhibitedFrames != 2 || st.ProhibitedByType[wire.FrameTypeAck] != 1 || st.ProhibitedByType[wire.FrameTypeCrypto] != 1 {
					t.Errorf("prohibited counts %d %v", st.ProhibitedFrames, st.ProhibitedByType)
				}
				if l := col.streams[7]; l == nil || !l.finished {
					t.Errorf("stream 7 not delivered")
				}
			}},
		{"an unknown frame drops the packet",
			append(stream(7, 0, data, true), unknown...),
			func(t *testing.T, st mquic.ReceiverStats, col *collector) {
				if st.UnknownFrame != 1 || st.Packets != 0 || len(col.streams) != 0 {
					t.Errorf("unknown frame: %+v, streams %d", st, len(col.streams))
				}
			}},
		{"a malformed frame drops the packet",
			append(stream(7, 0, data, false), 0x0e, 0x07), // STREAM with OFF bit, truncated
			func(t *testing.T, st mquic.ReceiverStats, col *collector) {
				if st.BadFrame != 1 || len(col.streams) != 0 {
					t.Errorf("malformed frame: %+v", st)
				}
			}},
		{"streams the profile does not allow are ignored",
			append(stream(4, 0, data, true), stream(2, 0, data, true)...),
			func(t *testing.T, st mquic.ReceiverStats, col *collector) {
				if st.BadStreamFrames != 2 || len(col.streams) != 0 {
					t.Errorf("bad stream frames %d, streams %d", st.BadStreamFrames, len(col.streams))
				}
			}},
		{"reset stream",
			append(stream(7, 0, data[:10], false), wire.AppendResetStreamFrame(nil, wire.ResetStreamFrame{StreamID: 7, ErrorCode: 9, FinalSize: 50})...),
			func(t *testing.T, st mquic.ReceiverStats, col *collector) {
				if len(col.errs) != 1 { // the collector treats a reset as unexpected
					t.Errorf("reset not reported: %v", col.errs)
				}
				col.errs = nil
			}},
		{"ping and padding",
			append([]byte{0x01}, make([]byte, 30)...),
			func(t *testing.T, st mquic.ReceiverStats, col *collector) {
				if st.Pings != 1 || st.Packets != 1 {
					t.Errorf("ping: %+v", st)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			col := newCollector(pat)
			r := newTestReceiver(t, params, col)
			r.HandlePacket(rawPacket(t, params, 100, c.payload), src)
			c.check(t, r.Stats(), col)
			for _, err := range col.errs {
				t.Error(err)
			}
		})
	}
}

func TestReceiverReplayWindow(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	col := newCollector(newPattern())
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: col, ReplayWindow: 64, MaxPNJump: 200})
	if err != nil {
		t.Fatal(err)
	}
	ping := []byte{0x01}
	r.HandlePacket(rawPacket(t, params, 1000, ping), src)
	r.HandlePacket(rawPacket(t, params, 990, ping), src)  // late but in window
	r.HandlePacket(rawPacket(t, params, 990, ping), src)  // duplicate
	r.HandlePacket(rawPacket(t, params, 1000, ping), src) // duplicate
	r.HandlePacket(rawPacket(t, params, 900, ping), src)  // before the window
	r.HandlePacket(rawPacket(t, params, 1100, ping), src)
	st := r.Stats()
	if st.Packets != 3 || st.Duplicate != 2 || st.Stale != 1 {
		t.Fatalf("packets %d duplicates %d stale %d", st.Packets, st.Duplicate, st.Stale)
	}
	// 1001..1099 are missing; 990 (before the first packet) arrived late
	// and counts as reordered, not as filling a known gap.
	if st.LostPackets != 99 || st.ReorderedPackets != 1 {
		t.Fatalf("lost %d reordered %d", st.LostPackets, st.ReorderedPackets)
	}
}

func TestReceiverStreamCaps(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	col := newCollector(pat)
	r, err := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{
		Params: params, Handler: col, MaxStreams: 4, MaxBufferedBytes: 10000,
		ReorderThreshold: 1000, ReorderDelay: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1000)
	pn := uint64(0)
	send := func(id, off uint64, fin bool) {
		pat.fill(data, id, off)
		pn++
		r.HandlePacket(rawPacket(t, params, pn, wire.AppendStreamFrame(nil, wire.StreamFrame{StreamID: id, Offset: off, Data: data, Fin: fin}, true)), src)
	}
	for id := uint64(3); id < 3+4*6; id += 4 {
		send(id, 0, false)
	}
	// The two least recently active streams made room for the last two.
	st := r.Stats()
	if st.EvictedStreams != 2 || len(r.Streams()) != 4 || !col.streams[3].evicted || !col.streams[7].evicted || col.streams[11].evicted {
		t.Fatalf("evicted %d, open %v", st.EvictedStreams, r.Streams())
	}
	send(3, 1000, false) // an evicted stream is gone
	if st := r.Stats(); st.ClosedStreamData != 1 || len(r.Streams()) != 4 {
		t.Fatalf("frame of an evicted stream: %+v", st)
	}
	send(11, 1000, false) // stream 11 is now the most recently active
	send(27, 0, false)
	if !col.streams[15].evicted || col.streams[11].evicted {
		t.Fatal("eviction did not take the least recently active stream")
	}
	// Out-of-order data beyond the buffer cap forces early gaps.
	for off := uint64(2000); off < 40000; off += 1000 {
		send(23, off, false)
	}
	st = r.Stats()
	if st.Buffered > 10000+2048 || st.EarlyGaps == 0 {
		t.Fatalf("buffered %d, early gaps %d", st.Buffered, st.EarlyGaps)
	}
	l := col.streams[23]
	if !l.gaps.Contains(1000, 2000) {
		t.Fatalf("gap [1000,2000) not reported: %v", l.gaps.String())
	}
	for _, err := range col.errs {
		t.Error(err)
	}
	// A finished stream does not come back.
	send(19, 1000, true)
	if len(col.errs) > 0 || !col.streams[19].finished {
		t.Fatalf("stream 19 not finished: %v", col.errs)
	}
	send(19, 0, false)
	if r.Stats().ClosedStreamData != 2 {
		t.Fatal("data for a finished stream was not counted")
	}
}

func TestIdleTimeoutAndKeepAlive(t *testing.T) {
	group := mcasttest.Group()
	params := testParams(t, group)
	params.IdleTimeout = 300 * time.Millisecond
	col := newCollector(newPattern())
	rcv, err := mquic.NewReceiver(mcasttest.Receiver(t, group), mquic.ReceiverConfig{Params: params, Handler: col})
	if err != nil {
		t.Fatal(err)
	}
	// The receiver's clock moves only when the test says: between two
	// keep-alives, by less than the idle timeout.
	clk := newTestClock()
	rcv.SetClock(clk.Now)
	snd, err := runSender(t, mcasttest.Sender(t, group), mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- rcv.Run(context.Background()) }()
	// The sender's PINGs (every third of the idle timeout) keep the session
	// alive however late they come by the wall clock.
	for pings := uint64(0); pings < 5; {
		select {
		case err := <-errc:
			t.Fatalf("receiver stopped while the sender was alive: %v", err)
		default:
		}
		if p := rcv.Stats().Pings; p > pings {
			pings = p
			clk.Advance(params.IdleTimeout * 2 / 3)
		}
		time.Sleep(time.Millisecond)
	}
	snd.Close() // silence
	clk.Advance(params.IdleTimeout)
	if err := <-errc; !errors.Is(err, mquic.ErrIdleTimeout) {
		t.Fatalf("receiver ended with %v, want ErrIdleTimeout", err)
	}
}

func TestNullSuiteDraftLiteralAndShortPacketNumbers(t *testing.T) {
	pat := newPattern()
	for _, tc := range []struct {
		name  string
		suite protect.Suite
		pnLen int
	}{{"null/1", protect.SuiteNull, 1}, {"aes128-literal/2", protect.SuiteAES128GCM, 2}, {"chacha-literal/4", protect.SuiteChaCha20Poly1305, 4}} {
		t.Run(tc.name, func(t *testing.T) {
			params := mquic.Params{Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte("Session ID"),
				CipherSuite: tc.suite, PacketNumberLen: tc.pnLen}
			if tc.suite != protect.SuiteNull {
				params.Key = make([]byte, tc.suite.KeyLen())
				params.IV = make([]byte, tc.suite.IVLen())
			}
			// 700 packets: 1-byte packet numbers wrap twice.
			pkts := capturedSession(t, params, pat, 700*1100)
			col := newCollector(pat)
			r := newTestReceiver(t, params, col)
			for _, p := range pkts {
				r.HandlePacket(p, src)
			}
			if l := col.streams[3]; l == nil || !l.finished || !l.got.Contains(0, 700*1100) {
				t.Fatalf("stream incomplete: %+v %v", l, r.Stats())
			}
			if tc.suite == protect.SuiteNull && pkts[0][0] != 0x40 {
				t.Fatalf("first byte %#x, nghq-style 0x40 expected", pkts[0][0])
			}
		})
	}
}
