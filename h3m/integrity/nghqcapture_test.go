package integrity

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"testing"

	"github.com/quic-go/qpack"
)

// This file is a deliberately small, test-only decoder for the nghq capture
// in testdata/nghq (a capture of BBC nghq's sender with its source files). It exists so
// that the signature and digest vectors in testdata/nghq-signatures.json
// provably come from the packets nghq put on the wire: TestNGHQVectorsFromCapture
// re-derives the JSON from the pcap and fails if the committed file differs.
// Run with -update-nghq to rewrite the JSON.

var updateNGHQ = flag.Bool("update-nghq", false, "rewrite testdata/nghq-signatures.json from the capture")

const (
	nghqCapture  = "../../internal/pcapfile/testdata/nghq/capture.pcap"
	nghqVectors  = "testdata/nghq-signatures.json"
	nghqDCIDLen  = 10 // "Session ID"
	nghqFilesDir = "../../internal/pcapfile/testdata/nghq/files"
)

// nghqField is one header field line, in wire order.
type nghqField struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// nghqExchange is one pushed resource as the capture carries it.
type nghqExchange struct {
	PushID     uint64      `json:"push_id"`
	PushStream uint64      `json:"push_stream"`
	Request    []nghqField `json:"request"`  // PUSH_PROMISE fields
	Response   []nghqField `json:"response"` // HEADERS fields on the push stream
	BodyLen    int         `json:"body_len"`
	BodySHA256 string      `json:"body_sha256"` // hex, of the reassembled DATA payloads
}

// decodeNGHQCapture reads a classic pcap of nghq's multicast sender and
// returns its pushed exchanges ordered by push ID.
func decodeNGHQCapture(pcap []byte) ([]nghqExchange, error) {
	streams, err := pcapStreams(pcap)
	if err != nil {
		return nil, err
	}
	promises := map[uint64][]nghqField{}
	s0, ok := streams[0]
	if !ok {
		return nil, errors.New("no stream 0 in capture")
	}
	frames, err := h3Frames(s0.contiguous())
	if err != nil {
		return nil, fmt.Errorf("stream 0: %w", err)
	}
	for _, f := range frames {
		if f.typ != 0x05 {
			return nil, fmt.Errorf("stream 0: unexpected frame type %#x", f.typ)
		}
		pushID, n, err := readVarint(f.payload)
		if err != nil {
			return nil, fmt.Errorf("PUSH_PROMISE push ID: %w", err)
		}
		fields, err := decodeQPACK(f.payload[n:])
		if err != nil {
			return nil, fmt.Errorf("PUSH_PROMISE %d: %w", pushID, err)
		}
		promises[pushID] = fields
	}

	var out []nghqExchange
	for id, st := range streams {
		if id == 0 {
			continue
		}
		if id%4 != 3 {
			return nil, fmt.Errorf("stream %d is not server-initiated unidirectional", id)
		}
		if !st.fin {
			return nil, fmt.Errorf("push stream %d has no FIN", id)
		}
		data := st.contiguous()
		if uint64(len(data)) != st.finalSize {
			return nil, fmt.Errorf("push stream %d: %d of %d bytes", id, len(data), st.finalSize)
		}
		typ, n, err := readVarint(data)
		if err != nil || typ != 0x01 {
			return nil, fmt.Errorf("push stream %d: stream type %#x: %v", id, typ, err)
		}
		data = data[n:]
		pushID, n, err := readVarint(data)
		if err != nil {
			return nil, fmt.Errorf("push stream %d: push ID: %w", id, err)
		}
		data = data[n:]
		frames, err := h3Frames(data)
		if err != nil {
			return nil, fmt.Errorf("push stream %d: %w", id, err)
		}
		ex := nghqExchange{PushID: pushID, PushStream: id}
		var ok bool
		if ex.Request, ok = promises[pushID]; !ok {
			return nil, fmt.Errorf("push stream %d: no PUSH_PROMISE for push ID %d", id, pushID)
		}
		h := sha256.New()
		for i, f := range frames {
			switch {
			case f.typ == 0x01 && i == 0:
				if ex.Response, err = decodeQPACK(f.payload); err != nil {
					return nil, fmt.Errorf("push stream %d HEADERS: %w", id, err)
				}
			case f.typ == 0x00 && i > 0:
				h.Write(f.payload)
				ex.BodyLen += len(f.payload)
			default:
				return nil, fmt.Errorf("push stream %d: unexpected frame %#x at position %d", id, f.typ, i)
			}
		}
		ex.BodySHA256 = hex.EncodeToString(h.Sum(nil))
		out = append(out, ex)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PushID < out[j].PushID })
	return out, nil
}

