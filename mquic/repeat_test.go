package mquic_test

import (
	"testing"

	"github.com/h3m-project/h3m/internal/mcasttest"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/wire"
)

// A chunk written with WriteChunkRepeated goes again in the next packet:
// with the packet of the first copy lost, the stream still arrives whole,
// and with both copies arriving the receiver takes the bytes once. A
// chunk that ends a stream carries the FIN in its copy too.
func TestWriteChunkRepeated(t *testing.T) {
	params := testParams(t, mcasttest.Group())
	pat := newPattern()
	cc := &captureConn{}
	snd, err := runSender(t, cc, mquic.SenderConfig{Params: params})
	if err != nil {
		t.Fatal(err)
	}
	// Stream a: a repeated head, then a body of several packets.
	a, err := snd.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 300)
	pat.fill(head, a.ID(), 0)
	if err := a.WriteChunkRepeated(head); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 5000)
	pat.fill(body, a.ID(), uint64(len(head)))
	if _, err := a.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	// Stream b: nothing but a repeated chunk and its end, flushed: the
	// copy goes in a packet of its own, with the FIN.
	b, err := snd.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	only := make([]byte, 200)
	pat.fill(only, b.ID(), 0)
	if err := b.WriteChunkRepeated(only); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := snd.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := snd.Stats().RepeatedBytes; got != uint64(len(head)+len(only)) {
		t.Errorf("RepeatedBytes %d, want %d", got, len(head)+len(only))
	}
	snd.Close()
	pkts := cc.Packets()

	// The packets holding each stream's offset 0.
	firstOf := map[uint64]int{}
	copies := map[uint64]int{}
	for i, p := range pkts {
		mcasttest.StreamFrames(t, params, p, func(sf wire.StreamFrame) {
			if sf.Offset == 0 && len(sf.Data) > 0 {
				if _, ok := firstOf[sf.StreamID]; !ok {
					firstOf[sf.StreamID] = i
				}
				copies[sf.StreamID]++
			}
		})
	}
	for _, id := range []uint64{a.ID(), b.ID()} {
		if copies[id] != 2 {
			t.Fatalf("stream %d: offset 0 in %d packets, want 2", id, copies[id])
		}
	}

	for _, tc := range []struct {
		name string
		drop map[int]bool
	}{
		{"both copies arrive", nil},
		{"first copies lost", map[int]bool{firstOf[a.ID()]: true, firstOf[b.ID()]: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			col := newCollector(pat)
			r := newTestReceiver(t, params, col)
			for i, p := range pkts {
				if !tc.drop[i] {
					r.HandlePacket(append([]byte(nil), p...), src)
				}
			}
			r.Flush()
			col.mu.Lock()
			defer col.mu.Unlock()
			for _, e := range col.errs {
				t.Error(e)
			}
			// The packets dropped held other bytes of stream a too: what
			// the copies guarantee is the chunks, and b's end.
			for id, chunk := range map[uint64]int{a.ID(): len(head), b.ID(): len(only)} {
				if l := col.streams[id]; l == nil || !l.got.Contains(0, uint64(chunk)) {
					t.Errorf("stream %d: the repeated chunk [0,%d) did not arrive", id, chunk)
				}
			}
			if l := col.streams[b.ID()]; l == nil || !l.finished || l.final != uint64(len(only)) {
				t.Errorf("stream %d did not finish at %d", b.ID(), len(only))
			}
			if tc.drop == nil {
				if l := col.streams[a.ID()]; l == nil || !l.finished || !l.gaps.Empty() || !l.got.Contains(0, uint64(len(head)+len(body))) {
					t.Errorf("stream %d is not whole", a.ID())
				}
			}
		})
	}
}

// In an asymmetric session, the copies go in packets the manifests list
// like any other: the session ends with every stream whole and as many
// packets held (the last manifests' own) as without copies.
func TestRepeatedChunksAsymmetric(t *testing.T) {
	params, sc := asymParams(t, mcasttest.Group())
	pat := newPattern()
	session := func(repeat bool) mquic.ReceiverStats {
		cc := &captureConn{}
		snd, err := runSender(t, cc, mquic.SenderConfig{Params: params, Manifests: sc})
		if err != nil {
			t.Fatal(err)
		}
		sizes := map[uint64]uint64{}
		for i := range 100 {
			st, err := snd.OpenStream()
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 200+3*i)
			pat.fill(head, st.ID(), 0)
			write := st.WriteChunk
			if repeat {
				write = st.WriteChunkRepeated
			}
			if err := write(head); err != nil {
				t.Fatal(err)
			}
			body := make([]byte, 100*i)
			pat.fill(body, st.ID(), uint64(len(head)))
			if _, err := st.Write(body); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			sizes[st.ID()] = uint64(len(head) + len(body))
		}
		if err := snd.Close(); err != nil {
			t.Fatal(err)
		}
		col := newCollector(pat)
		r := newTestReceiver(t, params, col)
		for _, p := range cc.Packets() {
			r.HandlePacket(append([]byte(nil), p...), src)
		}
		r.Flush()
		st := r.Stats()
		accounted(t, st)
		col.mu.Lock()
		defer col.mu.Unlock()
		for _, e := range col.errs {
			t.Error(e)
		}
		for id, size := range sizes {
			if l := col.streams[id]; l == nil || !l.finished || l.final != size || !l.gaps.Empty() {
				t.Errorf("repeat %v: stream %d is not whole (%d bytes)", repeat, id, size)
			}
		}
		return st
	}
	once, twice := session(false), session(true)
	if twice.Auth.Held != once.Auth.Held || twice.Auth.Expired != 0 || twice.Datagrams-twice.Packets != once.Datagrams-once.Packets {
		t.Errorf("with copies: %d datagrams, %d accepted, %d held, %d expired; without: %d, %d, %d, %d", twice.Datagrams, twice.Packets,
			twice.Auth.Held, twice.Auth.Expired, once.Datagrams, once.Packets, once.Auth.Held, once.Auth.Expired)
	}
	if twice.Datagrams <= once.Datagrams {
		t.Errorf("copies took no packets: %d datagrams, %d without", twice.Datagrams, once.Datagrams)
	}
}
