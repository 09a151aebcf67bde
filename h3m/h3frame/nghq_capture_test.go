package h3frame

import (
	"bytes"
	"os"
	"testing"

	"github.com/h3m-project/h3m/internal/pcapfile"
	"github.com/quic-go/quic-go/quicvarint"
)

const nghqCapture = "../../internal/pcapfile/testdata/nghq/capture.pcap"

// streamFrameData returns the stream ID and data of the QUIC STREAM frame
// (types 0x08-0x0f, with LEN) at the start of an nghq packet's payload:
// nghq's short header is 1 byte, the 10-byte DCID "Session ID" and a 1-byte
// packet number (ref/nghq-wire.md).
func streamFrameData(t *testing.T, pkt []byte) (uint64, []byte) {
	t.Helper()
	const hdr = 1 + 10 + 1
	if len(pkt) < hdr+1 || pkt[0] != 0x40 || string(pkt[1:11]) != "Session ID" {
		t.Fatalf("not an nghq packet: %x", pkt[:min(len(pkt), 16)])
	}
	b := pkt[hdr:]
	ft := b[0]
	if ft&0xf8 != 0x08 || ft&0x02 == 0 {
		t.Fatalf("frame type %#x is not STREAM with LEN", ft)
	}
	b = b[1:]
	id, n, err := quicvarint.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	b = b[n:]
	if ft&0x04 != 0 { // OFF
		_, n, err := quicvarint.Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		b = b[n:]
	}
	l, n, err := quicvarint.Parse(b)
	if err != nil || uint64(len(b)-n) < l {
		t.Fatalf("STREAM length: %v", err)
	}
	return id, b[n : n+int(l)]
}

// TestNGHQCapture parses nghq's HTTP/3 framing straight from the capture
// with this package's parsers and checks that the field sections in
// testdata/nghq are the bytes the capture carries.
func TestNGHQCapture(t *testing.T) {
	f, err := os.Open(nghqCapture)
	if os.IsNotExist(err) {
		t.Skipf("%s not present", nghqCapture)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := pcapfile.ReadUDPPayloads(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) < 3 {
		t.Fatalf("%d packets", len(pkts))
	}

	// Packet 1: stream 0, PUSH_PROMISE for push 0.
	id, data := streamFrameData(t, pkts[0].Payload)
	if id != 0 {
		t.Fatalf("packet 1 is on stream %d", id)
	}
	ty, p, _, err := ParseFrame(data)
	if err != nil || ty != TypePushPromise || len(p) != 433 {
		t.Fatalf("packet 1: %v, %d-byte payload, %v", ty, len(p), err)
	}
	pushID, block, err := ParsePushPromisePayload(p)
	if err != nil || pushID != 0 {
		t.Fatalf("push ID %d, %v", pushID, err)
	}
	if want := loadHex(t, "testdata/nghq/promise-push0.hex"); !bytes.Equal(block, want) {
		t.Errorf("PUSH_PROMISE field section differs from testdata/nghq/promise-push0.hex")
	}

	// Packet 2: push stream 7 starts with 01 00, then HEADERS.
	checkPushHeaders := func(pkt []byte, wantStream, wantPush uint64, file string) {
		t.Helper()
		id, data := streamFrameData(t, pkt)
		if id != wantStream {
			t.Fatalf("stream %d, want %d", id, wantStream)
		}
		pushID, n, err := ParsePushStreamHeader(data)
		if err != nil || pushID != wantPush {
			t.Fatalf("push stream header: %d %v", pushID, err)
		}
		ty, p, _, err := ParseFrame(data[n:])
		if err != nil || ty != TypeHeaders {
			t.Fatalf("%v %v", ty, err)
		}
		if want := loadHex(t, file); !bytes.Equal(p, want) {
			t.Errorf("HEADERS field section differs from %s", file)
		}
		if _, err := ParseFieldSection(p, 0); err != nil {
			t.Error(err)
		}
	}
	checkPushHeaders(pkts[1].Payload, 7, 0, "testdata/nghq/headers-push0.hex")
	checkPushHeaders(pkts[len(pkts)-1].Payload, 19, 3, "testdata/nghq/headers-push3-last.hex")

	// Every PUSH_PROMISE of the capture decodes into a request.
	promises := 0
	for _, pk := range pkts {
		id, data := streamFrameData(t, pk.Payload)
		if id != 0 {
			continue
		}
		ty, p, _, err := ParseFrame(data)
		if err != nil || ty != TypePushPromise {
			t.Fatalf("stream 0: %v %v", ty, err)
		}
		_, block, err := ParsePushPromisePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		fields, err := ParseFieldSection(block, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRequest(fields); err != nil {
			t.Fatal(err)
		}
		promises++
	}
	if promises != 4 {
		t.Errorf("%d promises, want 4 (one per file)", promises)
	}
}
