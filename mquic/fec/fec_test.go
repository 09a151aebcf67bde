package fec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/reedsolomon"
)

// TestFieldMatchesLibrary checks the scalar tables against the library's
// vectorized multiplication, for every pair of elements: both must be the
// same field for the spec's code to be what the library computes.
func TestFieldMatchesLibrary(t *testing.T) {
	var ll reedsolomon.LowLevel
	in := make([]byte, 256)
	for i := range in {
		in[i] = byte(i)
	}
	out := make([]byte, 256)
	for a := range 256 {
		ll.GalMulSlice(byte(a), in, out)
		for b := range 256 {
			if got := gfMul(byte(a), byte(b)); got != out[b] {
				t.Fatalf("%d·%d = %d here, %d in the library", a, b, got, out[b])
			}
		}
		if a != 0 {
			if gfMul(byte(a), gfInv(byte(a))) != 1 || gfInv(byte(a)) != reedsolomon.Inv(byte(a)) {
				t.Fatalf("inverse of %d wrong", a)
			}
		}
	}
	// x^8 = x^4+x^3+x^2+1: the polynomial 0x11d.
	if gfMul(0x80, 2) != 0x1d {
		t.Fatalf("α^8 = %#x, want 0x1d", gfMul(0x80, 2))
	}
}

// reference computes a block's repair symbols straight from the spec:
// symbol i is Length (16) ‖ payload ‖ zeros to s bytes, repair j is
// Σ_i C(j,i)·X_i byte by byte with C(j,i) = 1/((255−j) ⊕ i).
func reference(payloads [][]byte, m, s int) [][]byte {
	out := make([][]byte, m)
	for j := range out {
		out[j] = make([]byte, s)
		for i, p := range payloads {
			x := make([]byte, s)
			x[0], x[1] = byte(len(p)>>8), byte(len(p))
			copy(x[2:], p)
			c := gfInv(byte(255-j) ^ byte(i))
			for b := range x {
				out[j][b] ^= gfMul(c, x[b])
			}
		}
	}
	return out
}

func randPayloads(rng *rand.Rand, k, maxLen int) [][]byte {
	ps := make([][]byte, k)
	for i := range ps {
		ps[i] = make([]byte, 1+rng.IntN(maxLen))
		for b := range ps[i] {
			ps[i][b] = byte(rng.Uint32())
		}
	}
	return ps
}

// encodeBlock runs payloads through an Encoder as packets first, first+1,
// ... and returns the REPAIR frames parsed.
func encodeBlock(t testing.TB, e *Encoder, first uint64, payloads [][]byte) []Repair {
	t.Helper()
	now := time.Unix(0, 0)
	for i, p := range payloads {
		full := e.Add(first+uint64(i), p, 0, true, now)
		if full != (i == e.Params().MaxSourceCount-1) {
			t.Fatalf("Add %d: full = %v", i, full)
		}
	}
	m := e.Close()
	var rs []Repair
	for range m {
		b := e.AppendNext(nil)
		var r Repair
		n, err := ParseFrame(b, &r)
		if err != nil || n != len(b) {
			t.Fatalf("own frame: %v (%d of %d bytes)", err, n, len(b))
		}
		rs = append(rs, r)
	}
	if e.Pending() != 0 {
		t.Fatal("repairs still pending")
	}
	return rs
}

// TestEncoderMatchesReference checks the encoder against the spec's formula
// for blocks of every shape, closed full and early.
func TestEncoderMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		k, maxK  int
		overhead float64
	}{{1, 1, 0.05}, {3, 10, 0.5}, {10, 10, 0.05}, {200, 200, 0.05}, {50, 200, 0.05}, {128, 128, 1}, {255, 255, 0.01}} {
		p, err := NewParams(c.overhead, c.maxK, 0)
		if err != nil {
			t.Fatal(err)
		}
		e, err := NewEncoder(p, c.overhead, 1200)
		if err != nil {
			t.Fatal(err)
		}
		ps := randPayloads(rng, c.k, 1200)
		rs := encodeBlock(t, e, 1000, ps)
		maxLen := 0
		for _, p := range ps {
			maxLen = max(maxLen, len(p))
		}
		want := reference(ps, min(RepairCount(c.overhead, c.k), p.MaxRepairCount), symbolLen(maxLen, 1202))
		if len(rs) != len(want) {
			t.Fatalf("k=%d: %d repairs, want %d", c.k, len(rs), len(want))
		}
		for j, r := range rs {
			if r.BlockID != 1000 || r.SourceCount != c.k || r.RepairCount != len(want) || r.Index != j || !bytes.Equal(r.Symbol, want[j]) {
				t.Fatalf("k=%d repair %d differs from the reference", c.k, j)
			}
		}
	}
}

