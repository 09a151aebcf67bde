package bench

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"

	"github.com/h3m-project/h3m/mquic/fec"
)

// The repair simulation takes the receivers' repair past what one machine
// can host: the session's packets, its FEC blocks as the sender forms them
// (fec.RepairCount per block of fec.DefaultMaxSourceCount packets), and for
// each of up to a million receivers the packets it loses, whether FEC
// rebuilds its blocks (the decoder's rule: a block is rebuilt when it lost
// no more packets than it has repair packets, which TestSimMatchesDecoder
// checks against the real decoder), and what it then asks the origin for
// (the client's repair: the lost byte ranges of each resource, adjacent
// ones merged, up to 64 per request; the whole resource when its
// PUSH_PROMISE or HEADERS packet was lost). No sockets, no bytes moved:
// counts.
//
// Two policies for what FEC could not rebuild:
//   - unicast: every receiver repairs over unicast, as h3m does today;
//   - multicast (a model of issue 14 §3, not in the origin yet): a receiver
//     that cannot rebuild a block asks for the repair symbols it lacks
//     after a random back-off (truncated exponential, as NORM's NACKs: the
//     first timers are rare, and the repair they bring cancels the
//     others'); the origin multicasts, once, as many more repair packets of
//     the block as the largest lack it heard within AggregateDelay of the
//     first request (plus the FEC overhead again, for their own loss);
//     receivers still short ask again, up to SimRounds rounds, then repair
//     over unicast.

// SimOptions configure the simulation.
type SimOptions struct {
	Receivers []int     // receiver counts, e.g. 10 000 and 1 000 000
	Loss      []SimLoss // loss cases
	FEC       []float64 // FEC overheads (0: none)
	// Size and Files describe the content, as the peer bench makes it.
	Size  int64
	Files int
	// Sample is how many receivers are followed packet by packet for the
	// unicast policy (their mean cost is the per-receiver cost; with
	// independent loss, receivers are alike). 0 means DefaultSimSample.
	Sample int
	Seed   uint64
	Out    io.Writer
}

// SimLoss is a loss case: Percent of the packets lost, independently at
// each receiver, or upstream of all of them (Correlated: every receiver
// loses the same packets).
type SimLoss struct {
	Percent    float64
	Correlated bool
}

func (l SimLoss) String() string {
	kind := "independent"
	if l.Correlated {
		kind = "correlated"
	}
	return fmt.Sprintf("%g %% %s", l.Percent, kind)
}

// Model constants (spec/unicast.md; bytes of HTTP/3 frames, not counting
// QUIC and UDP headers).
const (
	DefaultSimSample = 20_000
	simBody          = 1130 // body bytes per full packet (1150-byte payload less STREAM and DATA frame headers)
	simHeadPackets   = 2    // a resource's PUSH_PROMISE packet and its push stream's HEADERS packet
	simRequestBytes  = 250  // a range request and its response's header section
	simRangeBytes    = 80   // a part header of a multipart/byteranges response
	simMaxRanges     = 64   // the client's MaxRanges
	simRepairPacket  = 1200 // a repair packet on the wire
	SimRounds        = 6
	// Timing of the multicast policy: back-off over BackoffWindow, the
	// origin answers AggregateDelay after the first request, which reaches
	// it and whose answer reaches the receivers RTT after it is sent.
	simBackoffWindow  = 0.5  // s
	simRTT            = 0.02 // s
	simAggregateDelay = 0.01 // s
)

// SimRow is one case's outcome. Bytes are per content byte.
type SimRow struct {
	Receivers int
	Loss      SimLoss
	FEC       float64
	// Proactive is the FEC repair packets sent with the content.
	Proactive float64
	// Unicast policy: what the origin sends all receivers over unicast,
	// what one receiver costs on average, requests per receiver, and the
	// share of receivers that fetched some resource whole.
	Unicast, UnicastPerReceiver, UnicastRequests, WholeFetchShare float64
	// Multicast policy: repair packets multicast after requests, what is
	// left over unicast, requests per receiver (repair requests and
	// unicast requests).
	MulticastRepair, MulticastUnicast, MulticastRequests float64
	// BlocksUnrecoverable is the share of (receiver, block) pairs FEC
	// alone could not rebuild.
	BlocksUnrecoverable float64
}

