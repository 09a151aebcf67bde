package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/h3m-project/h3m/interop"
)

// h3m's own endpoint for the interop runner ("h3m interop endpoint"), the
// counterpart of a QUIC interop image's run_endpoint.sh: the runner
// (package interop) knows it only through the registry's command template
// and the endpoint contract; this file turns the runner's variables into an
// h3m command line.

// exitUnsupported is the endpoint exit code for "test case not supported".
const exitUnsupported = 127

// errUnsupportedCase is returned by planEndpoint for a test case h3m's
// endpoint does not run.
var errUnsupportedCase = errors.New("interop endpoint: test case not supported")

// endpointPlan is what h3m's own endpoint runs for one role and test case:
// the h3m command line and, for the broken entry, a corrupting relay.
type endpointPlan struct {
	// Args are the h3m arguments (after the program name).
	Args []string
	// Relay, when set, runs beside the sender: the sender's multicast goes
	// to the host's loopback and the relay forwards it to the real
	// interface with a bit flipped in every packet.
	Relay *interop.RelayConfig
}

// h3mSupports reports the test cases h3m's endpoint knows. h3m-07 (the nghq
// profile) has no packet protection, so it cannot drop tampered packets:
// integrity is unsupported there.
func h3mSupports(profile, testcase string) bool {
	switch testcase {
	case "announce", "push", "push-many", "signature", "loss", "blackhole", "late-join",
		"close", "rollover", "ipv6", "multi-receiver", "dash", "breaker":
		return true
	case "integrity":
		return profile != "h3m-07"
	}
	return false
}

