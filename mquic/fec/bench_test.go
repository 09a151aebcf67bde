package fec

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"
	"time"
)

// The per-packet costs of FEC next to the AEAD every packet pays anyway;
// `h3m bench --what fec` prints the same ratios measured in one run.

const benchPayload = 1150 // a 1200-byte packet's payload with FEC (8-byte session ID, AES-GCM): symbols of 1152 bytes

func benchPayloads() [][]byte {
	ps := make([][]byte, DefaultMaxSourceCount)
	for i := range ps {
		ps[i] = make([]byte, benchPayload)
		for b := range ps[i] {
			ps[i][b] = byte(i*7 + b)
		}
	}
	return ps
}

// BenchmarkEncode is the sender's FEC work per source packet at 5 %
// overhead over full blocks: keeping the payload, and computing and framing
// the block's repair symbols when it closes.
func BenchmarkEncode(b *testing.B) {
	p, _ := NewParams(0.05, 0, 0)
	e, err := NewEncoder(p, 0.05, benchPayload)
	if err != nil {
		b.Fatal(err)
	}
	ps := benchPayloads()
	frame := make([]byte, 0, 2*benchPayload)
	now := time.Now()
	pn := uint64(0)
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	for b.Loop() {
		if e.Add(pn, ps[pn%uint64(len(ps))], 0, true, now) {
			e.Close()
			for e.Pending() > 0 {
				frame = e.AppendNext(frame[:0])
			}
			pn += uint64(p.MaxRepairCount)
		}
		pn++
	}
}

// BenchmarkDecode is the receiver's FEC work per source packet at 2 % loss:
// keeping every payload that arrives and rebuilding the 4 of 200 lost in
// each block from 4 of its 10 repair symbols.
func BenchmarkDecode(b *testing.B) {
	p, _ := NewParams(0.05, 0, 0)
	e, _ := NewEncoder(p, 0.05, benchPayload)
	ps := benchPayloads()
	now := time.Now()
	for i, pl := range ps {
		e.Add(uint64(i), pl, 0, true, now)
	}
	e.Close()
	var frames [][]byte
	for e.Pending() > 0 {
		frames = append(frames, e.AppendNext(nil))
	}
	d, _ := NewDecoder(DecoderConfig{Params: p})
	k := uint64(len(ps))
	span := k + uint64(len(frames))
	var r Repair
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	pn := uint64(0)
	for b.Loop() {
		i := pn % span
		switch {
		case i < k && i%50 == 17: // lost
		case i < k:
			d.Source(pn, ps[i])
		default:
			ParseFrame(frames[i-k], &r)
			r.BlockID = pn - i
			d.Repair(&r, pn, now)
			for {
				if _, _, ok := d.Next(); !ok {
					break
				}
			}
			if i == span-1 {
				d.Expire(now)
			}
		}
		pn++
	}
	if d.Stats().Recovered == 0 && b.N > int(span) {
		b.Fatal("nothing rebuilt")
	}
}

func benchGCM(b *testing.B, open bool) {
	block, _ := aes.NewCipher(make([]byte, 16))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	pt := make([]byte, benchPayload)
	ct := aead.Seal(nil, nonce, pt, nil)
	buf := make([]byte, 0, len(ct))
	b.SetBytes(benchPayload)
	b.ReportAllocs()
	for b.Loop() {
		if open {
			if _, err := aead.Open(buf[:0], nonce, ct, nil); err != nil {
				b.Fatal(err)
			}
		} else {
			aead.Seal(buf[:0], nonce, pt, nil)
		}
	}
}

// BenchmarkSealAESGCM and BenchmarkOpenAESGCM are the baselines: what
// packet protection costs per packet of the same payload.
func BenchmarkSealAESGCM(b *testing.B) { benchGCM(b, false) }
func BenchmarkOpenAESGCM(b *testing.B) { benchGCM(b, true) }