// Total is everything the origin sends for repair with the multicast
// policy: proactive FEC, multicast repair and unicast.
func (r SimRow) Total() float64 { return r.Proactive + r.MulticastRepair + r.MulticastUnicast }

// UnicastTotal is the same with the unicast policy.
func (r SimRow) UnicastTotal() float64 { return r.Proactive + r.Unicast }

// simContent is the session as the simulation sees it.
type simContent struct {
	bytes  int64
	starts []int   // first packet of each resource; len = resources + 1
	sizes  []int64 // body bytes of each resource
	blocks []simBlock
}

type simBlock struct{ first, k, m int }

func newSimContent(size int64, files int, overhead float64) *simContent {
	c := &simContent{bytes: size}
	var weights int64
	for i := range files {
		weights += 1 << (i % 8)
	}
	unit, left, pkt := size/weights, size, 0
	for i := range files {
		s := unit << (i % 8)
		if i == files-1 {
			s = left
		}
		left -= s
		c.starts = append(c.starts, pkt)
		c.sizes = append(c.sizes, s)
		pkt += simHeadPackets + int((s+simBody-1)/simBody)
	}
	c.starts = append(c.starts, pkt)
	for first := 0; first < pkt; first += fec.DefaultMaxSourceCount {
		k := min(fec.DefaultMaxSourceCount, pkt-first)
		m := 0
		if overhead > 0 {
			m = fec.RepairCount(overhead, k)
		}
		c.blocks = append(c.blocks, simBlock{first, k, m})
	}
	return c
}

// packets is the number of source packets.
func (c *simContent) packets() int { return c.starts[len(c.starts)-1] }

// binomial samples Binomial(n, p) by inversion of a cached CDF.
type binomial struct{ cdf []float64 }

func newBinomial(n int, p float64) binomial {
	var b binomial
	acc := 0.0
	for x := 0; x <= n; x++ {
		acc += math.Exp(lgammaComb(n, x) + float64(x)*math.Log(p) + float64(n-x)*math.Log1p(-p))
		b.cdf = append(b.cdf, acc)
		if acc > 1-1e-15 {
			break
		}
	}
	return b
}

func lgammaComb(n, k int) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

func (b binomial) draw(rng *rand.Rand) int {
	u := rng.Float64()
	return sort.SearchFloat64s(b.cdf, u)
}

// lossModel draws the packets lost in one block.
type lossModel struct {
	p     float64
	dists map[int]binomial // by block length
}

func newLossModel(p float64, c *simContent) *lossModel {
	l := &lossModel{p: p, dists: map[int]binomial{}}
	for _, b := range c.blocks {
		if _, ok := l.dists[b.k+b.m]; !ok && p > 0 {
			l.dists[b.k+b.m] = newBinomial(b.k+b.m, p)
		}
	}
	return l
}

func (l *lossModel) count(b simBlock, rng *rand.Rand) int {
	if l.p <= 0 {
		return 0
	}
	return l.dists[b.k+b.m].draw(rng)
}

// lostPositions draws which x of block b's k+m packets are lost (positions
// in the block, sources first, sorted), uniformly (Floyd's sampling).
func lostPositions(dst []int, b simBlock, x int, rng *rand.Rand) []int {
	n := b.k + b.m
	start := len(dst)
	for j := n - x; j < n; j++ {
		t := rng.IntN(j + 1)
		if slices.Contains(dst[start:], t) {
			t = j
		}
		dst = append(dst, t)
	}
	slices.Sort(dst[start:])
	return dst
}

// lostSources appends to dst the source packets (global indices) of block b
// lost when x of its k+m packets are lost.
func lostSources(dst []int, b simBlock, x int, rng *rand.Rand) []int {
	start := len(dst)
	dst = lostPositions(dst, b, x, rng)
	out := dst[:start]
	for _, pos := range dst[start:] {
		if pos < b.k {
			out = append(out, b.first+pos)
		}
	}
	return out
}

