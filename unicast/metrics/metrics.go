// Package metrics exports the counters of h3m's origin, receiver and
// gateway as Prometheus metrics.
//
// The collectors hold no counters of their own: each scrape reads the
// statistics the library already keeps (origin.Server.Stats,
// origin.Publisher.Stats, client.Client.Stats and Sessions, mquic and h3m
// receiver statistics, gateway.Gateway.Status), so that every figure has one
// source of truth. The only exception is the promise-to-complete histogram
// (Deliveries), which observes each delivery as it is made.
//
// Names follow the Prometheus conventions: an h3m_ prefix, _total for
// counters, base units (_bytes, _seconds), and labels of low cardinality
// only (session IDs, reasons, kinds; never a path). Transport counters are
// labelled by session: a session's series ends when it does, and the next
// session starts new ones.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where Serve exposes the metrics.
const Path = "/metrics"

// NewRegistry returns a registry with the Go runtime and process collectors
// and the given h3m collectors. Each process builds its own: nothing is
// registered with the prometheus package's default registry.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	all := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, cs...)
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return reg, nil
}

// Handler serves the metrics of reg in the Prometheus text (or
// OpenMetrics) format.
func Handler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrinter{log},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      reg, // promhttp's own counters, in reg too
	})
}

// slogPrinter adapts a slog.Logger to promhttp's error logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics: " + fmt.Sprint(v...)) }

// Listen opens the TCP listener of Serve: a separate step, so that a
// command fails at once when its metrics address is taken.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: cannot listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves reg at Path on ln until ctx ends, then shuts the server down
// and returns nil (or the error that stopped it earlier).
func Serve(ctx context.Context, ln net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle(Path, Handler(reg, log))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "h3m metrics: %s\n", Path)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	})
	defer stop()
	log.Info("metrics listening", "addr", ln.Addr().String(), "path", Path)
	err := hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// family is one metric's descriptor with its kind.
type family struct {
	desc *prometheus.Desc
	kind prometheus.ValueType
}

func counter(name, help string, labels ...string) family {
	return family{prometheus.NewDesc(name, help, labels, nil), prometheus.CounterValue}
}

func gauge(name, help string, labels ...string) family {
	return family{prometheus.NewDesc(name, help, labels, nil), prometheus.GaugeValue}
}

// emit sends one sample of f.
func (f family) emit(ch chan<- prometheus.Metric, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(f.desc, f.kind, v, labels...)
}

// describe sends the descriptors of fs.
func describe(ch chan<- *prometheus.Desc, fs ...family) {
	for _, f := range fs {
		ch <- f.desc
	}
}