// nghqStream collects the STREAM frame data of one QUIC stream.
type nghqStream struct {
	chunks    map[uint64][]byte // by offset
	fin       bool
	finalSize uint64
}

// contiguous returns the stream bytes from offset 0 up to the first gap.
func (s *nghqStream) contiguous() []byte {
	var out []byte
	for {
		c, ok := s.chunks[uint64(len(out))]
		if !ok {
			// Accept overlapping retransmissions: find a chunk covering len(out).
			found := false
			for off, d := range s.chunks {
				end := off + uint64(len(d))
				if off < uint64(len(out)) && end > uint64(len(out)) {
					out = append(out, d[uint64(len(out))-off:]...)
					found = true
					break
				}
			}
			if !found {
				return out
			}
			continue
		}
		if len(c) == 0 {
			return out
		}
		out = append(out, c...)
	}
}

// pcapStreams parses the pcap records (Ethernet/IPv4/UDP), the nghq short
// header and the STREAM frames, and returns the streams by ID.
func pcapStreams(pcap []byte) (map[uint64]*nghqStream, error) {
	if len(pcap) < 24 {
		return nil, errors.New("pcap: short global header")
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(pcap) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, errors.New("pcap: bad magic")
	}
	if lt := bo.Uint32(pcap[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want 1 (Ethernet)", lt)
	}
	streams := map[uint64]*nghqStream{}
	rest := pcap[24:]
	for rec := 0; len(rest) > 0; rec++ {
		if len(rest) < 16 {
			return nil, fmt.Errorf("pcap record %d: short header", rec)
		}
		incl := int(bo.Uint32(rest[8:]))
		if len(rest) < 16+incl {
			return nil, fmt.Errorf("pcap record %d: truncated", rec)
		}
		frame := rest[16 : 16+incl]
		rest = rest[16+incl:]
		if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			return nil, fmt.Errorf("pcap record %d: not Ethernet/IPv4", rec)
		}
		ip := frame[14:]
		if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
			return nil, fmt.Errorf("pcap record %d: not IPv4/UDP", rec)
		}
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl+8 {
			return nil, fmt.Errorf("pcap record %d: short UDP header", rec)
		}
		udpLen := int(binary.BigEndian.Uint16(ip[ihl+4:]))
		if udpLen < 8 || len(ip) < ihl+udpLen {
			return nil, fmt.Errorf("pcap record %d: bad UDP length", rec)
		}
		if err := parseNGHQPacket(ip[ihl+8:ihl+udpLen], streams); err != nil {
			return nil, fmt.Errorf("pcap record %d: %w", rec, err)
		}
	}
	return streams, nil
}

