package mquic_test

import (
	"math/rand/v2"
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
)

// TestFECRebuildsPacketsOfMixedSizes: source symbols are reused block
// after block, each holding an earlier packet's payload. Packets of every
// length, short ones after long ones in the same symbols, over hundreds of
// small blocks, with runs at overhead 0 between (packets left out of every
// block), and as many source packets of each block lost as it has repair
// packets: every lost packet is rebuilt and its stream bytes arrive exact.
// A symbol with stale bytes past its payload, or a wrong length field,
// would rebuild other bytes (whatever the sender does to avoid copying
// payloads).
func TestFECRebuildsPacketsOfMixedSizes(t *testing.T) {
	params := fecParams(t, mcasttest.Group(), 0.25, 8) // 2 repair packets per 8
	prot, err := params.Protector()
	if err != nil {
		t.Fatal(err)
	}
	pat := newPattern()
	cc := &captureConn{}
	snd, err := runSender(t, cc, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var streams [3]*mquic.SendStream
	var offs [3]uint64
	for i := range streams {
		if streams[i], err = snd.OpenStream(); err != nil {
			t.Fatal(err)
		}
	}
	chunk := make([]byte, snd.MaxChunk())
	for c := range 3000 {
		switch c % 300 {
		case 150:
			if err := snd.SetRepairOverhead(0); err != nil {
				t.Fatal(err)
			}
		case 170:
			if err := snd.SetRepairOverhead(0.25); err != nil {
				t.Fatal(err)
			}
		}
		i := rng.IntN(len(streams))
		var n int
		switch rng.IntN(3) {
		case 0:
			n = snd.MaxChunk() // a full packet
		case 1:
			n = 1 + rng.IntN(64)
		default:
			n = 1 + rng.IntN(snd.MaxChunk())
		}
		p := chunk[:n]
		pat.fill(p, streams[i].ID(), offs[i])
		if err := streams[i].WriteChunk(p); err != nil {
			t.Fatal(err)
		}
		offs[i] += uint64(n)
		if rng.IntN(2) == 0 {
			// The packet goes out as it is: short ones among long ones.
			if err := snd.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, st := range streams {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := snd.Close(); err != nil {
		t.Fatal(err)
	}
	pkts := cc.Packets()

	// Lose as many source packets of each block as it has repair packets.
	byPN := map[uint64]int{}
	decoded := make([]fecPacket, len(pkts))
	for i, p := range pkts {
		decoded[i] = decodeFECPacket(t, prot, len(params.SessionID), p)
		byPN[decoded[i].pn] = i
	}
	lost := map[int]bool{}
	sizes := map[int]bool{}
	blocks := 0
	for _, fp := range decoded {
		r := fp.repair
		if r == nil || r.Index != 0 {
			continue
		}
		blocks++
		for _, j := range rng.Perm(r.SourceCount)[:min(r.RepairCount, r.SourceCount)] {
			i, ok := byPN[r.BlockID+uint64(j)]
			if !ok {
				t.Fatalf("block %d: packet %d never sent", r.BlockID, r.BlockID+uint64(j))
			}
			lost[i] = true
			sizes[len(pkts[i])] = true
		}
	}
	if st := snd.Stats().FEC; blocks < 200 || len(sizes) < 100 || st.Uncovered < 100 {
		t.Fatalf("%d blocks, %d packet sizes lost, %d packets left out of blocks: too few to tell", blocks, len(sizes), st.Uncovered)
	}

	col := newCollector(pat)
	rcv := newTestReceiver(t, params, col)
	for i, p := range pkts {
		if !lost[i] {
			rcv.HandlePacket(append([]byte(nil), p...), src)
		}
	}
	rcv.Flush()
	for _, err := range col.errs {
		t.Error(err)
	}
	for i, st := range streams {
		l := col.streams[st.ID()]
		if l == nil || !l.finished || !l.got.Contains(0, offs[i]) || l.gaps.Len() != 0 {
			t.Fatalf("stream %d did not arrive whole (%d bytes sent)", st.ID(), offs[i])
		}
	}
	if f := rcv.Stats().FEC; f.Recovered != uint64(len(lost)) || f.BadRepair != 0 || f.Unrecovered != 0 {
		t.Fatalf("FEC %+v: want all %d packets lost rebuilt", f, len(lost))
	}
	t.Logf("%d packets, %d blocks, %d packets of %d sizes lost and rebuilt", len(pkts), blocks, len(lost), len(sizes))
}
