package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/h3m-project/h3m/internal/bench"
)

// peersHelp is the part of bench's help about --what peers.
const peersHelp = `

The peers phase (--what peers, only when asked for: it needs root, nftables
and UFTP, Debian package uftp) compares h3m with UFTP side by side: on one
bridge of network namespaces (a sender host, N receiver hosts, random loss of
multicast packets by nftables inside each receiver's namespace) it runs this
h3m binary's serve --once and receive, and uftp/uftpd (AES-128-GCM, ECDH key
exchange), alternately, with the same generated files, rate and loss, and
prints per case the time until every receiver holds every file (checked byte
for byte), goodput, sender and receiver CPU per GB, and bytes on the wire,
each with the ratio h3m/UFTP. h3m serves with --fec auto by default
(--peers-fec): repair packets only once the receivers' repair requests show
that they cost less than the unicast repair they save.`

// peersFlags registers the peers phase's flags and returns what runs it.
func peersFlags(fs *flag.FlagSet) func(ctx context.Context, e *env) error {
	receivers := fs.String("peers-receivers", "1,4", "peers: receiver counts, comma-separated")
	loss := fs.String("peers-loss", "0,2,10", "peers: multicast loss rates in percent, comma-separated")
	size := fs.Int64("peers-size", bench.DefaultPeersSize, "peers: total bytes of the generated files")
	files := fs.Int("peers-files", bench.DefaultPeersFiles, "peers: number of generated files")
	rate := fs.Uint64("peers-rate", bench.DefaultPeersRate, "peers: sending rate of both tools, bit/s")
	repeat := fs.Int("peers-repeat", 1, "peers: runs per tool and case (alternating which goes first; medians reported)")
	wait := fs.Duration("peers-wait", bench.DefaultPeersAwaitWait, "peers: h3m serve --wait, the longest h3m waits for its receivers to join (counted in h3m's time)")
	await := fs.Bool("peers-await", true, "peers: h3m serve --wait-receivers N: push once the case's N receivers have read the session description (as UFTP's -H starts once every client registered), --peers-wait bounding the wait")
	packetSize := fs.Int("peers-packet-size", bench.DefaultPeersPacketSize, "peers: h3m serve --packet-size (default: the size of UFTP's data datagrams with its default block size)")
	timeout := fs.Duration("peers-timeout", 0, "peers: bound on each run (0: ten times the nominal transfer time, at least a minute)")
	dir := fs.String("peers-dir", "", "peers: keep the content and each process's log here (default: a temporary folder, removed)")
	uftpArgs := fs.String("peers-uftp-args", "", "peers: more options for uftp, space-separated (e.g. \"-r 0.1 -s 30\")")
	fecMode := fs.String("peers-fec", "auto", "peers: h3m serve --fec: auto (repair packets from the loss the receivers' requests show), a share such as 20%, or none")
	serveArgs := fs.String("peers-serve-args", "", "peers: more options for h3m serve, space-separated (e.g. \"--mcast-repair 2\")")
	h3mBin := fs.String("peers-h3m", "", "peers: the h3m binary to compare (default: this one)")
	return func(ctx context.Context, e *env) error {
		o := bench.PeersOptions{Size: *size, Files: *files, Rate: *rate, Repeat: *repeat, Wait: *wait,
			AwaitReceivers: *await, PacketSize: *packetSize,
			Timeout: *timeout, Out: e.stdout, Logger: e.log}
		var err error
		if o.Receivers, err = intList(*receivers); err != nil {
			return usagef("--peers-receivers: %v", err)
		}
		for _, n := range o.Receivers {
			if n < 1 {
				return usagef("--peers-receivers: a case needs at least one receiver")
			}
		}
		if o.Loss, err = intList(*loss); err != nil {
			return usagef("--peers-loss: %v", err)
		}
		for _, l := range o.Loss {
			if l > 100 {
				return usagef("--peers-loss: %d is over 100 %%", l)
			}
		}
		if *rate == 0 {
			return usagef("--peers-rate: both tools need a rate")
		}
		if *dir != "" {
			if o.Dir, err = filepath.Abs(*dir); err != nil {
				return err
			}
		}
		o.UFTPArgs = strings.Fields(*uftpArgs)
		if *fecMode != "none" && *fecMode != "" {
			o.ServeArgs = append(o.ServeArgs, "--fec", *fecMode)
		}
		o.ServeArgs = append(o.ServeArgs, strings.Fields(*serveArgs)...)
		o.H3M = *h3mBin
		if o.H3M == "" {
			if o.H3M, err = os.Executable(); err != nil {
				return fmt.Errorf("peers: finding this binary: %w", err)
			}
		}
		if err := bench.PeersAvailable(); err != nil {
			return fmt.Errorf("peers: %w", err)
		}
		rep, err := bench.Peers(ctx, o)
		if err != nil {
			return err
		}
		if rep.Failed() {
			return fmt.Errorf("peers: some runs did not deliver every file intact")
		}
		return nil
	}
}

// intList parses "1,4" into whole numbers.
func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a list of whole numbers", s)
		}
		out = append(out, n)
	}
	return out, nil
}
