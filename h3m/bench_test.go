package h3m_test

import (
	"context"
	"io"
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
// of a large push: transport plus HTTP/3 parsing and body placement.
func BenchmarkReceivePush(b *testing.B) {
	for _, dataOffset := range []bool{false, true} {
		name := "data"
		if dataOffset {
			name = "data-offset"
		}
		b.Run(name, func(b *testing.B) {
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
			newRcv := func() *h3m.Receiver {
				r, _ := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{Session: params, Profile: prof, Storage: discardStorage{}})
				return r
			}
			r := newRcv()
			buf := make([]byte, 1500)
			b.SetBytes(int64(len(pkts[10])))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i == len(pkts) {
					b.StopTimer()
					r, i = newRcv(), 0
					b.StartTimer()
				}
				r.HandlePacket(buf[:copy(buf, pkts[i])], src)
				i++
			}
		})
	}
}
