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
	"github.com/quic-go/quic-go/http3"
)

func gatewayCommand() *command {
	return &command{
		name:  "gateway",
		usage: "--url URL --listen HOST:PORT [flags]",
		short: "receive a session and serve it to local players over HTTP",
		long: `gateway receives the multicast session that the unicast server at URL
announces (repairing and falling back as receive does) and serves what it
holds to local players over plain HTTP at --listen. A request for a live
segment (a path matching --hold, e.g. *.m4s) that has not arrived yet is held
until it arrives or --hold-timeout passes, then fetched over unicast; any
other path the gateway does not hold is passed to the unicast server.

A status page is at /_h3m/status (HTML) and /_h3m/status.json: sessions,
resources, loss, repair and fallback counts, and how each request was
served.

--require-asymmetric, --require-signature and --manifests work as for
h3m receive: players then only get what the sender signed.`,
		flags: func(fs *flag.FlagSet) func(context.Context, *env) error {
			var cf clientFlags
			cf.register(fs)
			listen := fs.String("listen", "127.0.0.1:8080", "TCP address of the local HTTP server for players")
			hold := fs.String("hold", strings.Join(gateway.DefaultHoldPatterns, ","), "comma-separated patterns of live segment names whose requests wait for multicast")
			holdTimeout := fs.Duration("hold-timeout", 4*time.Second, "how long a held request waits before it is fetched over unicast")
			cache := fs.Int64("cache", 512<<20, "bytes of resources kept for players")
			return func(ctx context.Context, e *env) error {
				if cf.url == "" {
					return usagef("--url is required")
				}
				if err := cf.check(e); err != nil {
					return err
				}
				return runGateway(ctx, e, &cf, gatewayOptions{listen: *listen, hold: splitList(*hold), holdTimeout: *holdTimeout, cache: *cache})
			}
		},
	}
}

type gatewayOptions struct {
	listen      string
	hold        []string
	holdTimeout time.Duration
	cache       int64
	// ready, if set, is called with the gateway's URL once it listens.
	ready func(url string)
	// status, if set, is given the gateway's status function.
	status func(func() gateway.Status)
}

func runGateway(ctx context.Context, e *env, cf *clientFlags, o gatewayOptions) error {
	origin, err := url.Parse(cf.url)
	if err != nil || origin.Scheme != "https" || origin.Host == "" {
		return usagef("--url %q: want https://host:port/", cf.url)
	}
	origin.Path = "/"
	tlsConf := &tls.Config{}
	if cf.ca != "" {
		if tlsConf.RootCAs, err = client.LoadCertPool(cf.ca); err != nil {
			return usageError{err.Error()}
		}
	}
	upstream := &http3.Transport{TLSClientConfig: tlsConf, QUICConfig: qlogQUICConfig()}
	defer upstream.Close()

	store := gateway.NewStore(o.cache)
	cfg := cf.config(e)
	// The store holds the bodies players get; the client need only remember
	// recent deliveries (to drop duplicates), not keep their bodies alive.
	cfg.MaxDeliveries = 256
	cfg.Storage = h3m.MemoryStorage{MaxSize: o.cache / 4}
	cfg.OnResource = func(d client.Delivery) {
		if d.Err != nil {
			e.log.Warn("resource failed", "path", d.Path, "err", d.Err)
			return
		}
		store.Put(gateway.EntryOf(&d))
		e.log.Debug("delivered", "path", d.Path, "via", d.Via, "size", d.Size, "repair_bytes", d.RepairBytes)
	}
	rc, err := client.New(cfg)
	if err != nil {
		return usageError{err.Error()}
	}
	gw, err := gateway.New(gateway.Config{
		Store: store, Upstream: origin, Transport: upstream,
		HoldPatterns: o.hold, HoldTimeout: o.holdTimeout, Logger: e.log,
		Receiver: rc,
	})
	if err != nil {
		return usageError{err.Error()}
	}
	if o.status != nil {
		o.status(gw.Status)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	srvErr := make(chan error, 1)
	go func() { srvErr <- hs.Serve(ln) }()
	base := "http://" + ln.Addr().String() + "/"
	fmt.Fprintf(e.stdout, "h3m: gateway for %s at %s (status: %s_h3m/status)\n", cf.url, base, base)
	if o.ready != nil {
		o.ready(base)
	}
	clientErr := make(chan error, 1)
	go func() { clientErr <- rc.Run(ctx) }()
	select {
	case err = <-clientErr:
	case err = <-srvErr:
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	hs.Shutdown(shutCtx)
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