func parseNGHQPacket(p []byte, streams map[uint64]*nghqStream) error {
	if len(p) < 1 || p[0]&0x80 != 0 {
		return errors.New("not a short header packet")
	}
	pnLen := int(p[0]&0x03) + 1
	hdr := 1 + nghqDCIDLen + pnLen
	if len(p) < hdr {
		return errors.New("short packet")
	}
	if string(p[1:1+nghqDCIDLen]) != "Session ID" {
		return fmt.Errorf("unexpected DCID %q", p[1:1+nghqDCIDLen])
	}
	b := p[hdr:] // NULL suite: no encryption, no tag
	for len(b) > 0 {
		typ := b[0]
		switch {
		case typ == 0x00: // PADDING to the end
			return nil
		case typ == 0x01: // PING
			b = b[1:]
		case typ >= 0x08 && typ <= 0x0f:
			b = b[1:]
			id, n, err := readVarint(b)
			if err != nil {
				return fmt.Errorf("STREAM id: %w", err)
			}
			b = b[n:]
			var off uint64
			if typ&0x04 != 0 {
				if off, n, err = readVarint(b); err != nil {
					return fmt.Errorf("STREAM offset: %w", err)
				}
				b = b[n:]
			}
			length := uint64(len(b))
			if typ&0x02 != 0 {
				if length, n, err = readVarint(b); err != nil {
					return fmt.Errorf("STREAM length: %w", err)
				}
				b = b[n:]
				if length > uint64(len(b)) {
					return errors.New("STREAM length beyond packet")
				}
			}
			st := streams[id]
			if st == nil {
				st = &nghqStream{chunks: map[uint64][]byte{}}
				streams[id] = st
			}
			if old, ok := st.chunks[off]; !ok || len(old) < int(length) {
				st.chunks[off] = append([]byte(nil), b[:length]...)
			}
			if typ&0x01 != 0 {
				st.fin = true
				st.finalSize = off + length
			}
			b = b[length:]
		default:
			return fmt.Errorf("unexpected frame type %#x", typ)
		}
	}
	return nil
}

type h3Frame struct {
	typ     uint64
	payload []byte
}

func h3Frames(b []byte) ([]h3Frame, error) {
	var out []h3Frame
	for len(b) > 0 {
		typ, n, err := readVarint(b)
		if err != nil {
			return nil, fmt.Errorf("frame type: %w", err)
		}
		b = b[n:]
		length, n, err := readVarint(b)
		if err != nil {
			return nil, fmt.Errorf("frame length: %w", err)
		}
		b = b[n:]
		if length > uint64(len(b)) {
			return nil, fmt.Errorf("frame %#x: length %d beyond %d bytes", typ, length, len(b))
		}
		out = append(out, h3Frame{typ, b[:length]})
		b = b[length:]
	}
	return out, nil
}

func decodeQPACK(block []byte) ([]nghqField, error) {
	dec := qpack.NewDecoder().Decode(block)
	var out []nghqField
	for {
		hf, err := dec()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, nghqField{hf.Name, hf.Value})
	}
}

// readVarint reads a QUIC variable-length integer (RFC 9000 §16).
func readVarint(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, io.ErrUnexpectedEOF
	}
	n := 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, io.ErrUnexpectedEOF
	}
	v := uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	return v, n, nil
}

func loadNGHQVectors(t testing.TB) []nghqExchange {
	t.Helper()
	raw, err := os.ReadFile(nghqVectors)
	if err != nil {
		t.Fatal(err)
	}
	var ex []nghqExchange
	if err := json.Unmarshal(raw, &ex); err != nil {
		t.Fatalf("%s: %v", nghqVectors, err)
	}
	if len(ex) == 0 {
		t.Fatalf("%s: no exchanges", nghqVectors)
	}
	return ex
}

func TestNGHQVectorsFromCapture(t *testing.T) {
	pcap, err := os.ReadFile(nghqCapture)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := decodeNGHQCapture(pcap)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(ex, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *updateNGHQ {
		if err := os.WriteFile(nghqVectors, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(nghqVectors)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s does not match what the capture decodes to (run with -update-nghq after checking why)", nghqVectors)
	}
	// The capture must hold the four files whose sha256 the capture README lists.
	if len(ex) != 4 {
		t.Fatalf("capture holds %d pushes, want 4", len(ex))
	}
	for _, e := range ex {
		name := path.Base(fieldValue(e.Request, ":path"))
		body, err := os.ReadFile(path.Join(nghqFilesDir, name))
		if err != nil {
			t.Fatalf("push %d: %v", e.PushID, err)
		}
		sum := sha256.Sum256(body)
		if hex.EncodeToString(sum[:]) != e.BodySHA256 || len(body) != e.BodyLen {
			t.Errorf("push %d (%s): reassembled body differs from %s", e.PushID, name, name)
		}
	}
}

func fieldValue(fs []nghqField, name string) string {
	for _, f := range fs {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}