// receiverLosses draws one receiver's source packets that FEC could not
// rebuild (sorted), and how many of its blocks were unrecoverable.
func (c *simContent) receiverLosses(dst []int, l *lossModel, rng *rand.Rand) ([]int, int) {
	bad := 0
	for _, b := range c.blocks {
		if x := l.count(b, rng); x > b.m {
			dst = lostSources(dst, b, x, rng)
			bad++
		}
	}
	return dst, bad
}

// unicastCost is what a receiver that lacks the source packets lost
// (sorted) asks for: bytes, requests, and whether it fetched a resource
// whole.
func (c *simContent) unicastCost(lost []int) (bytes int64, requests int, whole bool) {
	for i := 0; i < len(lost); {
		r := sort.SearchInts(c.starts, lost[i]+1) - 1
		end := c.starts[r+1]
		j := i
		for j < len(lost) && lost[j] < end {
			j++
		}
		pkts := lost[i:j]
		i = j
		if pkts[0] < c.starts[r]+simHeadPackets {
			bytes += c.sizes[r] + simRequestBytes
			requests++
			whole = true
			continue
		}
		ranges := 0
		for x, p := range pkts {
			if x == 0 || p != pkts[x-1]+1 {
				ranges++
			}
			bytes += simBody
		}
		reqs := (ranges + simMaxRanges - 1) / simMaxRanges
		bytes += int64(reqs)*simRequestBytes + int64(ranges)*simRangeBytes
		requests += reqs
	}
	return bytes, requests, whole
}

// Simulate runs every case.
func Simulate(o SimOptions) []SimRow {
	if o.Sample <= 0 {
		o.Sample = DefaultSimSample
	}
	var rows []SimRow
	seed := o.Seed
	for _, n := range o.Receivers {
		for _, loss := range o.Loss {
			for _, overhead := range o.FEC {
				seed++
				rows = append(rows, simulateCase(o, n, loss, overhead, seed))
			}
		}
	}
	return rows
}

func simulateCase(o SimOptions, n int, loss SimLoss, overhead float64, seed uint64) SimRow {
	c := newSimContent(o.Size, o.Files, overhead)
	row := SimRow{Receivers: n, Loss: loss, FEC: overhead}
	content := float64(c.bytes)
	repairs := 0
	for _, b := range c.blocks {
		repairs += b.m
	}
	row.Proactive = float64(repairs*simRepairPacket) / content
	l := newLossModel(loss.Percent/100, c)
	rng := rand.New(rand.NewPCG(seed, 0x5157))

	if loss.Correlated {
		return c.correlatedCase(row, n, l, overhead, rng, seed)
	}
	// Unicast policy: follow Sample receivers packet by packet.
	sample := min(n, o.Sample)
	var bytes, reqs int64
	wholes, badBlocks := 0, 0
	var lost []int
	for range sample {
		var bad int
		lost, bad = c.receiverLosses(lost[:0], l, rng)
		b, r, w := c.unicastCost(lost)
		bytes += b
		reqs += int64(r)
		badBlocks += bad
		if w {
			wholes++
		}
	}
	perReceiver := float64(bytes) / float64(sample)
	row.UnicastPerReceiver = perReceiver / content
	row.Unicast = perReceiver * float64(n) / content
	row.UnicastRequests = float64(reqs) / float64(sample)
	row.WholeFetchShare = float64(wholes) / float64(sample)
	row.BlocksUnrecoverable = float64(badBlocks) / float64(sample*len(c.blocks))

	// Multicast policy: every receiver, block by block.
	row.MulticastRepair, row.MulticastUnicast, row.MulticastRequests = c.multicastPolicy(n, l, overhead, seed, nil)
	return row
}

// SimPatterns is how many loss patterns a correlated case averages over:
// every receiver loses the same packets, so one pattern is one draw.
const SimPatterns = 20

