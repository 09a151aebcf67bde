package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/h3m-project/h3m/interop"
)

func interopCommand() *command {
	return &command{
		name:  "interop",
		usage: "[flags] | endpoint | relay [flags]",
		short: "test implementations against each other in namespace networks",
		long: `interop runs the interop matrix: every sender × receiver of the registry
through every test case, each in its own network of namespaces (one sender,
several receivers, per-receiver loss, blackholes), and prints the results
as a matrix (senders as columns, receivers as rows; ✓ succeeded, ✕ failed,
? unsupported). Logs go to --log-dir/<sender>_<receiver>/<test>/ with each
side's output, qlog folder and packet captures (sim/). Without root it runs
in loopback mode: only the single-host cases.

"h3m interop endpoint" is h3m's own endpoint program (what the registry's
h3m entries run): it reads ROLE, TESTCASE and the other variables and runs
h3m serve, receive or gateway; it exits 127 for unsupported test cases.
"h3m interop relay" forwards a multicast session from one interface to
another, optionally flipping a bit in every packet.

Exit code 1 when any test failed.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			senders := fs.String("s", "", "senders, comma-separated (default: every non-optional entry)")
			receivers := fs.String("c", "", "receivers, comma-separated (default: every non-optional entry)")
			tests := fs.String("t", "tests", "test cases and measurements by name or letter, comma-separated; or tests, network, measurements, all")
			registry := fs.String("registry", "", "registry JSON file (default: the built-in one)")
			logDir := fs.String("l", "logs", "log folder")
			jsonOut := fs.String("j", "", "write the results as JSON to this file")
			markdown := fs.Bool("m", false, "print the matrix as Markdown")
			mode := fs.String("mode", "auto", "network: netns, loopback or auto")
			network := fs.String("network", "flood", "netns mode's bridge: flood (multicast to every host) or snooping (a switch snooping IGMPv3/MLDv2 with its own querier: each group only to the hosts that joined it)")
			list := fs.Bool("list", false, "list implementations and test cases, then exit")
			measureMB := fs.Int("measure-mb", 16, "file size of the measurements in MiB")
			keep := fs.Bool("keep-files", false, "keep www and downloads folders of passing tests")
			forgerFlag := fs.Bool("forger", false, "integrity case: the attacker also holds the session key and forges pushes receivers must refuse")
			return func(ctx context.Context, e *env) error {
				if len(e.args) > 0 {
					switch e.args[0] {
					case "endpoint":
						exe, err := os.Executable()
						if err != nil {
							return err
						}
						// The endpoint's exit code is the contract (127 =
						// unsupported), so it leaves directly.
						os.Exit(runEndpoint(ctx, exe, os.Getenv, e.stdout, e.stderr))
					case "relay":
						return runRelay(ctx, e, e.args[1:])
					}
					return usagef("unexpected argument %q (want endpoint, relay or flags)", e.args[0])
				}
				reg := interop.DefaultRegistry()
				if *registry != "" {
					var err error
					if reg, err = interop.LoadRegistry(*registry); err != nil {
						return err
					}
				}
				cases, err := selectTests(*tests)
				if err != nil {
					return err
				}
				if *list {
					printList(e, reg)
					return nil
				}
				r := &interop.Runner{
					Registry:  reg,
					Senders:   names(*senders, reg.Names(interop.RoleSender, false)),
					Receivers: names(*receivers, reg.Names(interop.RoleReceiver, false)),
					Tests:     cases,
					LogDir:    *logDir,
					Mode:      interop.Mode(*mode),
					Network:   interop.NetworkKind(*network),
					MeasureMB: *measureMB,
					Progress:  e.stderr,
					KeepFiles: *keep,
					Forger:    *forgerFlag,
				}
				switch r.Mode {
				case interop.ModeAuto, interop.ModeNetns, interop.ModeLoopback:
				default:
					return usagef("--mode %q: want netns, loopback or auto", *mode)
				}
				switch r.Network {
				case interop.NetworkFlood, interop.NetworkSnooping:
				default:
					return usagef("--network %q: want flood or snooping", *network)
				}
				res, err := r.Run(ctx)
				if res != nil {
					if *markdown {
						res.WriteMarkdown(e.stdout)
					} else {
						res.WriteText(e.stdout)
					}
					if *jsonOut != "" {
						f, ferr := os.Create(*jsonOut)
						if ferr != nil {
							return ferr
						}
						werr := res.WriteJSON(f)
						if cerr := f.Close(); werr == nil {
							werr = cerr
						}
						if werr != nil {
							return werr
						}
					}
				}
				if err != nil {
					return err
				}
				for _, cell := range res.Results {
					for _, c := range cell {
						if c.Result == interop.Failed {
							return errors.New("some tests failed")
						}
					}
				}
				return nil
			}
		},
	}
}

func names(flagValue string, def []string) []string {
	if flagValue == "" {
		return def
	}
	var out []string
	for _, n := range strings.Split(flagValue, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func selectTests(spec string) ([]*interop.TestCase, error) {
	all := append(append(interop.TestCases(), interop.NetworkCases()...), interop.Measurements()...)
	var out []*interop.TestCase
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		switch item {
		case "":
			continue
		case "tests":
			out = append(out, interop.TestCases()...)
			continue
		case "measurements":
			out = append(out, interop.Measurements()...)
			continue
		case "network":
			out = append(out, interop.NetworkCases()...)
			continue
		case "all":
			out = append(out, all...)
			continue
		}
		found := false
		for _, tc := range all {
			if tc.Name == item || tc.Abbr == item {
				out = append(out, tc)
				found = true
				break
			}
		}
		if !found {
			return nil, usagef("-t: unknown test case %q (see --list)", item)
		}
	}
	if len(out) == 0 {
		return nil, usagef("-t: no test case selected")
	}
	return out, nil
}

func printList(e *env, reg interop.Registry) {
	fmt.Fprintln(e.stdout, "Implementations:")
	for _, n := range reg.Names(interop.RoleSender, true) {
		printImpl(e, reg[n])
	}
	for _, n := range reg.Names(interop.RoleReceiver, true) {
		if !reg[n].CanSend() {
			printImpl(e, reg[n])
		}
	}
	fmt.Fprintln(e.stdout, "\nTest cases:")
	for _, tc := range interop.TestCases() {
		fmt.Fprintf(e.stdout, "  %-2s %-15s %s\n", tc.Abbr, tc.Name, tc.Desc)
	}
	fmt.Fprintln(e.stdout, "\nNetwork cases (-t network):")
	for _, tc := range interop.NetworkCases() {
		fmt.Fprintf(e.stdout, "  %-2s %-15s %s\n", tc.Abbr, tc.Name, tc.Desc)
	}
	fmt.Fprintln(e.stdout, "\nMeasurements:")
	for _, tc := range interop.Measurements() {
		fmt.Fprintf(e.stdout, "  %-2s %-15s %s\n", tc.Abbr, tc.Name, tc.Desc)
	}
}

func printImpl(e *env, impl *interop.Implementation) {
	opt := ""
	if impl.Optional {
		opt = " (optional: run only when named)"
	}
	fmt.Fprintf(e.stdout, "  %-10s %-8s %s%s\n", impl.Name, impl.Role, impl.Desc, opt)
}

func runRelay(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("h3m interop relay", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	group := fs.String("group", "", "multicast group and port, e.g. 232.77.0.1:7700")
	source := fs.String("source", "", "SSM source to join and to send from")
	in := fs.String("in", "", "interface to join on")
	out := fs.String("out", "", "interface to send on")
	flip := fs.Bool("flip", false, "flip the lowest bit of every packet's last byte")
	if err := fs.Parse(args); err != nil {
		return usagef("relay: %v", err)
	}
	g, err := netip.ParseAddrPort(*group)
	if err != nil {
		return usagef("relay --group: %v", err)
	}
	s, err := netip.ParseAddr(*source)
	if err != nil {
		return usagef("relay --source: %v", err)
	}
	rl, err := interop.NewRelay(interop.RelayConfig{Group: g, Source: s, InInterface: *in, OutInterface: *out, Flip: *flip})
	if err != nil {
		return err
	}
	defer rl.Close()
	e.log.Info("relaying", "group", g, "source", s, "in", *in, "out", *out, "flip", *flip)
	err = rl.Run(ctx)
	e.log.Info("relay stopped", "forwarded", rl.Forwarded.Load())
	return err
}
