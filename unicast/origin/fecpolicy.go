package origin

import (
	"math"
	"time"
)

// The adaptive FEC policy (spec/transport.md, "The sender's policy"): the
// decisions alone, from samples of a sliding window, with no clock of its
// own, so that tests drive it with made-up windows and times.

// fecPolicy decides the repair overhead of a session's sender from what
// its receivers ask to repair.
type fecPolicy struct {
	k, maxM    int     // the session's Maximum Source and Repair Counts
	framing    float64 // unicast bytes on the wire per byte repaired
	target     float64 // the chance a block is left unrecoverable, at most
	hysteresis float64 // on above cost·(1+h), off below cost·(1−h)
	settle     time.Duration
	hold       time.Duration
	// extra is what repair packets cost besides themselves, per byte
	// pushed: the padding of full packets to their size
	// (mquic.Sender.FECPaddingCost).
	extra float64

	overhead  float64 // in force; 0: no repair packets
	loss      float64 // the per-receiver loss behind it
	receivers int     // the receivers counted since it was set
	changed   time.Time
	quiet     time.Time // since when the residual repair stays well below what loss predicts (zero: it does not)
}

// fecSample is one window: the stream bytes pushed, and the bytes each
// receiver that asked asked to repair (one entry per receiver).
type fecSample struct {
	pushed int64
	asked  []int64
}

// fecDecision is a change of the overhead, with what drove it.
type fecDecision struct {
	overhead, loss float64
	receivers      int
	benefit, cost  float64 // unicast repair saved and repair packets sent, per byte pushed
	reason         string
}

// Defaults of the policy (AutoFECConfig).
const (
	fecFraming    = 1.1
	fecTarget     = 0.01
	fecHysteresis = 0.25
	// fecDecay is what the loss estimate is multiplied by after a hold
	// with no residual repair: the policy tries less overhead, and the
	// residual repair it causes, if the loss is still there, brings the
	// estimate back (fecRaise).
	fecDecay = 0.5
	// fecRaise: a residual repair this many times what the estimate
	// predicts raises the estimate to what explains it.
	fecRaise = 3
	// fecRaiseMin: the estimate a residual repair calls for must exceed
	// the one in force by this factor to raise the overhead (so that what
	// FEC leaves to unicast beyond the binomial model, late requests among
	// them, does not ratchet it up).
	fecRaiseMin = 1.15
	// fecResidualFloor is the residual repair (per receiver, per byte
	// pushed) below which it is noise, not a sign of more loss.
	fecResidualFloor = 0.0005
	// fecMinLoss: an estimate that decays below it turns FEC off (the
	// requests show again whether loss is left).
	fecMinLoss = 0.002
)

// decide looks at the window s at now and returns a change of the
// overhead, if one is due.
func (p *fecPolicy) decide(now time.Time, s fecSample) (fecDecision, bool) {
	if s.pushed <= 0 || (!p.changed.IsZero() && now.Sub(p.changed) < p.settle) {
		return fecDecision{}, false // nothing to judge, or the window still holds what came before the last change
	}
	var sum float64 // Σ receivers' asked fraction
	n := 0
	for _, a := range s.asked {
		if a > 0 {
			sum += min(float64(a)/float64(s.pushed), 1)
			n++
		}
	}
	if p.overhead == 0 {
		// Every loss is asked for: the asked fraction is the loss.
		if n == 0 {
			return fecDecision{}, false
		}
		loss := sum / float64(n)
		d := p.judge(loss, n, sum)
		if d.benefit <= d.cost*(1+p.hysteresis) {
			return fecDecision{}, false
		}
		d.reason = "the receivers' unicast repair costs more than repair packets would"
		return p.apply(now, d), true
	}
	// FEC is on: what is asked is what it could not rebuild.
	p.receivers = max(p.receivers, n)
	m := repairCount(p.overhead, p.k, p.maxM)
	expected := residualLoss(p.loss, p.k, m) * float64(p.receivers)
	switch {
	case sum > fecRaise*expected && sum > fecResidualFloor*float64(p.receivers):
		p.quiet = time.Time{}
		loss := invertResidual(sum/float64(p.receivers), p.k, m)
		if loss < p.loss*fecRaiseMin {
			return fecDecision{}, false
		}
		d := p.judge(loss, p.receivers, loss*float64(p.receivers))
		d.reason = "the receivers' residual repair shows more loss than the repair packets cover"
		if d.overhead <= p.overhead || d.benefit < d.cost {
			// Covered already, or more repair packets than the unicast
			// they would save: the blocks that fail are repaired over
			// unicast.
			p.loss = loss
			return fecDecision{}, false
		}
		return p.apply(now, d), true
	case sum <= expected/4:
		if p.quiet.IsZero() {
			p.quiet = now
		}
		if now.Sub(p.quiet) < p.hold {
			return fecDecision{}, false
		}
		p.quiet = now
		loss := p.loss * fecDecay
		d := p.judge(loss, p.receivers, loss*float64(p.receivers))
		d.reason = "no residual repair for the hold time: less loss than estimated"
		if loss < fecMinLoss || d.benefit < d.cost*(1-p.hysteresis) {
			d.overhead = 0
			d.reason = "no residual repair for the hold time: unicast repair is now the cheaper"
		}
		if d.overhead == p.overhead {
			p.loss = loss
			return fecDecision{}, false
		}
		return p.apply(now, d), true
	default:
		p.quiet = time.Time{}
		return fecDecision{}, false
	}
}