// correlatedCase fills row for loss upstream of every receiver: for each of
// SimPatterns patterns, both policies see the same lost packets.
func (c *simContent) correlatedCase(row SimRow, n int, l *lossModel, overhead float64, rng *rand.Rand, seed uint64) SimRow {
	content := float64(c.bytes)
	xs := make([]int, len(c.blocks))
	var lost []int
	for t := range SimPatterns {
		lost = lost[:0]
		bad := 0
		for i, b := range c.blocks {
			xs[i] = l.count(b, rng)
			if xs[i] > b.m {
				lost = lostSources(lost, b, xs[i], rng)
				bad++
			}
		}
		bytes, reqs, whole := c.unicastCost(lost)
		row.UnicastPerReceiver += float64(bytes) / content / SimPatterns
		row.UnicastRequests += float64(reqs) / SimPatterns
		if whole {
			row.WholeFetchShare += 1.0 / SimPatterns
		}
		row.BlocksUnrecoverable += float64(bad) / float64(len(c.blocks)) / SimPatterns
		mc, uc, rq := c.multicastPolicy(n, l, overhead, seed+uint64(t), xs)
		row.MulticastRepair += mc / SimPatterns
		row.MulticastUnicast += uc / SimPatterns
		row.MulticastRequests += rq / SimPatterns
	}
	row.Unicast = row.UnicastPerReceiver * float64(n)
	return row
}

// multicastPolicy simulates the multicast repair of every block for n
// receivers; it returns the repair packets multicast and the unicast bytes
// left (per content byte), and the requests per receiver. Every receiver's
// loss in every block is drawn (on all cores), giving each block's
// histogram of lacks (packets short of k); the rounds then move expected
// counts through the histogram (the totals are sums, whose expectation
// this is), sampling what is random for the block as a whole: when the
// first back-off timer fires, and the lacks of the requests the origin
// hears in time.
//
// corr, when set, is a correlated loss pattern: the packets lost in each
// block, the same for every receiver.
func (c *simContent) multicastPolicy(n int, l *lossModel, overhead float64, seed uint64, corr []int) (mc, uc, reqs float64) {
	maxLack := 0
	for _, b := range c.blocks {
		maxLack = max(maxLack, b.k+1)
	}
	hist := make([][]float64, len(c.blocks)) // block -> lack -> receivers
	for i := range hist {
		hist[i] = make([]float64, maxLack+1)
	}
	if corr != nil {
		for i, b := range c.blocks {
			if x := corr[i]; x > b.m {
				hist[i][min(x-b.m, maxLack)] = float64(n)
			}
		}
	} else {
		workers := runtime.GOMAXPROCS(0)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range workers {
			count := n / workers
			if w < n%workers {
				count++
			}
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed+uint64(w)*7919, 0xbeef))
				local := make([][]int, len(c.blocks))
				for i := range local {
					local[i] = make([]int, maxLack+1)
				}
				for range count {
					for i, b := range c.blocks {
						if x := l.count(b, rng); x > b.m {
							local[i][min(x-b.m, maxLack)]++
						}
					}
				}
				mu.Lock()
				for i := range hist {
					for d, v := range local[i] {
						hist[i][d] += float64(v)
					}
				}
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	rng := rand.New(rand.NewPCG(seed, 0xfeed))
	lambda := math.Log(float64(max(n, 2))) + 1
	// F is the back-off CDF: truncated exponential over the window.
	F := func(t float64) float64 { return math.Expm1(lambda*t/simBackoffWindow) / math.Expm1(lambda) }
	Finv := func(u float64) float64 { return simBackoffWindow * math.Log1p(u*math.Expm1(lambda)) / lambda }
	p := l.p
	var mcPackets, requests, ucBytes float64
	next := make([]float64, maxLack+1)
	for i, b := range c.blocks {
		h := hist[i]
		// The unicast left at the end fetches a receiver's lost source
		// packets: about (lack + m)·k/(k+m) of them.
		var waiting, lostSrc float64
		for d, v := range h {
			waiting += v
			lostSrc += v * float64(d+b.m) * float64(b.k) / float64(b.k+b.m)
		}
		if waiting == 0 {
			continue
		}
		lostSrc /= waiting
		for round := 0; round < SimRounds && waiting > 1e-9; round++ {
			// The first of the waiting timers, and the share of the others
			// that fire before its repair arrives (they ask too) or early
			// enough for the origin to hear them before it answers.
			first := Finv(1 - math.Pow(1-rng.Float64(), 1/math.Max(waiting, 1)))
			share := func(t float64) float64 {
				return math.Min(1, math.Max(0, (F(math.Min(t, simBackoffWindow))-F(first))/(1-F(first)+1e-300)))
			}
			requests += math.Min(waiting, 1+(waiting-1)*share(first+simAggregateDelay+simRTT))
			heard := int(math.Round(1 + math.Max(0, waiting-1)*share(first+simAggregateDelay+simRTT/2)))
			largest := 0
			for range min(heard, 10_000) {
				largest = max(largest, sampleLack(h, waiting, rng))
			}
			// As many as the largest lack heard, and a margin for the loss of
			// the repair packets themselves and for the lacks not heard: three
			// standard deviations of a loss count of that size.
			extra := largest + fec.RepairCount(max(overhead, 0.05), largest) + int(math.Ceil(3*math.Sqrt(float64(largest))))
			mcPackets += float64(extra)
			clear(next)
			if corr != nil {
				got := extra - binomialDraw(extra, p, rng)
				for d, v := range h {
					if got < d {
						next[d-got] += v
					}
				}
			} else {
				pmf := binomialPMF(extra, 1-p)
				for d, v := range h {
					for g := 0; g < d && g < len(pmf); g++ {
						next[d-g] += v * pmf[g]
					}
				}
			}
			copy(h, next)
			waiting = 0
			for _, v := range h {
				waiting += v
			}
		}
		// What is still missing goes over unicast.
		ucBytes += waiting * (lostSrc*simBody + simRequestBytes + simRangeBytes)
		requests += waiting
	}
	content := float64(c.bytes)
	return mcPackets * simRepairPacket / content, ucBytes / content, requests / float64(n)
}