// newDecoder returns a decoder for blocks of p.
func newDecoder(t testing.TB, p Params) *Decoder {
	d, err := NewDecoder(DecoderConfig{Params: p})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// deliver feeds a block to d with the source packets in lost and the
// repair packets in lostRepair left out, sources first, and returns what d
// rebuilt.
func deliver(d *Decoder, first uint64, ps [][]byte, rs []Repair, lost, lostRepair map[int]bool, now time.Time) map[uint64][]byte {
	for i, p := range ps {
		if !lost[i] {
			d.Source(first+uint64(i), p)
		}
	}
	got := map[uint64][]byte{}
	for j := range rs {
		if !lostRepair[j] {
			d.Repair(&rs[j], first+uint64(len(ps)+j), now)
		}
		for {
			pn, pl, ok := d.Next()
			if !ok {
				break
			}
			got[pn] = bytes.Clone(pl)
		}
	}
	return got
}

// TestDecodeErasures: any m losses among a block's k + m packets are
// rebuilt exactly; one more is not, and is counted.
func TestDecodeErasures(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := range 200 {
		k := 1 + rng.IntN(200)
		overhead := []float64{0.05, 0.1, 0.3}[trial%3]
		p, _ := NewParams(overhead, 200, 0)
		e, _ := NewEncoder(p, overhead, 1200)
		d := newDecoder(t, p)
		ps := randPayloads(rng, k, 1200)
		first := uint64(rng.IntN(1 << 30))
		rs := encodeBlock(t, e, first, ps)
		m := len(rs)
		losses := m
		if trial%4 == 3 {
			losses = m + 1
		}
		losses = min(losses, k+m)
		lost, lostRepair := map[int]bool{}, map[int]bool{}
		for _, x := range rng.Perm(k + m)[:losses] {
			if x < k {
				lost[x] = true
			} else {
				lostRepair[x-k] = true
			}
		}
		got := deliver(d, first, ps, rs, lost, lostRepair, time.Unix(0, 0))
		st := d.Stats()
		if losses <= m {
			if len(got) != len(lost) || st.Recovered != uint64(len(lost)) {
				t.Fatalf("trial %d k=%d m=%d: %d of %d lost rebuilt", trial, k, m, len(got), len(lost))
			}
			for i := range lost {
				if !bytes.Equal(got[first+uint64(i)], ps[i]) {
					t.Fatalf("trial %d: packet %d rebuilt wrong", trial, i)
				}
			}
			if len(lost) > 0 && st.BlocksRecovered != 1 {
				t.Fatalf("trial %d: %+v", trial, st)
			}
			continue
		}
		if len(got) != 0 {
			t.Fatalf("trial %d: %d losses of %d+%d, yet %d rebuilt", trial, losses, k, m, len(got))
		}
		// Given up once the reorder delay passes: every source still missing
		// is counted.
		d.Expire(time.Unix(1, 0))
		st = d.Stats()
		if len(lostRepair) == m {
			// Not a single repair packet came: the decoder never heard of
			// the block.
			if st.BlocksUnrecoverable != 0 || st.RepairPackets != 0 {
				t.Fatalf("trial %d: %+v", trial, st)
			}
			continue
		}
		if st.BlocksUnrecoverable != 1 || st.Unrecovered != uint64(len(lost)) {
			t.Fatalf("trial %d: %d sources lost, stats %+v", trial, len(lost), st)
		}
	}
}

// TestDecodeLateSource: repairs first, then the source packets (reordered):
// the block is rebuilt when the last symbol it needs arrives.
func TestDecodeLateSource(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	p, _ := NewParams(0.1, 20, 0)
	e, _ := NewEncoder(p, 0.1, 100)
	ps := randPayloads(rng, 20, 100)
	rs := encodeBlock(t, e, 7, ps)
	d := newDecoder(t, p)
	now := time.Unix(0, 0)
	for j := range rs {
		d.Repair(&rs[j], 27+uint64(j), now)
	}
	for i := 2; i < 20; i++ {
		if !d.Pending(30) {
			t.Fatal("block undecided, yet not pending")
		}
		d.Source(7+uint64(i), ps[i])
	}
	for i := range 2 {
		pn, pl, ok := d.Next()
		if !ok || pn != 7+uint64(i) || !bytes.Equal(pl, ps[i]) {
			t.Fatalf("rebuilt %d: %v %d", i, ok, pn)
		}
	}
	if d.Pending(29) {
		t.Fatal("decided block still pending")
	}
	if !d.Pending(30) {
		t.Fatal("packets past every known block are pending")
	}
}

// TestDecoderSkip: the repair packets of a block are skippable once the
// block is decided, lossless or rebuilt, and not while it may still use
// them; no other packet number is.
func TestDecoderSkip(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	p, _ := NewParams(0.2, 20, 0)
	e, _ := NewEncoder(p, 0.2, 100)
	now := time.Unix(0, 0)
	for _, lose := range []int{0, 2} {
		d := newDecoder(t, p)
		ps := randPayloads(rng, 20, 100)
		rs := encodeBlock(t, e, 50, ps) // packets 50..69, repair packets 70..73
		for i := lose; i < 20; i++ {
			d.Source(50+uint64(i), ps[i])
		}
		if d.Skip(70) {
			t.Fatal("skips before the block is known")
		}
		// The lossless block is decided by its first REPAIR frame, the
		// other once it has as many as it lost.
		need := max(lose, 1)
		for j := range rs {
			pn := 70 + uint64(j)
			if j > 0 && d.Skip(pn) != (j >= need) {
				t.Fatalf("lost %d: repair packet %d skipped %v", lose, j, j < need)
			}
			if j < need {
				d.Repair(&rs[j], pn, now)
			}
		}
		for _, pn := range []uint64{49, 50, 69, 74, 1 << 40} {
			if d.Skip(pn) {
				t.Fatalf("lost %d: packet %d skipped", lose, pn)
			}
		}
		st := d.Stats()
		if want := uint64(len(rs) - need); st.RepairSkipped != want || st.UnusedRepair != 0 || st.Recovered != uint64(lose) {
			t.Fatalf("lost %d: %+v, want %d skipped", lose, st, want)
		}
	}
}

// TestDecoderLend: lent payloads are used in place until Keep, which copies
// those of blocks not decided (here: not known yet) — the block is rebuilt
// right although the lent buffers were overwritten after Keep — and lets go
// of those of decided blocks without a copy.
func TestDecoderLend(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	p, _ := NewParams(0.1, 20, 0)
	e, _ := NewEncoder(p, 0.1, 300)
	now := time.Unix(0, 0)
	d := newDecoder(t, p)
	lend := func(first uint64, ps [][]byte, lost int) [][]byte {
		var bufs [][]byte
		for i, pl := range ps {
			if i != lost {
				b := bytes.Clone(pl)
				bufs = append(bufs, b)
				d.Lend(first+uint64(i), b)
			}
		}
		return bufs
	}
	scribble := func(bufs [][]byte) {
		for _, b := range bufs {
			for i := range b {
				b[i] = 0xee
			}
		}
	}
	// Block 1 (packets 100..119, repair 120..121) loses packet 105; its
	// repair packets come after the Keep.
	ps := randPayloads(rng, 20, 300)
	rs := encodeBlock(t, e, 100, ps)
	bufs := lend(100, ps, 5)
	d.Keep()
	scribble(bufs)
	for j := range rs {
		d.Repair(&rs[j], 120+uint64(j), now)
	}
	pn, pl, ok := d.Next()
	if !ok || pn != 105 || !bytes.Equal(pl, ps[5]) {
		t.Fatalf("rebuilt %v %d: wrong, from payloads overwritten after Keep", ok, pn)
	}
	// Block 2 (packets 122..141) loses nothing; its repair packets come
	// before the Keep: it is decided, and Keep copies none of it.
	ps = randPayloads(rng, 20, 300)
	rs = encodeBlock(t, e, 122, ps)
	lend(122, ps, -1)
	d.Repair(&rs[0], 142, now)
	d.Keep()
	for i := range uint64(20) {
		if d.holds(122 + i) {
			t.Fatalf("packet %d of a decided block kept", 122+i)
		}
	}
	if len(d.lent) != 0 || d.Stats().Recovered != 1 {
		t.Fatalf("%d lent after Keep, %+v", len(d.lent), d.Stats())
	}
}

// TestDecoderRejectsInconsistent: a frame that contradicts its block, or
// overlaps another, is counted and ignored.
func TestDecoderRejectsInconsistent(t *testing.T) {
	p, _ := NewParams(0.1, 20, 0)
	d := newDecoder(t, p)
	now := time.Unix(0, 0)
	sym := make([]byte, 10)
	d.Repair(&Repair{BlockID: 100, SourceCount: 10, RepairCount: 2, Index: 0, Symbol: sym}, 110, now)
	d.Repair(&Repair{BlockID: 100, SourceCount: 11, RepairCount: 2, Index: 1, Symbol: sym}, 111, now)
	d.Repair(&Repair{BlockID: 105, SourceCount: 10, RepairCount: 2, Index: 1, Symbol: sym}, 115, now)
	d.Repair(&Repair{BlockID: 100, SourceCount: 10, RepairCount: 2, Index: 1, Symbol: sym[:9]}, 111, now)
	if st := d.Stats(); st.BadRepair != 3 || st.RepairPackets != 4 {
		t.Fatalf("%+v", st)
	}
}

// TestDecodeNoAllocs: in steady state (buffers grown), a block with losses
// is rebuilt without allocating.
func TestDecodeNoAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p, _ := NewParams(0.05, 200, 0)
	e, _ := NewEncoder(p, 0.05, 1200)
	d := newDecoder(t, p)
	ps := make([][]byte, 200)
	for i := range ps {
		ps[i] = make([]byte, 1200)
		for b := range ps[i] {
			ps[i][b] = byte(rng.Uint32())
		}
	}
	var frames [][]byte
	first := uint64(0)
	block := func() {
		now := time.Unix(0, 0)
		for i, pl := range ps {
			e.Add(first+uint64(i), pl, 0, true, now)
		}
		e.Close()
		frames = frames[:0]
		for e.Pending() > 0 {
			frames = append(frames, e.AppendNext(nil))
		}
	}
	run := func() {
		for i, pl := range ps {
			if i%50 != 3 {
				d.Source(first+uint64(i), pl)
			}
		}
		var r Repair
		for j, f := range frames {
			if _, err := ParseFrame(f, &r); err != nil {
				t.Fatal(err)
			}
			d.Repair(&r, first+200+uint64(j), time.Unix(0, 0))
		}
		for {
			if _, _, ok := d.Next(); !ok {
				break
			}
		}
		d.Expire(time.Unix(0, 0))
		first += 210
	}
	for range 8 { // grow every buffer of the ring
		block()
		run()
	}
	before := d.Stats().Recovered
	allocs := testing.AllocsPerRun(20, func() {
		block()
		frames := frames // encoding allocates the frames here, not the decoder
		_ = frames
	})
	_ = allocs
	allocs = testing.AllocsPerRun(20, func() {
		run()
		// The same frames again, for the next packet numbers.
		for i := range frames {
			r := Repair{}
			ParseFrame(frames[i], &r)
			r.BlockID = first
			frames[i] = AppendFrame(frames[i][:0], &r)
		}
	})
	if d.Stats().Recovered == before {
		t.Fatal("nothing rebuilt")
	}
	if allocs != 0 {
		t.Fatalf("%.1f allocations per block", allocs)
	}
}

