package h3m_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/altsvc"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/internal/pcapfile"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

const nghqDir = "../internal/pcapfile/testdata/nghq"

// nghqParams are the session parameters of nghq's example sender: NULL
// suite, 1-byte packet numbers, the 10-byte session ID "Session ID".
func nghqParams() mquic.Params {
	return mquic.Params{
		Group:           netip.MustParseAddrPort("232.0.0.1:2000"),
		Source:          netip.MustParseAddr("127.0.0.1"),
		SessionID:       []byte("Session ID"),
		CipherSuite:     protect.SuiteNull,
		PacketNumberLen: 1,
	}
}

// TestReceiveNGHQCapture decodes a real capture of nghq's sender: every
// file must come out byte-exact, with its Digest and its cavage-12
// signatures (over promise and response) verified against the sender's
// certificate.
// nghqCapture returns the datagrams of nghq's capture and the public key
// of its sender's signatures.
func nghqCapture(t *testing.T) ([]pcapfile.Packet, crypto.PublicKey) {
	t.Helper()
	f, err := os.Open(filepath.Join(nghqDir, "capture.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := pcapfile.ReadUDPPayloads(f)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(filepath.Join(nghqDir, "sender-cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := integrity.ParsePublicKeyPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pkts, pub
}

func TestReceiveNGHQCapture(t *testing.T) {
	pkts, pub := nghqCapture(t)
	var ended []h3m.Event
	// nghq signs the Date field of its responses: the capture's are of
	// 2026-11-22 10:47 UTC, when the signatures were fresh.
	captured := time.Date(2026, 11, 22, 10, 48, 0, 0, time.UTC)
	rcv, err := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{
		Session: nghqParams(),
		Verifier: &h3m.Verifier{RequireDigest: true, RequireSignature: true, CavageForm: integrity.CavageNGHQ,
			Keys: integrity.StaticKeys(map[string]crypto.PublicKey{"sender.pem": pub}),
			Now:  func() time.Time { return captured }},
		OnEvent: func(e h3m.Event) { ended = append(ended, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if p.Src.Addr() != netip.MustParseAddr("127.0.0.1") || p.Dst != netip.MustParseAddrPort("232.0.0.1:2000") {
			t.Fatalf("unexpected datagram %v -> %v", p.Src, p.Dst)
		}
		rcv.HandlePacket(p.Payload, p.Src)
	}
	select {
	case <-rcv.Ended():
	default:
		t.Fatal("the session end (connection: close on the last response) was not recognised")
	}
	files, _ := os.ReadDir(filepath.Join(nghqDir, "files"))
	got := map[string]*h3m.Resource{}
	for _, r := range rcv.Resources() {
		got[r.Path()] = r
	}
	if len(got) != len(files) {
		t.Fatalf("%d resources, %d files", len(got), len(files))
	}
	for _, fe := range files {
		want, _ := os.ReadFile(filepath.Join(nghqDir, "files", fe.Name()))
		res := got["//"+fe.Name()] // nghq's default URL prefix gives a double slash
		if res == nil {
			t.Fatalf("%s not received; have %v", fe.Name(), got)
		}
		if st, err := res.State(); st != h3m.StateComplete {
			t.Fatalf("%s: %v %v", fe.Name(), st, err)
		}
		if !bytes.Equal(bodyOf(t, res), want) {
			t.Fatalf("%s: body differs", fe.Name())
		}
		if req := res.Request(); req.Authority != "localhost" || req.Header.Get("Signature") == "" {
			t.Fatalf("%s: promise %+v", fe.Name(), req)
		}
	}
	if st := rcv.Transport().Stats(); st.Packets != uint64(len(pkts)) || st.LostPackets != 0 {
		t.Fatalf("transport: %+v", st)
	}
}

// TestNGHQCaptureReplayedLater: the same captured, validly signed responses
// replayed more than Verifier.MaxAge after they were signed (a rollback to
// an older version, by anyone who recorded them) fail their checks: the
// signatures' signed Date is too old. (Before, the signature alone was
// checked, and the replay accepted.)
func TestNGHQCaptureReplayedLater(t *testing.T) {
	pkts, pub := nghqCapture(t)
	later := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) // more than an hour after
	rcv, err := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{
		Session: nghqParams(),
		Verifier: &h3m.Verifier{RequireDigest: true, RequireSignature: true, CavageForm: integrity.CavageNGHQ,
			Keys: integrity.StaticKeys(map[string]crypto.PublicKey{"sender.pem": pub}),
			Now:  func() time.Time { return later }},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		rcv.HandlePacket(p.Payload, p.Src)
	}
	n := 0
	for _, res := range rcv.Resources() {
		if res.Response() == nil || res.Response().Header.Get("Signature") == "" {
			continue
		}
		n++
		if st, err := res.State(); st != h3m.StateFailed || !errors.Is(err, integrity.ErrExpired) {
			t.Errorf("%s replayed later: %v %v", res.Path(), st, err)
		}
	}
	if n == 0 {
		t.Fatal("no signed response in the capture")
	}
}

// TestNGHQCompatibleSender pushes the capture's files in the h3m-07 profile
// and checks every packet against what nghq's receiver accepts
// (nghq-wire.md §6): short header 0x40, the session ID, 1-byte packet
// numbers, no protection; only STREAM (with LEN), PADDING and PING; stream
// 0 carries only PUSH_PROMISEs, each starting a STREAM frame and sent before
// its push stream; push streams start with type 0x01 and the push ID, then
// HEADERS and DATA, FIN at the end; no HTTP/3 frame header straddles two
// STREAM frames; QPACK field sections have Required Insert Count 0 and Base
// 0; the last response carries connection: close. Then our receiver reads
// the packets back.
func TestNGHQCompatibleSender(t *testing.T) {
	params := nghqParams()
	cc := &captureConn{}
	snd, err := mcasttest.RunSender(t, cc, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	pusher, err := h3m.NewPusher(snd, h3m.PusherConfig{Authority: "localhost", Digests: []string{"SHA-256"}, Profile: h3m.Profile{InOrderStreams: true}})
	if err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(filepath.Join(nghqDir, "files"))
	want := map[string][]byte{}
	for i, fe := range files {
		body, _ := os.ReadFile(filepath.Join(nghqDir, "files", fe.Name()))
		want["/"+fe.Name()] = body
		p := bytesPush("/"+fe.Name(), body)
		p.Request.Authority = ""
		p.Last = i == len(files)-1
		if _, err := pusher.Push(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	snd.Close()
	pkts := cc.Packets()
	checkNGHQLayout(t, params, pkts)

	rcv, err := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{Session: params, Verifier: &h3m.Verifier{RequireDigest: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		rcv.HandlePacket(p, netip.MustParseAddrPort("127.0.0.1:9"))
	}
	for _, r := range rcv.Resources() {
		if st, err := r.State(); st != h3m.StateComplete || !bytes.Equal(bodyOf(t, r), want[r.Path()]) {
			t.Fatalf("%s: %v %v", r.Path(), st, err)
		}
	}
	<-rcv.Ended()
}

func checkNGHQLayout(t *testing.T, params mquic.Params, pkts [][]byte) {
	t.Helper()
	streams := map[uint64][]byte{}
	frameStarts := map[uint64]map[uint64]bool{} // STREAM frame start offsets
	fin := map[uint64]bool{}
	promisedBefore := map[uint64]bool{} // push IDs promised so far
	for i, p := range pkts {
		if len(p) > 4096 {
			t.Fatalf("packet %d: %d bytes, nghq reads at most 4096", i, len(p))
		}
		if p[0] != 0x40 || !bytes.Equal(p[1:11], params.SessionID) || p[11] != byte(i) {
			t.Fatalf("packet %d header % x", i, p[:12])
		}
		payload := p[12:]
		var f wire.Frame
		for len(payload) > 0 {
			typ := payload[0]
			n, err := wire.ParseFrame(payload, &f)
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			switch {
			case typ == 0x00 || typ == 0x01:
			case typ >= 0x08 && typ <= 0x0f:
				if typ&0x02 == 0 {
					t.Fatalf("packet %d: STREAM frame without LEN", i)
				}
				sf := f.Stream
				if sf.StreamID != 0 && sf.StreamID%4 != 3 {
					t.Fatalf("packet %d: stream %d", i, sf.StreamID)
				}
				if frameStarts[sf.StreamID] == nil {
					frameStarts[sf.StreamID] = map[uint64]bool{}
				}
				frameStarts[sf.StreamID][sf.Offset] = true
				if uint64(len(streams[sf.StreamID])) != sf.Offset {
					t.Fatalf("packet %d: stream %d offset %d out of order", i, sf.StreamID, sf.Offset)
				}
				streams[sf.StreamID] = append(streams[sf.StreamID], sf.Data...)
				if sf.Fin {
					fin[sf.StreamID] = true
				}
				if sf.StreamID != 0 && sf.Offset == 0 {
					pushID, _, err := h3frame.ParsePushStreamHeader(sf.Data)
					if err != nil || !promisedBefore[pushID] {
						t.Fatalf("packet %d: push stream %d starts before its promise (push %d, %v)", i, sf.StreamID, pushID, err)
					}
				}
				if sf.StreamID == 0 {
					for b := sf.Data; len(b) > 0; {
						typ, payload, n, err := h3frame.ParseFrame(b)
						if err != nil || typ != h3frame.TypePushPromise {
							t.Fatalf("packet %d: stream 0 frame %v %v", i, typ, err)
						}
						id, _, _ := h3frame.ParsePushPromisePayload(payload)
						promisedBefore[id] = true
						b = b[n:]
					}
				}
			default:
				t.Fatalf("packet %d: frame type %#x, nghq accepts only STREAM, PADDING, PING", i, typ)
			}
			payload = payload[n:]
		}
	}
	if fin[0] {
		t.Fatal("stream 0 was finished")
	}
	lastClose := false
	for id, b := range streams {
		if id == 0 {
			continue
		}
		if !fin[id] {
			t.Fatalf("stream %d not finished", id)
		}
		_, n, _ := h3frame.ParsePushStreamHeader(b)
		first := true
		for off := n; off < len(b); {
			if !frameStarts[id][uint64(off)] && !straddleFree(frameStarts[id], uint64(off), b) {
				t.Fatalf("stream %d: HTTP/3 frame header at %d straddles STREAM frames", id, off)
			}
			typ, payload, fn, err := h3frame.ParseFrame(b[off:])
			if err != nil {
				t.Fatalf("stream %d at %d: %v", id, off, err)
			}
			switch {
			case first && typ == h3frame.TypeHeaders:
				if payload[0] != 0 || payload[1] != 0 {
					t.Fatalf("stream %d: QPACK prefix % x", id, payload[:2])
				}
				fields, _ := h3frame.ParseFieldSection(payload, 0)
				for _, fl := range fields {
					if fl.Name == "connection" && fl.Value == "close" {
						lastClose = true
					}
				}
			case !first && typ == h3frame.TypeData:
			default:
				t.Fatalf("stream %d: frame %v", id, typ)
			}
			first = false
			off += fn
		}
	}
	if !lastClose {
		t.Fatal("no response carried connection: close")
	}
}

// straddleFree reports whether the HTTP/3 frame header at off lies within
// the STREAM frame that contains it.
func straddleFree(starts map[uint64]bool, off uint64, b []byte) bool {
	_, _, n, err := h3frame.ParseFrameHeader(b[off:])
	if err != nil {
		return false
	}
	for o := off + 1; o < off+uint64(n); o++ {
		if starts[o] {
			return false
		}
	}
	return true
}

// A draft 07 advertisement (nghq's profile) makes the pusher send promises
// and push stream heads once: nghq's receiver takes stream bytes only in
// order. Later drafts repeat them.
func TestProfileInOrderStreams(t *testing.T) {
	for draft, want := range map[int]bool{7: true, 11: false} {
		ad := altsvc.Advertisement{Draft: draft}
		if got := h3m.ProfileOf(&ad).InOrderStreams; got != want {
			t.Errorf("draft %d: InOrderStreams %v, want %v", draft, got, want)
		}
	}
}
