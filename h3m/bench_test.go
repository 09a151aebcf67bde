package h3m_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
)

type discardStorage struct{}

func (discardStorage) NewBody(*h3m.Resource, int64) (h3m.Body, error) { return discardBody{}, nil }

type discardBody struct{}

func (discardBody) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }
func (discardBody) ReadAt([]byte, int64) (int, error)      { return 0, io.EOF }
func (discardBody) Discard() error                         { return nil }

type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// BenchmarkReceivePush measures the receiver's per-packet work for the body
// of a large push: transport plus HTTP/3 parsing and body placement
// ("h3m"), against the transport alone delivering the same packets to a
// handler that counts them ("mquic"), in the same run.
func BenchmarkReceivePush(b *testing.B) {
	for _, dataOffset := range []bool{false, true} {
		name := "data"
		if dataOffset {
			name = "data-offset"
		}
		params := mquic.Params{Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte("bench"),
			CipherSuite: protect.SuiteAES128GCM, Secret: make([]byte, 32)}
		prof := h3m.Profile{DataOffset: dataOffset}
		cc := &captureConn{}
		snd, _ := mcasttest.RunSender(b, cc, mquic.SenderConfig{Params: params})
		p, _ := h3m.NewPusher(snd, h3m.PusherConfig{Profile: prof, Authority: "x"})
		const size = 64 << 20
		p.Push(context.Background(), &h3m.Push{Request: h3frame.Request{Path: "/big"}, Body: &zeros{size}, ContentLength: size})
		snd.Close()
		pkts := cc.Packets()
		src := netip.AddrPortFrom(mcasttest.Source, 1)
		for _, layer := range []string{"mquic", "h3m"} {
			b.Run(name+"/"+layer, func(b *testing.B) {
				newRcv := func() func([]byte, netip.AddrPort) {
					if layer == "mquic" {
						r, _ := mquic.NewReceiver(&captureConn{}, mquic.ReceiverConfig{Params: params, Handler: countingHandler{new(int)}})
						return r.HandlePacket
					}
					r, _ := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{Session: params, Profile: prof, Storage: discardStorage{}})
					return r.HandlePacket
				}
				handle := newRcv()
				buf := make([]byte, 1500)
				b.SetBytes(int64(len(pkts[10])))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					if i == len(pkts) {
						b.StopTimer()
						handle, i = newRcv(), 0
						b.StartTimer()
					}
					handle(buf[:copy(buf, pkts[i])], src)
					i++
				}
			})
		}
	}
}

// countingHandler is a transport handler that counts the stream bytes.
type countingHandler struct{ n *int }

func (h countingHandler) OpenStream(*mquic.RecvStream) mquic.StreamHandler { return h }
func (h countingHandler) Data(_ uint64, p []byte)                          { *h.n += len(p) }
func (countingHandler) Gap(uint64, uint64)                                 {}
func (countingHandler) Finish(uint64)                                      {}
func (countingHandler) Reset(uint64, uint64)                               {}

// BenchmarkSendPush measures the sender's per-packet work for the body of a
// large push ("h3m": the pusher framing DATA) against the transport alone
// writing full chunks on a stream ("mquic"), in the same run, into memory.
func BenchmarkSendPush(b *testing.B) {
	params := mquic.Params{Group: mcasttest.Group(), Source: mcasttest.Source, SessionID: []byte("bench"),
		CipherSuite: protect.SuiteAES128GCM, Secret: make([]byte, 32)}
	const size = 16 << 20
	for _, layer := range []string{"mquic", "h3m"} {
		b.Run(layer, func(b *testing.B) {
			snd, _ := mcasttest.RunSender(b, &discardConn{}, mquic.SenderConfig{Params: params})
			defer snd.Close()
			p, _ := h3m.NewPusher(snd, h3m.PusherConfig{Authority: "x"})
			chunk := make([]byte, snd.MaxChunk())
			b.ReportAllocs()
			for b.Loop() {
				if layer == "h3m" {
					p.Push(context.Background(), &h3m.Push{Request: h3frame.Request{Path: "/big"}, Body: &zeros{size}, ContentLength: size})
					continue
				}
				st, _ := snd.OpenStream()
				for n := 0; n < size; n += len(chunk) {
					st.WriteChunk(chunk)
				}
				st.Close()
			}
			snd.Flush()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(snd.Stats().Packets), "ns/packet")
		})
	}
}

// discardConn is a socket that drops what it is given.
type discardConn struct{ captureConn }

func (*discardConn) WriteTo(p []byte, _ net.Addr) (int, error) { return len(p), nil }
