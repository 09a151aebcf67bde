package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/gateway"
	"github.com/h3m-project/h3m/unicast/metrics"
	"github.com/quic-go/quic-go/http3"
)

func gatewayCommand() *command {
	return &command{
		name:  "gateway",
		usage: "(--url URL | --alt-svc ADVERTISEMENT | --session FILE) --listen HOST:PORT [flags]",
		short: "receive a session and serve it to local players over HTTP",
		long: `gateway receives the multicast session that the unicast server at URL
announces (repairing and falling back as receive does) and serves what it
holds to local players over plain HTTP at --listen. A request for a live
segment (a path matching --hold, e.g. *.m4s) that has not arrived yet is held
until it arrives or --hold-timeout passes, then fetched over unicast; any
other path the gateway does not hold is passed to the unicast server, except
/.well-known/h3m (the session description carries keys, which only travel
over TLS).

Responses carry media types from h3m's own table (.mpd application/dash+xml,
.m4s video/iso.segment, .ts video/mp2t, ...), Cache-Control for live
manifests (no-cache) and segments (max-age=60, immutable) unless the origin
sent one, validators for conditional requests, and X-H3m-Via: how the
gateway got the resource (multicast, repair, fallback or unicast).

Pages of other origins (a player on its own web server) may read the
responses when --cors allows their origin: by default any origin when
--listen is a loopback address, none otherwise.

The gateway's own pages are under /_h3m/: an index of the streams it holds,
/_h3m/player (plays a DASH stream in the browser with dash.js, loaded from
--dashjs-url, and shows how each segment came), /_h3m/status for people and
/_h3m/status.json (sessions, rates, multicast share, recent resources), and
/_h3m/time, a clock for DASH players (UTCTiming
urn:mpeg:dash:utc:http-iso:2014 or http-xsdate:2014).

When the server runs one session per channel (h3m serve --channels: one per
rendition of a DASH ladder), the gateway joins a channel's session only when
a player first requests a path under it, and leaves it once no player has
requested one for --channel-idle, so that this host receives only the
renditions its players play; the status page lists each session's channel and
whether it is idle. Sessions without a channel (the server's main session,
which carries the MPD) are joined at once. --channel-idle 0 joins every
session at once.

--require-asymmetric, --require-signature and --manifests work as for
h3m receive: players then only get what the sender signed.

--alt-svc and --session join a session announced elsewhere, as for h3m
receive. With no --url there is no unicast server: nothing is repaired or
fetched, and a request for what multicast has not brought is answered 404
(held segments after --hold-timeout).`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var cf clientFlags
			cf.register(fs)
			listen := fs.String("listen", "127.0.0.1:8080", "TCP address of the local HTTP server for players")
			hold := fs.String("hold", strings.Join(gateway.DefaultHoldPatterns, ","), "comma-separated patterns of live segment names whose requests wait for multicast")
			holdTimeout := fs.Duration("hold-timeout", 4*time.Second, "how long a held request waits before it is fetched over unicast")
			channelIdle := fs.Duration("channel-idle", 30*time.Second, "leave a channel's session (one rendition) when no player has requested a path under its channel for this long; 0: join every session at once")
			cache := fs.Int64("cache", 512<<20, "bytes of resources kept for players")
			cors := fs.String("cors", "auto", "origins whose pages may read the responses: * (any), none, or a comma-separated list of http(s)://host[:port]; auto: * when --listen is a loopback address, none otherwise")
			dashJS := fs.String("dashjs-url", gateway.DefaultDashJSURL, "where the player page (/_h3m/player) loads dash.js 5 (dash.all.min.js) from; point it at a copy the browser can reach when it has no internet access")
			return func(ctx context.Context, e *env) error {
				if cf.url == "" && cf.altSvc == "" && cf.sessionFile == "" {
					return usagef("one of --url, --alt-svc or --session is required")
				}
				if err := cf.check(e); err != nil {
					return err
				}
				if *channelIdle < 0 {
					return usagef("--channel-idle %v: negative", *channelIdle)
				}
				o := gatewayOptions{listen: *listen, hold: splitList(*hold), holdTimeout: *holdTimeout, cache: *cache, dashJS: *dashJS,
					channelIdle: *channelIdle}
				var err error
				if o.cors, err = corsFlag(*cors, *listen); err != nil {
					return err
				}
				return runGateway(ctx, e, &cf, o)
			}
		},
	}
}

