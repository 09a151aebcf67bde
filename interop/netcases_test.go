package interop

import (
	"testing"
)

// TestNetworkCasesH3M runs the network cases (snooping switch, bottleneck
// link, circuit breaker) for h3m × h3m: all must succeed.
func TestNetworkCasesH3M(t *testing.T) {
	needNetns(t)
	h3m := h3mBinary(t)
	needCLI(t, h3m, "serve", "receive")
	r := &Runner{Registry: DefaultRegistry(), Senders: []string{"h3m"}, Receivers: []string{"h3m"},
		Tests: NetworkCases(), Mode: ModeNetns, H3M: h3m}
	requireSucceeded(t, r, runMatrix(t, r))
}

// requireSucceeded fails the test for every h3m × h3m case that did not
// succeed, and logs the details of those that did.
func requireSucceeded(t *testing.T, r *Runner, res *Results) {
	t.Helper()
	for _, c := range res.Cell("h3m", "h3m") {
		if c.Result != Succeeded {
			t.Errorf("%s (network %q): %s: %s\n%s", c.Name, r.Network, c.Result, c.Reason, failureDetails(r, "h3m", "h3m", c.Name))
		} else {
			t.Logf("%s: %s", c.Name, c.Details)
		}
	}
}

// TestSnoopingNetwork runs a case of the matrix on the snooping switch
// through Runner.Network (what `h3m interop --network snooping` sets): the
// runner waits for the bridge's membership of the receiver before it
// releases anything. (The whole matrix passes there too; it is not run
// here for time.)
func TestSnoopingNetwork(t *testing.T) {
	needNetns(t)
	h3m := h3mBinary(t)
	needCLI(t, h3m, "serve", "receive")
	var tests []*TestCase
	for _, tc := range TestCases() {
		switch tc.Name {
		case "announce":
			tests = append(tests, tc)
		}
	}
	r := &Runner{Registry: DefaultRegistry(), Senders: []string{"h3m"}, Receivers: []string{"h3m"},
		Tests: tests, Mode: ModeNetns, H3M: h3m, Network: NetworkSnooping}
	requireSucceeded(t, r, runMatrix(t, r))
}