// planEndpoint is h3m's endpoint logic: it reads the runner's variables (ROLE,
// TESTCASE, WWW, DOWNLOADS, CERTS, GROUP, PORT, SOURCE, IFACE, SERVER,
// URL, RATE, ROLLOVER, GATEWAY) and the entry's H3M_PROFILE, H3M_SUITE and
// H3M_BROKEN, and returns the h3m command line to run.
func planEndpoint(getenv func(string) string) (*endpointPlan, error) {
	role, tc := getenv("ROLE"), getenv("TESTCASE")
	profile := getenv("H3M_PROFILE")
	if profile == "" {
		profile = "h3m-11"
	}
	broken := getenv("H3M_BROKEN")
	if !h3mSupports(profile, tc) {
		return nil, fmt.Errorf("%w: %q", errUnsupportedCase, tc)
	}
	need := func(names ...string) error {
		var missing []string
		for _, n := range names {
			if getenv(n) == "" {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("interop endpoint: missing variables %s", strings.Join(missing, ", "))
		}
		return nil
	}
	certs := getenv("CERTS")
	switch role {
	case "sender":
		if err := need("WWW", "CERTS", "GROUP", "PORT", "SOURCE", "IFACE", "SERVER"); err != nil {
			return nil, err
		}
		iface := getenv("IFACE")
		plan := &endpointPlan{}
		switch broken {
		case "":
		case "flip":
			if iface == "lo" {
				// The relay needs a second interface to forward to.
				return nil, fmt.Errorf("%w: the broken entry needs network namespaces", errUnsupportedCase)
			}
			group, err := netip.ParseAddr(getenv("GROUP"))
			if err != nil {
				return nil, fmt.Errorf("interop endpoint: GROUP: %w", err)
			}
			src, err := netip.ParseAddr(getenv("SOURCE"))
			if err != nil {
				return nil, fmt.Errorf("interop endpoint: SOURCE: %w", err)
			}
			var port uint16
			if _, err := fmt.Sscan(getenv("PORT"), &port); err != nil {
				return nil, fmt.Errorf("interop endpoint: PORT: %w", err)
			}
			plan.Relay = &interop.RelayConfig{Group: netip.AddrPortFrom(group, port), Source: src,
				InInterface: "lo", OutInterface: iface, Flip: true}
			iface = "lo"
		default:
			return nil, fmt.Errorf("interop endpoint: H3M_BROKEN %q: want flip", broken)
		}
		suite := getenv("H3M_SUITE")
		if suite == "" {
			suite = "1301"
		}
		a := []string{"serve", "--log-format", "json",
			"--dir", getenv("WWW"), "--watch",
			"--group", getenv("GROUP"), "--port", getenv("PORT"), "--source", getenv("SOURCE"),
			"--interface", iface, "--ttl", "1",
			"--listen", getenv("SERVER"),
			"--cert", filepath.Join(certs, "cert.pem"), "--key", filepath.Join(certs, "priv.key"),
			"--profile", profile, "--suite", suite,
			// After SIGTERM ends the session, the unicast server stays up
			// this long for the receivers' last repairs and to confirm the end.
			"--linger", "5s"}
		if r := getenv("RATE"); r != "" {
			a = append(a, "--rate", r)
		}
		if tc == "signature" {
			key := "sign.key"
			if profile == "h3m-07" {
				key = "sign-rsa.key" // nghq signs cavage rsa-sha256
			}
			a = append(a, "--sign-key", filepath.Join(certs, key))
		}
		if tc == "rollover" {
			d := getenv("ROLLOVER")
			if d == "" {
				d = "2s"
			}
			a = append(a, "--rollover", d)
		}
		plan.Args = a
		return plan, nil
	case "receiver":
		if broken != "" {
			return nil, fmt.Errorf("%w: the broken entry has no receiver", errUnsupportedCase)
		}
		if err := need("URL", "CERTS", "IFACE"); err != nil {
			return nil, err
		}
		if tc == "dash" {
			if err := need("GATEWAY"); err != nil {
				return nil, err
			}
			return &endpointPlan{Args: []string{"gateway", "--log-format", "json",
				"--url", getenv("URL"), "--listen", getenv("GATEWAY"),
				"--ca", filepath.Join(certs, "ca.pem"), "--interface", getenv("IFACE")}}, nil
		}
		if err := need("DOWNLOADS"); err != nil {
			return nil, err
		}
		a := []string{"receive", "--log-format", "json",
			"--url", getenv("URL"), "--out", getenv("DOWNLOADS"),
			"--ca", filepath.Join(certs, "ca.pem"), "--interface", getenv("IFACE")}
		if tc == "blackhole" {
			a = append(a, "--fallback-after", "500ms")
		}
		if tc == "signature" {
			a = append(a, "--require-signature")
		}
		if tc == "breaker" {
			// Trip soon, and come back soon, for a case that lasts seconds.
			a = append(a, "--breaker-sustain", "1s", "--breaker-backoff", "2s")
		}
		return &endpointPlan{Args: a}, nil
	}
	return nil, fmt.Errorf("interop endpoint: ROLE %q: want sender or receiver", role)
}

// runEndpoint runs h3m's endpoint for the environment and returns the
// process exit code: 127 for an unsupported test case, otherwise h3m's
// own. A cancelled ctx (SIGTERM from the runner) is passed on to h3m as
// SIGTERM, so that a sender ends its session cleanly.
func runEndpoint(ctx context.Context, h3m string, getenv func(string) string, stdout, stderr io.Writer) int {
	plan, err := planEndpoint(getenv)
	if errors.Is(err, errUnsupportedCase) {
		fmt.Fprintf(stderr, "h3m interop endpoint: %v\n", err)
		return exitUnsupported
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if missing := missingFlags(h3m, plan.Args); len(missing) > 0 {
		fmt.Fprintf(stderr, "h3m interop endpoint: this h3m %s has no %s: test case %q not supported\n",
			plan.Args[0], strings.Join(missing, ", "), getenv("TESTCASE"))
		return exitUnsupported
	}
	relayErr := make(chan error, 1)
	rctx, stopRelay := context.WithCancel(context.Background())
	defer stopRelay()
	if plan.Relay != nil {
		rl, err := interop.NewRelay(*plan.Relay)
		if err != nil {
			fmt.Fprintf(stderr, "h3m interop endpoint: %v\n", err)
			return 1
		}
		defer rl.Close()
		fmt.Fprintf(stderr, "h3m interop endpoint: relay %s → %s for %v, flipping a bit in every packet\n",
			plan.Relay.InInterface, plan.Relay.OutInterface, plan.Relay.Group)
		go func() { relayErr <- rl.Run(rctx) }()
	}
	// The runner sends SIGQUIT to a hung endpoint's process group so that
	// h3m prints its goroutines; catching it here keeps this process's own
	// stacks out of the log (a caught signal is reset for the child).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGQUIT)
	fmt.Fprintf(stderr, "h3m interop endpoint: %s %s\n", h3m, strings.Join(plan.Args, " "))
	cmd := exec.CommandContext(ctx, h3m, plan.Args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Env = os.Environ()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	select {
	case rerr := <-relayErr:
		if rerr != nil {
			fmt.Fprintf(stderr, "h3m interop endpoint: %v\n", rerr)
		}
	default:
	}
	if cmd.ProcessState == nil {
		fmt.Fprintf(stderr, "h3m interop endpoint: %v\n", err)
		return 1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return cmd.ProcessState.ExitCode()
}

// missingFlags returns the flags of args (a subcommand and its flags)
// that the h3m binary's subcommand does not list in "h3m help <cmd>": a
// build without a feature cannot run the cases that need it.
func missingFlags(h3m string, args []string) []string {
	out, err := exec.Command(h3m, "help", args[0]).Output()
	if err != nil {
		return []string{"subcommand " + args[0]}
	}
	known := map[string]bool{"log-level": true, "log-format": true}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], "-") {
			known[strings.TrimLeft(f[0], "-")] = true
		}
	}
	var missing []string
	for _, a := range args[1:] {
		if strings.HasPrefix(a, "--") && !known[a[2:]] {
			missing = append(missing, a)
		}
	}
	return missing
}