type gatewayOptions struct {
	listen      string
	hold        []string
	holdTimeout time.Duration
	cache       int64
	cors        []string
	dashJS      string
	channelIdle time.Duration
	// ready, if set, is called with the gateway's URL once it listens.
	ready func(url string)
	// status, if set, is given the gateway's status function.
	status func(func() gateway.Status)
}

func runGateway(ctx context.Context, e *env, cf *clientFlags, o gatewayOptions) error {
	var origin *url.URL
	var upstream *http3.Transport
	if cf.url != "" { // else sessions announced elsewhere, and no unicast server
		var err error
		if origin, err = parseServerURL(cf.url); err != nil {
			return err
		}
		tlsConf := &tls.Config{}
		if cf.ca != "" {
			if tlsConf.RootCAs, err = client.LoadCertPool(cf.ca); err != nil {
				return usageError{err.Error()}
			}
		}
		upstream = &http3.Transport{TLSClientConfig: tlsConf, QUICConfig: qlogQUICConfig()}
		defer upstream.Close()
	}

	store := gateway.NewStore(o.cache)
	cfg := cf.config(e)
	// The store holds the bodies players get; the client need only remember
	// recent deliveries (to drop duplicates), not keep their bodies alive.
	cfg.MaxDeliveries = 256
	cfg.Storage = h3m.MemoryStorage{MaxSize: o.cache / 4}
	cfg.ChannelIdle = o.channelIdle
	cfg.OnResource = func(d client.Delivery) {
		if d.Err != nil {
			e.log.Warn("resource failed", "path", d.Path, "err", d.Err)
			return
		}
		store.Put(gateway.EntryOf(&d))
		e.log.Debug("delivered", "path", d.Path, "via", d.Via, "size", d.Size, "repair_bytes", d.RepairBytes)
	}
	rm := newReceiverMetrics(cf.metricsListen, &cfg)
	rc, err := client.New(cfg)
	if err != nil {
		return usageError{err.Error()}
	}
	gwCfg := gateway.Config{
		Store:        store,
		HoldPatterns: o.hold, HoldTimeout: o.holdTimeout, CORSOrigins: o.cors, DashJSURL: o.dashJS,
		Receiver: rc, Logger: e.log,
	}
	if o.channelIdle > 0 {
		gwCfg.OnRequest = func(p string) bool {
			_, missed := rc.Use(p)
			return missed
		}
	}
	if origin != nil {
		gwCfg.Upstream, gwCfg.Transport = origin, upstream
	}
	gw, err := gateway.New(gwCfg)
	if err != nil {
		return usageError{err.Error()}
	}
	if o.status != nil {
		o.status(gw.Status)
	}
	stopMetrics, err := rm.start(ctx, e, rc, metrics.NewGateway(gw.Status))
	if err != nil {
		return err
	}
	defer stopMetrics()
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fmt.Errorf("--listen %s: cannot listen for players: %w", o.listen, err)
	}
	hs := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- hs.Serve(ln) }()
	base := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(e.stdout, "h3m: gateway for %s at %s\n", origin, base)
	fmt.Fprintf(e.stdout, "h3m: player %s%s, status %s%s\n", base, gateway.PlayerPath[1:], base, gateway.StatusPath[1:])
	if o.ready != nil {
		o.ready(base)
	}
	defer tuneProcs(ctx, e.log, rc, cf.procs)()
	clientErr := make(chan error, 1)
	go func() { clientErr <- rc.Run(ctx) }()
	select {
	case err = <-clientErr:
	case err = <-srvErr:
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	hs.Shutdown(shutCtx)
	if ctx.Err() != nil {
		return ctx.Err() // interrupted: exit code 130
	}
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// corsFlag turns --cors into the gateway's allowed origins.
func corsFlag(value, listen string) ([]string, error) {
	if value == "auto" {
		return gateway.DefaultCORS(listen), nil
	}
	origins, err := gateway.ParseCORS(value)
	if err != nil {
		return nil, usagef("--cors: %v", err)
	}
	return origins, nil
}
