package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// metricsListenFlag is the flag of the Prometheus metrics address.
const metricsListenFlag = "metrics-listen"

// registerMetricsFlag registers --metrics-listen into addr.
func registerMetricsFlag(fs *flag.FlagSet, addr *string) {
	fs.StringVar(addr, metricsListenFlag, "", "TCP address to serve Prometheus metrics on, at "+metrics.Path+" (e.g. 127.0.0.1:9464; empty: no metrics)")
}

// startMetrics serves the metrics of cs (and the Go runtime's and the
// process's) at addr until ctx ends or stop is called; stop waits for the
// server to end. With addr "" it does nothing.
func startMetrics(ctx context.Context, e *env, addr string, cs ...prometheus.Collector) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	reg, err := metrics.NewRegistry(cs...)
	if err != nil {
		return nil, err
	}
	ln, err := metrics.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("--%s: %w", metricsListenFlag, err)
	}
	fmt.Fprintf(e.stdout, "h3m: metrics at http://%s%s\n", ln.Addr(), metrics.Path)
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := metrics.Serve(ctx, ln, reg, e.log); err != nil {
			e.log.Warn("metrics server stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// receiverMetrics are the metrics of a receiving command (receive,
// gateway): the client's counters and the promise-to-complete histogram.
type receiverMetrics struct {
	addr       string
	deliveries *metrics.Deliveries
}

// newReceiverMetrics prepares the metrics of --metrics-listen addr: with an
// address, it makes cfg.OnResource observe each delivery too. Call it
// after cfg.OnResource is set, and start once the client exists.
func newReceiverMetrics(addr string, cfg *client.Config) *receiverMetrics {
	m := &receiverMetrics{addr: addr}
	if addr == "" {
		return m
	}
	m.deliveries = metrics.NewDeliveries()
	next := cfg.OnResource
	cfg.OnResource = func(d client.Delivery) {
		m.deliveries.Observe(d)
		if next != nil {
			next(d)
		}
	}
	return m
}

// start serves the metrics of rc and of more (see startMetrics).
func (m *receiverMetrics) start(ctx context.Context, e *env, rc *client.Client, more ...prometheus.Collector) (stop func(), err error) {
	if m.addr == "" {
		return func() {}, nil
	}
	cs := append([]prometheus.Collector{metrics.NewReceiver(rc), m.deliveries}, more...)
	return startMetrics(ctx, e, m.addr, cs...)
}
