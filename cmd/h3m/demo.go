package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/h3m/h3frame"
	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/mcast"
	"github.com/h3m-project/h3m/mquic/protect"
)

func demoCommand() *command {
	return &command{
		name:  "demo",
		usage: "[flags]",
		short: "run a sender and a receiver on loopback multicast with generated content",
		long: `demo runs the whole job on a built-in default: it generates content, pushes it
over multicast QUIC on the loopback interface (group 232.255.1.1, TTL 1) and
receives it in the same process, printing progress and a summary. Nothing
leaves the machine.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			group := fs.String("group", "232.255.1.1:5000", "multicast group and port (on loopback)")
			files := fs.Int("files", 20, "number of generated files")
			size := fs.Int("size", 1<<20, "size of each generated file in bytes")
			rate := fs.Uint64("rate", 200_000_000, "peak flow rate in bit/s")
			return func(ctx context.Context, e *env) error {
				g, err := netip.ParseAddrPort(*group)
				if err != nil || !g.Addr().Is4() || !g.Addr().IsMulticast() {
					return usagef("--group %q: want an IPv4 multicast address and port", *group)
				}
				return runTransportDemo(ctx, e, g, *files, *size, *rate)
			}
		},
	}
}

func runTransportDemo(ctx context.Context, e *env, group netip.AddrPort, files, size int, rate uint64) error {
	src := netip.MustParseAddr("127.0.0.1")
	secret := make([]byte, 32)
	rand.Read(secret)
	params := mquic.Params{Group: group, Source: src, SessionID: []byte("h3m-demo"),
		CipherSuite: protect.SuiteAES128GCM, Secret: secret, PeakFlowRate: rate,
		MaxConcurrentResources: 8, IdleTimeout: 10 * time.Second}
	rconn, err := mcast.ListenReceiver(mcast.Config{Group: group, Source: src, Interface: "lo", Logger: e.log})
	if err != nil {
		return err
	}
	defer rconn.Close()
	sconn, err := mcast.ListenSender(mcast.Config{Group: group, Source: src, Interface: "lo", TTL: 1, Logger: e.log})
	if err != nil {
		return err
	}
	defer sconn.Close()

	var mu sync.Mutex
	done := 0
	rcv, err := h3m.NewReceiver(rconn, h3m.ReceiverConfig{Session: params, Logger: e.log,
		Verifier: &h3m.Verifier{RequireDigest: true},
		OnEvent: func(ev h3m.Event) {
			if ev.Kind == h3m.EventComplete {
				mu.Lock()
				done++
				mu.Unlock()
			}
		}})
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rdone := make(chan error, 1)
	go func() { rdone <- rcv.Run(rctx) }()

	snd, err := mquic.NewSender(sconn, mquic.SenderConfig{Params: params, Logger: e.log})
	if err != nil {
		return err
	}
	defer snd.Close()
	pusher, err := h3m.NewPusher(snd, h3m.PusherConfig{Authority: "demo.h3m.invalid", Digests: []string{"SHA-256"}, Logger: e.log})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pushing %d files of %d bytes to %s on lo at %d bit/s\n", files, size, group, rate)
	start := time.Now()
	for i := range files {
		body := make([]byte, size)
		rand.Read(body)
		p := &h3m.Push{Request: h3frame.Request{Path: fmt.Sprintf("/demo/file-%03d.bin", i)},
			Header: http.Header{"Content-Type": {"application/octet-stream"}},
			Body:   bytes.NewReader(body), ContentLength: int64(size), Last: i == files-1}
		if _, err := pusher.Push(ctx, p); err != nil {
			return err
		}
		mu.Lock()
		fmt.Fprintf(e.stdout, "\rsent %d/%d, received %d ", i+1, files, done)
		mu.Unlock()
	}
	snd.Close()
	select {
	case err := <-rdone:
		if err != nil {
			return err
		}
	case <-time.After(10 * time.Second):
		return fmt.Errorf("receiver did not finish")
	}
	st := rcv.Stats()
	fmt.Fprintf(e.stdout, "\rsent %d, received %d complete, %d incomplete, %d failed in %v\n",
		files, st.Complete, st.Incomplete, st.Failed, time.Since(start).Round(time.Millisecond))
	if st.Complete != uint64(files) {
		return fmt.Errorf("%d of %d files arrived complete", st.Complete, files)
	}
	return nil
}
