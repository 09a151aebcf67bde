package h3m_test

import (
	"net/netip"
	"testing"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/protect"
	"github.com/h3m-project/h3m/mquic/wire"
)

// FuzzPushStreams feeds arbitrary bytes to the HTTP/3 layer as stream 0
// and push-stream data, split into STREAM frames at fuzzer-chosen points
// and with a fuzzer-chosen lost frame, in a NULL-suite session, keeping
// orphans or not. The
// receiver must not panic, must settle every push it knows, and must never
// report a resource complete whose body disagrees with its content-length.
func FuzzPushStreams(f *testing.F) {
	req, _ := h3frame.AppendFieldSection(nil, h3frame.RequestFields(&h3frame.Request{Method: "GET", Scheme: "https", Authority: "a", Path: "/x"}))
	resp, _ := h3frame.AppendFieldSection(nil, []h3frame.Field{{Name: ":status", Value: "200"}, {Name: "content-length", Value: "5"}})
	promise := h3frame.AppendPushPromise(nil, 0, req)
	push := h3frame.AppendPushStreamHeader(nil, 0)
	push = h3frame.AppendHeadersFrame(push, resp)
	push = append(h3frame.AppendDataHeader(push, 5), "hello"...)
	f.Add(promise, push, uint8(7), uint8(255))
	f.Add(promise, push, uint8(3), uint8(1))
	f.Add(append(promise, h3frame.AppendCancelPush(nil, 0)...), push, uint8(200), uint8(0))
	f.Add([]byte{0x04, 0x00, 0x07, 0x01, 0x00}, []byte{0x01, 0x00, 0x00, 0x03, 0xff}, uint8(2), uint8(2))
	withOffset := h3frame.AppendPushStreamHeader(nil, 0)
	withOffset = h3frame.AppendHeadersFrame(withOffset, resp)
	withOffset = append(h3frame.AppendDataWithOffsetHeader(withOffset, 0, 5), "hello"...)
	f.Add(promise, withOffset, uint8(9), uint8(255))
	f.Fuzz(func(t *testing.T, s0, s3 []byte, split, lose uint8) {
		for i := range 4 {
			// With and without DATA_WITH_OFFSET, and keeping orphans
			// (push streams whose promise or HEADERS were lost) or not.
			dataOffset, keepOrphans := i&1 == 1, i&2 == 2
			params := mquic.Params{Group: mcasttest.Group(), SessionID: []byte{9}, CipherSuite: protect.SuiteNull, PacketNumberLen: 4}
			rcv, err := h3m.NewReceiver(&captureConn{}, h3m.ReceiverConfig{Session: params,
				Profile: h3m.Profile{DataOffset: dataOffset}, MaxResourceSize: 1 << 20, KeepOrphans: keepOrphans})
			if err != nil {
				t.Fatal(err)
			}
			pn := uint64(0)
			frame := 0
			src := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), 1)
			send := func(id uint64, data []byte) {
				step := int(split%16) + 1
				for off := 0; off <= len(data); off += step {
					end := min(off+step, len(data))
					frame++
					if frame == int(lose) {
						continue
					}
					b := wire.AppendShortHeader(nil, params.SessionID, pn, 4)
					pn++
					b = wire.AppendStreamFrame(b, wire.StreamFrame{StreamID: id, Offset: uint64(off), Data: data[off:end], Fin: id != 0 && end == len(data)}, true)
					rcv.HandlePacket(b, src)
					if end == len(data) {
						break
					}
				}
			}
			send(0, s0)
			send(3, s3)
			rcv.Transport().Flush()
			for _, res := range rcv.Resources() {
				st, _ := res.State()
				if st != h3m.StateComplete {
					continue
				}
				first, length, _ := res.Span()
				if len(res.Missing()) != 0 || length < 0 {
					t.Fatalf("complete resource with missing bytes or no length: %v %d", res.Missing(), length)
				}
				if got := len(bodyOf(t, res)); int64(got) > length || first < 0 {
					t.Fatalf("body of %d bytes for a length of %d", got, length)
				}
			}
		}
	})
}