// sampleLack draws a lack from a histogram of total weight total.
func sampleLack(h []float64, total float64, rng *rand.Rand) int {
	u := rng.Float64() * total
	for d, v := range h {
		if u < v {
			return d
		}
		u -= v
	}
	return len(h) - 1
}

// binomialPMF returns P(X = x) for X ~ Binomial(n, p), x = 0..n.
func binomialPMF(n int, p float64) []float64 {
	pmf := make([]float64, n+1)
	for x := range pmf {
		switch {
		case p >= 1:
			if x == n {
				pmf[x] = 1
			}
		case p <= 0:
			if x == 0 {
				pmf[x] = 1
			}
		default:
			pmf[x] = math.Exp(lgammaComb(n, x) + float64(x)*math.Log(p) + float64(n-x)*math.Log1p(-p))
		}
	}
	return pmf
}

// binomialDraw draws Binomial(n, p) by counting (n is small here).
func binomialDraw(n int, p float64, rng *rand.Rand) int {
	x := 0
	for range n {
		if rng.Float64() < p {
			x++
		}
	}
	return x
}

// ReportSim prints the simulation's table.
func ReportSim(w io.Writer, o SimOptions, rows []SimRow) {
	c := newSimContent(o.Size, o.Files, 0)
	fmt.Fprintf(w, "repair simulation: %.1f MB in %d resources, %d packets of %d body bytes, FEC blocks of up to %d packets; unicast policy followed over %d receivers per case (independent loss), correlated loss averaged over %d patterns\n",
		float64(o.Size)/1e6, o.Files, c.packets(), simBody, fec.DefaultMaxSourceCount, o.Sample, SimPatterns)
	fmt.Fprintln(w, "bytes are per content byte; unicast per receiver is what one receiver costs the origin; requests are per receiver")
	fmt.Fprintln(w, "| receivers | loss | FEC | proactive FEC | blocks FEC could not rebuild | unicast policy: all receivers | per receiver | requests | whole fetches | total | multicast policy (model): multicast repair | unicast | requests | total |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %d | %s | %g %% | %.3f | %.2e | %.3g | %.5f | %.3f | %.1f %% | %.3g | %.4f | %.3g | %.4f | %.3f |\n",
			r.Receivers, r.Loss, r.FEC*100, r.Proactive, r.BlocksUnrecoverable, r.Unicast, r.UnicastPerReceiver, r.UnicastRequests,
			100*r.WholeFetchShare, r.UnicastTotal(), r.MulticastRepair, r.MulticastUnicast, r.MulticastRequests, r.Total())
	}
}
