package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/h3m-project/h3m/internal/bench"
	"github.com/h3m-project/h3m/internal/netns"
	"github.com/h3m-project/h3m/unicast/origin"
)

func benchCommand() *command {
	return &command{
		name:  "bench",
		usage: "[flags]",
		short: "measure throughput against a raw-UDP baseline on loopback",
		long: `bench sends and receives on loopback multicast for a few seconds per phase
and prints sender and receiver Gbit/s and packets/s: first raw UDP datagrams
with the same socket technique (sendmmsg/recvmmsg, GSO/GRO when enabled), then
the multicast QUIC transport, then HTTP pushes over it, each with its ratio to
the baseline measured in the same run. Sending is unpaced: the figures are
capacities of this machine, not of a network.

The large phase pushes one resource (1 GiB by default) paced at --large-rate
(2 Gbit/s) and checks every byte that arrives against what was sent.

The pace phase sends paced at 100 Mbit/s to 3 Gbit/s and prints the rate
set against the rate achieved at the sender and at the receiver.

The asym phase compares a symmetric and an asymmetric session (signed
manifests of packet digests) in the same run: after an unmeasured warm-up
pair, paced at each of --asym-rates, then five unpaced pairs alternating
which goes first, each with its throughput ratio, and the median of those
ratios and of the CPU per packet; it prints what hashing, signing and
verifying cost per packet.

The fec phase prints what FEC encoding and decoding cost per packet next to
AES-GCM sealing and opening, then compares sessions without and with 5 %
forward error correction in the same run, paced at 1 Gbit/s and unpaced:
after an unmeasured warm-up pair, five unpaced pairs alternating which
goes first, each with its throughput ratio and its ratio of CPU per GB
(the process's, sender and receiver), and the medians of both.

The pause phase times the receiver's socket reads while a 256 MiB push with
SHA-256 and SHA-512 digests completes and is verified, followed by a 64 MiB
push, paced at 1 Gbit/s: the longest time the socket was not read, against
what one digest pass over the body takes (the pause of verifying on the
packet path).` + peersHelp + simHelp + scaleHelp + soakHelp,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var o bench.Options
			var suite string
			var group string
			var what string
			fs.DurationVar(&o.Duration, "duration", 3*time.Second, "length of each measured phase")
			fs.IntVar(&o.PacketSize, "size", 1200, "UDP payload bytes per packet")
			offload := fs.String("offload", "both", "socket technique: off (sendmmsg/recvmmsg), on (UDP GSO/GRO) or both")
			useNetns := fs.Bool("netns", false, "run between two network namespaces joined by a veth pair (needs root) instead of on loopback; GSO super-packets are segmented at the sender's link, as by a NIC")
			fs.StringVar(&suite, "suite", "1301", "cipher suite: 1301, 1302, 1303 or none")
			fs.StringVar(&o.Interface, "interface", "lo", "interface to send and join on")
			fs.StringVar(&group, "group", "232.255.3.1:5300", "multicast group and first port (each phase uses the next port)")
			fs.StringVar(&what, "what", "all", "phases: transport, http, asym, fec, large, pace, pause or all (the loopback phases), peers (h3m against UFTP), scale (origin cost as receivers grow), sim (repair simulated for many receivers) or soak (an hour of live DASH)")
			largeSize := fs.Int64("large-size", 1<<30, "size of the large paced transfer (the large phase)")
			largeRate := fs.Uint64("large-rate", 2_000_000_000, "paced rate (bit/s) of the large transfer")
			asymRates := fs.String("asym-rates", "1000000000,2000000000", "paced rates (bit/s, comma-separated) of the symmetric/asymmetric comparison")
			peers := peersFlags(fs)
			sim := simFlags(fs)
			scale := scaleFlags(fs)
			soakRun := soakFlags(fs)
			return func(ctx context.Context, e *env) error {
				switch what {
				case "peers":
					return peers(ctx, e)
				case "sim":
					return sim(ctx, e)
				case "scale":
					return scale(ctx, e)
				case "soak":
					return soakRun(ctx, e)
				}
				g, err := netip.ParseAddrPort(group)
				if err != nil {
					return usagef("--group: %v", err)
				}
				o.Group = g
				o.Source = netip.MustParseAddr("127.0.0.1")
				for _, f := range strings.Split(*asymRates, ",") {
					r, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
					if err != nil || r == 0 {
						return usagef("--asym-rates %q: want bit/s values separated by commas", *asymRates)
					}
					o.AsymRates = append(o.AsymRates, r)
				}
				if o.Interface != "lo" {
					return usagef("--interface: bench runs on loopback (or, with --netns, on a veth pair of its own) only")
				}
				if *useNetns {
					done, err := benchNamespaces(&o)
					if err != nil {
						return err
					}
					defer done()
				}
				if o.Suite, err = origin.ParseSuite(suite); err != nil {
					return usagef("--suite: %v", err)
				}
				var techniques []bool
				switch *offload {
				case "both":
					techniques = []bool{false, true}
				case "on":
					techniques = []bool{true}
				case "off":
					techniques = []bool{false}
				default:
					return usagef("--offload %q: want off, on or both", *offload)
				}
				switch what {
				case "transport", "http", "asym", "fec", "large", "pace", "pause", "all":
				default:
					return usagef("--what %q: want transport, http, asym, fec, large, pace, pause, all, peers, scale, sim or soak", what)
				}
				o.Out = e.stdout
				o.Logger = e.log
				for i, off := range techniques {
					o.GSO, o.GRO = off, off
					o.Group = netip.AddrPortFrom(g.Addr(), g.Port()+uint16(20*i))
					if what == "transport" || what == "all" {
						r, err := bench.Transport(ctx, o)
						if err != nil {
							return err
						}
						r.Report(e.stdout, o)
					}
					if what == "http" || what == "all" {
						o.Group = netip.AddrPortFrom(g.Addr(), g.Port()+uint16(20*i+10))
						r, err := bench.HTTP(ctx, o)
						if err != nil {
							return err
						}
						r.Report(e.stdout, o)
					}
					// The asymmetric comparison once, with the last technique.
					if (what == "asym" || what == "all") && i == len(techniques)-1 {
						o.Group = netip.AddrPortFrom(g.Addr(), g.Port()+uint16(20*i+10))
						r, err := bench.Asymmetric(ctx, o)
						if err != nil {
							return err
						}
						r.Report(e.stdout, o)
					}
					// The FEC comparison once, with the last technique.
					if (what == "fec" || what == "all") && i == len(techniques)-1 {
						o.Group = netip.AddrPortFrom(g.Addr(), g.Port()+uint16(20*i+10))
						r, err := bench.FEC(ctx, o)
						if err != nil {
							return err
						}
						r.Report(e.stdout, o)
					}
					// Set against achieved pacing rates once, with the last technique.
					if (what == "pace" || what == "all") && i == len(techniques)-1 {
						o.Group = netip.AddrPortFrom(g.Addr(), g.Port()+uint16(20*i+10))
						runs, err := bench.Pace(ctx, o, []uint64{100e6, 200e6, 500e6, 1e9, 2e9, 3e9})
						if err != nil {
							return err
						}
						bench.ReportPace(e.stdout, o, runs)
					}
					// The large paced transfer once, with the last technique.
					if (what == "large" || what == "all") && i == len(techniques)-1 {
						o.Group = netip.AddrPortFrom(g.Addr(), g.Port()+uint16(20*i+15))
						r, err := bench.Large(ctx, o, *largeSize, *largeRate)
						if err != nil {
							return err
						}
						r.Report(e.stdout, o)
						if !r.Intact {
							return fmt.Errorf("the large transfer did not arrive intact")
						}
					}
					// The intake pause once, with the last technique.
					if (what == "pause" || what == "all") && i == len(techniques)-1 {
						o.Group = netip.AddrPortFrom(g.Addr(), g.Port()+uint16(20*i+17))
						r, err := bench.Pause(ctx, o)
						if err != nil {
							return err
						}
						r.Report(e.stdout, o)
					}
					fmt.Fprintln(e.stdout)
				}
				return nil
			}
		},
	}
}