func TestParams(t *testing.T) {
	p, err := NewParams(0.05, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if p.MaxSourceCount != 200 || p.MaxRepairCount != 10 || p.BlockTime != 50*time.Millisecond {
		t.Fatalf("%+v", p)
	}
	v := p.Value()
	if fmt.Sprintf("%x", v) != "02c80a0032" {
		t.Fatalf("value %x", v)
	}
	q, err := ParseParams(v)
	if err != nil || q != p {
		t.Fatalf("%+v %v", q, err)
	}
	for _, bad := range []string{"", "02c80a00", "02c80a003200", "0200010032", "02c8390032", "02c80a0000"} {
		var b []byte
		fmt.Sscanf(bad, "%x", &b)
		if _, err := ParseParams(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := ParseParams([]byte{1, 9}); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("unknown scheme: %v", err)
	}
	for _, o := range []float64{0, -1, 5} {
		if _, err := NewParams(o, 0, 0); err == nil {
			t.Errorf("overhead %v accepted", o)
		}
	}
	if RepairCount(0.05, 3) != 1 || RepairCount(0.05, 200) != 10 || RepairCount(0.05, 201) != 11 || RepairCount(1, 200) != 56 {
		t.Error("RepairCount")
	}
}

func TestFrameErrors(t *testing.T) {
	good := AppendFrame(nil, &Repair{BlockID: 1 << 40, SourceCount: 200, RepairCount: 10, Index: 9, Symbol: []byte{1, 2, 3}})
	var r Repair
	if n, err := ParseFrame(good, &r); err != nil || n != len(good) || r.BlockID != 1<<40 || r.Index != 9 || !bytes.Equal(r.Symbol, []byte{1, 2, 3}) {
		t.Fatalf("%v %+v", err, r)
	}
	if !IsFrame(good) || IsFrame(good[1:]) {
		t.Fatal("IsFrame")
	}
	for i := range len(good) {
		if _, err := ParseFrame(good[:i], &r); err == nil {
			t.Fatalf("truncated to %d parsed", i)
		}
	}
	for name, f := range map[string]Repair{
		"k=0":      {SourceCount: 0, RepairCount: 1, Symbol: []byte{1, 2, 3}},
		"m=0":      {SourceCount: 1, RepairCount: 0, Symbol: []byte{1, 2, 3}},
		"k+m>256":  {SourceCount: 200, RepairCount: 57, Symbol: []byte{1, 2, 3}},
		"j>=m":     {SourceCount: 1, RepairCount: 2, Index: 2, Symbol: []byte{1, 2, 3}},
		"short":    {SourceCount: 1, RepairCount: 2, Symbol: []byte{1, 2}},
		"past max": {BlockID: 1<<62 - 5, SourceCount: 4, RepairCount: 2, Symbol: []byte{1, 2, 3}},
	} {
		if _, err := ParseFrame(AppendFrame(nil, &f), &r); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// readVector reads testdata/vector.txt.
func readVector(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("testdata/vector.txt")
	if err != nil {
		t.Fatal(err)
	}
	v := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if name, val, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			v[name] = val
		}
	}
	return v
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVector checks the encoder and the decoder byte for byte against the
// worked example, computed independently from the spec.
func TestVector(t *testing.T) {
	v := readVector(t)
	id, _ := strconv.ParseUint(v["block_id"], 10, 64)
	ps := [][]byte{unhex(t, v["payload0"]), unhex(t, v["payload1"]), unhex(t, v["payload2"])}
	for j := range 2 {
		for i := range 3 {
			if c := Coefficient(j, i); c != unhex(t, v[fmt.Sprintf("coefficients%d", j)])[i] {
				t.Fatalf("C(%d,%d) = %#x", j, i, c)
			}
		}
	}
	p := Params{Scheme: SchemeReedSolomon8, MaxSourceCount: 3, MaxRepairCount: 2, BlockTime: time.Second}
	e, err := NewEncoder(p, 0.5, 1200)
	if err != nil {
		t.Fatal(err)
	}
	padding := []int{0, 0, 0}
	padding[2], _ = strconv.Atoi(v["padding2"])
	for i, pl := range ps {
		e.Add(id+uint64(i), pl[:len(pl)-padding[i]], padding[i], true, time.Unix(0, 0))
	}
	if m := e.Close(); m != 2 {
		t.Fatalf("%d repairs", m)
	}
	frames := [][]byte{e.AppendNext(nil), e.AppendNext(nil)}
	for j, f := range frames {
		if want := v[fmt.Sprintf("frame%d", j)]; hex.EncodeToString(f) != want {
			t.Fatalf("frame %d:\n got %x\nwant %s", j, f, want)
		}
	}
	// Lose payloads 0 and 2: both frames rebuild them.
	d := newDecoder(t, p)
	d.Source(id+1, ps[1])
	for j, f := range frames {
		var r Repair
		if _, err := ParseFrame(f, &r); err != nil {
			t.Fatal(err)
		}
		d.Repair(&r, id+3+uint64(j), time.Unix(0, 0))
	}
	for _, i := range []int{0, 2} {
		pn, pl, ok := d.Next()
		if !ok || pn != id+uint64(i) || !bytes.Equal(pl, ps[i]) {
			t.Fatalf("rebuilt %v %d %x", ok, pn, pl)
		}
	}
}

// TestPaddedPayloads: payloads padded past the symbol length (as the sender
// pads full packets to the size of repair packets) are rebuilt whole,
// padding included, from symbols that leave the padding out; a payload
// whose tail past the symbol length is not zeros makes its block
// undecodable (BadRepair) rather than rebuild it wrong.
func TestPaddedPayloads(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	p, _ := NewParams(0.2, 10, 0)
	e, _ := NewEncoder(p, 0.2, 300)
	ps := randPayloads(rng, 10, 300)
	padded := make([][]byte, len(ps))
	now := time.Unix(0, 0)
	for i, pl := range ps {
		pad := 40 * (i % 2)
		padded[i] = append(bytes.Clone(pl), make([]byte, pad)...)
		e.Add(100+uint64(i), pl, pad, true, now)
	}
	m := e.Close()
	var rs []Repair
	for range m {
		var r Repair
		if _, err := ParseFrame(e.AppendNext(nil), &r); err != nil {
			t.Fatal(err)
		}
		if len(r.Symbol) > 2+300 {
			t.Fatalf("symbol of %d bytes: the padding is in it", len(r.Symbol))
		}
		rs = append(rs, r)
	}
	lost := map[int]bool{1: true, 4: true}
	d := newDecoder(t, p)
	for i, pl := range padded {
		if !lost[i] {
			d.Source(100+uint64(i), pl) // as received: padding included
		}
	}
	for j := range rs {
		d.Repair(&rs[j], 110+uint64(j), now)
	}
	for _, i := range []int{1, 4} {
		pn, pl, ok := d.Next()
		if !ok || pn != 100+uint64(i) || !bytes.Equal(pl, padded[i]) {
			t.Fatalf("rebuilt %v %d: %x\nwant %x", ok, pn, pl, padded[i])
		}
	}

	// A received payload longer than the symbols with a byte that is not
	// padding past them: the block cannot have been encoded from it.
	d = newDecoder(t, p)
	for i, pl := range padded {
		if !lost[i] {
			if i == 3 {
				pl = append(bytes.Clone(pl), make([]byte, 400)...)
				pl[len(pl)-1] = 1
			}
			d.Source(100+uint64(i), pl)
		}
	}
	for j := range rs {
		d.Repair(&rs[j], 110+uint64(j), now)
	}
	if _, _, ok := d.Next(); ok {
		t.Fatal("rebuilt a block from a payload the symbols cannot hold")
	}
	if st := d.Stats(); st.BadRepair != 1 || st.BlocksUnrecoverable != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestPaddingBound: a block that decodes to a payload more than MaxPadding
// bytes longer than its symbols (a forged length) is refused, not rebuilt
// into a buffer of that size.
func TestPaddingBound(t *testing.T) {
	p, _ := NewParams(0.5, 2, 0)
	e, _ := NewEncoder(p, 0.5, 100)
	now := time.Unix(0, 0)
	ps := [][]byte{bytes.Repeat([]byte{7}, 50), bytes.Repeat([]byte{9}, 50)}
	e.Add(0, ps[0], MaxPadding, true, now)
	e.Add(1, ps[1], 0, true, now)
	e.Close()
	var r Repair
	if _, err := ParseFrame(e.AppendNext(nil), &r); err != nil {
		t.Fatal(err)
	}
	// Packet 0 lost: rebuilt with MaxPadding zeros.
	d := newDecoder(t, p)
	d.Source(1, ps[1])
	d.Repair(&r, 2, now)
	if _, pl, ok := d.Next(); !ok || len(pl) != 50+MaxPadding {
		t.Fatalf("rebuilt %v, %d bytes", ok, len(pl))
	}
	// The repair symbol changed as if packet 0's length were one byte
	// longer (the code is linear: C(0,0) times the change).
	forged := r
	forged.Symbol = bytes.Clone(r.Symbol)
	was, l := 50+MaxPadding, 50+MaxPadding+1
	forged.Symbol[0] ^= gfMul(Coefficient(0, 0), byte(was>>8)^byte(l>>8))
	forged.Symbol[1] ^= gfMul(Coefficient(0, 0), byte(was)^byte(l))
	d = newDecoder(t, p)
	d.Source(1, ps[1])
	d.Repair(&forged, 2, now)
	if _, _, ok := d.Next(); ok {
		t.Fatal("rebuilt a payload longer than the padding allows")
	}
	if st := d.Stats(); st.BadRepair != 1 {
		t.Fatalf("stats %+v", st)
	}
	defer func() {
		if recover() == nil {
			t.Error("Add took more padding than MaxPadding")
		}
	}()
	e.Add(3, ps[0], MaxPadding+1, true, now)
}
