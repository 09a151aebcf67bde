package bench

import (
	"runtime"
	"slices"
	"time"
)

// pairs runs the two phases of a comparison (0: the baseline, 1: with the
// feature measured) one after the other, each on fresh sockets on the next
// port. Unpaced, the throughput of one phase moves with the cores the
// kernel gives sender and receiver and with other jobs, so the comparisons
// run several pairs, alternating which phase goes first, and report the
// median of the pairs' ratios. Every phase starts from the same process
// state: a first, unmeasured pair warms up what the first phase would pay
// for alone (page faults of the buffers, the socket buffers' growth, the
// scheduler's placement), and a garbage collection precedes each phase, so
// that no phase collects the previous one's garbage.
type pairs struct {
	port uint16
	// phase runs phase which (0 or 1) at rate (0: unpaced) on port.
	phase func(o Options, port uint16, which int, rate uint64) (TransferRun, error)
}

// pair runs both phases at rate, phase 1 first if oneFirst.
func (p *pairs) pair(o Options, rate uint64, oneFirst bool) (runs [2]TransferRun, err error) {
	for _, which := range []int{b2i(oneFirst), 1 - b2i(oneFirst)} {
		runtime.GC()
		run, err := p.phase(o, p.port, which, rate)
		if err != nil {
			return runs, err
		}
		runs[which] = run
		p.port++
	}
	return runs, nil
}

// warmUp runs an unmeasured unpaced pair of at most a second each.
func (p *pairs) warmUp(o Options) error {
	o.Duration = min(o.Duration, time.Second)
	_, err := p.pair(o, 0, false)
	return err
}

// alternate runs rounds unpaced pairs, alternating which phase goes first.
func (p *pairs) alternate(o Options, rounds int) ([][2]TransferRun, error) {
	var out [][2]TransferRun
	for i := range rounds {
		runs, err := p.pair(o, 0, i%2 == 1)
		if err != nil {
			return out, err
		}
		out = append(out, runs)
	}
	return out, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortedRatios returns f of each pair of rounds, sorted.
func sortedRatios(rounds [][2]TransferRun, f func([2]TransferRun) float64) []float64 {
	rs := make([]float64, len(rounds))
	for i, runs := range rounds {
		rs[i] = f(runs)
	}
	slices.Sort(rs)
	return rs
}

// medianRatio is the median of f over the pairs of rounds.
func medianRatio(rounds [][2]TransferRun, f func([2]TransferRun) float64) float64 {
	rs := sortedRatios(rounds, f)
	if n := len(rs); n%2 == 0 {
		return (rs[n/2-1] + rs[n/2]) / 2
	}
	return rs[len(rs)/2]
}