// benchNamespaces sets o up to run between two namespaces of its own joined
// by a veth pair, and returns the function that removes them.
func benchNamespaces(o *bench.Options) (func(), error) {
	if err := netns.Available(); err != nil {
		return nil, usagef("--netns: %v", err)
	}
	scope := &netns.Scope{}
	var a, b *netns.NS
	var ifA, ifB string
	err := scope.Run(func() {
		a, b = netns.New(scope, "bench-s"), netns.New(scope, "bench-r")
		ifA, ifB = netns.Veth(scope, a, b, netip.MustParsePrefix("10.250.0.1/24"), netip.MustParsePrefix("10.250.0.2/24"))
		// Segment GSO super-packets at the sender's link, as a NIC without
		// UDP segmentation offload does: on the wire every datagram counts.
		if _, err := a.Run("ip", "link", "set", ifA, "gso_max_segs", "1"); err != nil {
			scope.Fatal(err)
		}
	})
	if err != nil {
		scope.Close()
		return nil, err
	}
	o.Interface, o.RecvInterface = ifA, ifB
	o.Source = netip.MustParseAddr("10.250.0.1")
	o.InNS = func(recv bool, fn func() error) error {
		if recv {
			return b.Do(fn)
		}
		return a.Do(fn)
	}
	return func() { scope.Close() }, nil
}