// judge is what loss at n receivers, whose asked fractions sum to sum,
// calls for: the repair packets a block needs to be rebuilt but with
// probability target, and what they cost (with the padding, extra)
// against the unicast they save.
func (p *fecPolicy) judge(loss float64, n int, sum float64) fecDecision {
	m := repairsFor(loss, p.k, p.maxM, p.target)
	return fecDecision{
		overhead: float64(m) / float64(p.k), loss: loss, receivers: n,
		benefit: p.framing * sum, cost: float64(m)/float64(p.k) + p.extra,
	}
}

// apply makes d the policy's state.
func (p *fecPolicy) apply(now time.Time, d fecDecision) fecDecision {
	p.overhead, p.loss, p.changed, p.quiet = d.overhead, d.loss, now, time.Time{}
	p.receivers = d.receivers
	if d.overhead == 0 {
		p.loss, p.receivers = 0, 0
	}
	return d
}

// repairCount is the repair packets of a full block at overhead.
func repairCount(overhead float64, k, maxM int) int {
	return min(int(math.Ceil(overhead*float64(k)-1e-9)), maxM)
}

// repairsFor is the fewest repair packets m (1..maxM) for which a block of
// k + m packets, each lost with probability loss, loses more than m with
// probability at most target; maxM if none does.
func repairsFor(loss float64, k, maxM int, target float64) int {
	for m := 1; m < maxM; m++ {
		if binomialTail(k+m, loss, m) <= target {
			return m
		}
	}
	return maxM
}

// binomialTail is P(X > m) for X ~ Binomial(n, p).
func binomialTail(n int, p float64, m int) float64 {
	var below float64
	for j := 0; j <= m && j <= n; j++ {
		below += binomialPMF(n, p, j)
	}
	return max(0, 1-below)
}

// binomialPMF is P(X = j) for X ~ Binomial(n, p).
func binomialPMF(n int, p float64, j int) float64 {
	switch {
	case p <= 0:
		if j == 0 {
			return 1
		}
		return 0
	case p >= 1:
		if j == n {
			return 1
		}
		return 0
	}
	ln, _ := math.Lgamma(float64(n + 1))
	lj, _ := math.Lgamma(float64(j + 1))
	lnj, _ := math.Lgamma(float64(n - j + 1))
	return math.Exp(ln - lj - lnj + float64(j)*math.Log(p) + float64(n-j)*math.Log1p(-p))
}

// residualLoss is the share of a block's k source packets a receiver
// still asks for over unicast when each of the k + m packets is lost with
// probability loss: every source packet it lost, in the blocks that lose
// more than m (it rebuilds the others whole).
func residualLoss(loss float64, k, m int) float64 {
	n := k + m
	var r float64
	for j := m + 1; j <= n; j++ {
		r += binomialPMF(n, loss, j) * float64(j) / float64(n)
	}
	return r
}

// invertResidual is the loss whose residualLoss at k, m is r (bisection:
// residualLoss grows with the loss).
func invertResidual(r float64, k, m int) float64 {
	lo, hi := 0.0, 0.9
	for range 50 {
		mid := (lo + hi) / 2
		if residualLoss(mid, k, m) < r {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}
