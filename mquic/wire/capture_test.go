package wire

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/h3m-project/h3m/internal/pcapfile"
)

const nghqTestdata = "../../internal/pcapfile/testdata/nghq"

// TestNGHQCapture parses every packet nghq's multicast sender put on the
// wire: short header with the 10-byte session ID, 1-byte packet numbers
// that decode to 0, 1, 2, ... and STREAM frames only. Reassembling the
// streams from the parsed frames must yield contiguous data containing the
// bodies of the four files the sender pushed.
func TestNGHQCapture(t *testing.T) {
	f, err := os.Open(filepath.Join(nghqTestdata, "capture.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := pcapfile.ReadUDPPayloads(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 156 {
		t.Fatalf("%d datagrams, want 156", len(pkts))
	}

	streams := map[uint64][]byte{}
	fins := map[uint64]bool{}
	var largest uint64
	frames := 0
	for i, p := range pkts {
		pkt := p.Payload
		dcid, pnOff, err := ParseShortHeader(pkt, 10)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if pkt[0] != 0x40 || !bytes.Equal(dcid, nghqSessionID) {
			t.Fatalf("packet %d: first byte %#x, dcid %q", i, pkt[0], dcid)
		}
		pnLen := PacketNumberLen(pkt[0])
		if pnLen != 1 {
			t.Fatalf("packet %d: PN length %d", i, pnLen)
		}
		trunc := ReadPacketNumber(pkt[pnOff:], pnLen)
		pn := trunc // the first packet is taken literally
		if i > 0 {
			pn = DecodePacketNumber(largest, trunc, pnLen)
		}
		if pn != uint64(i) {
			t.Fatalf("packet %d: decoded PN %d", i, pn)
		}
		largest = max(largest, pn)

		var fr Frame
		for b := pkt[pnOff+pnLen:]; len(b) > 0; {
			n, err := ParseFrame(b, &fr)
			if err != nil {
				t.Fatalf("packet %d: %v", i, err)
			}
			b = b[n:]
			frames++
			if fr.Type != FrameTypeStream {
				t.Fatalf("packet %d: %v frame; nghq sends only STREAM", i, fr.Type)
			}
			sf := fr.Stream
			if got := uint64(len(streams[sf.StreamID])); sf.Offset != got {
				t.Fatalf("packet %d: stream %d offset %d, want %d (no loss in this capture)", i, sf.StreamID, sf.Offset, got)
			}
			if fins[sf.StreamID] {
				t.Fatalf("packet %d: data on stream %d after FIN", i, sf.StreamID)
			}
			streams[sf.StreamID] = append(streams[sf.StreamID], sf.Data...)
			fins[sf.StreamID] = sf.Fin
		}
	}
	ids := slices.Sorted(func(yield func(uint64) bool) {
		for id := range streams {
			if !yield(id) {
				return
			}
		}
	})
	if !slices.Equal(ids, []uint64{0, 7, 11, 15, 19}) {
		t.Errorf("streams %v, want [0 7 11 15 19]", ids)
	}
	if fins[0] || !fins[7] || !fins[11] || !fins[15] || !fins[19] {
		t.Errorf("FIN flags %v: want all push streams finished and stream 0 open", fins)
	}
	t.Logf("%d packets, %d STREAM frames, stream bytes: 0=%d 7=%d 11=%d 15=%d 19=%d", len(pkts), frames,
		len(streams[0]), len(streams[7]), len(streams[11]), len(streams[15]), len(streams[19]))

	// Each file's body is in one push stream, cut into HTTP/3 DATA frames
	// of at most 16384 bytes: every such chunk must appear verbatim.
	var all [][]byte
	for _, id := range ids[1:] {
		all = append(all, streams[id])
	}
	for _, name := range []string{"hello.txt", "medium200k.bin", "small3k.bin", "x.json"} {
		body, err := os.ReadFile(filepath.Join(nghqTestdata, "files", name))
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off < len(body); off += 16384 {
			chunk := body[off:min(off+16384, len(body))]
			if !slices.ContainsFunc(all, func(s []byte) bool { return bytes.Contains(s, chunk) }) {
				t.Errorf("%s: bytes %d..%d not found in any push stream", name, off, off+len(chunk))
			}
		}
	}
}
