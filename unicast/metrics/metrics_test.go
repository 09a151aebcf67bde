package metrics_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/unicast/metrics"
	"github.com/h3m-project/h3m/unicast/origin"
	dto "github.com/prometheus/client_model/go"
)

// value returns the value of the sample of name whose labels include
// labels (name=value pairs), and whether there is one.
func value(fams []*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(labels); i += 2 {
				ok := false
				for _, lp := range m.Label {
					ok = ok || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
				}
				if !ok {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue(), true
			}
			return m.Gauge.GetValue(), true
		}
	}
	return 0, false
}

// TestOriginCountsWhatItAnswers: the origin's server counts each answer
// once, under its kind, and the collector exports the counts: a whole GET,
// a range, a 304, and refusals by reason.
func TestOriginCountsWhatItAnswers(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.bin"), []byte(strings.Repeat("x", 1000)), 0o644)
	certPEM, keyPEM, err := origin.GenerateCertificate([]string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	o, err := origin.New(origin.Config{Dir: dir, Addr: "127.0.0.1:0", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Publisher: origin.PublisherConfig{Interface: "lo", TTL: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	do := func(method, path string, h ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		w := httptest.NewRecorder()
		o.Server.ServeHTTP(w, r)
		return w
	}
	whole := do("GET", "/a.bin")
	etag := whole.Header().Get("Etag")
	for _, c := range []struct {
		w    *httptest.ResponseRecorder
		want int
	}{
		{whole, 200},
		{do("GET", "/a.bin", "Range", "bytes=0-9"), 206},
		{do("GET", "/a.bin", "If-None-Match", etag), 304},
		{do("HEAD", "/a.bin"), 200}, // not a fetch: no body
		{do("GET", "/missing.bin"), 404},
		{do("POST", "/a.bin"), 405},
		{do("GET", "/a.bin", "Range", "bytes=5000-"), 416},
		{do("GET", "/.well-known/h3m"), 403}, // not over TLS
	} {
		if c.w.Code != c.want {
			t.Fatalf("status %d, want %d", c.w.Code, c.want)
		}
	}
	reg, err := metrics.NewRegistry(metrics.NewOrigin(o))
	if err != nil {
		t.Fatal(err)
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"h3m_origin_fallback_requests_total", nil, 1},
		{"h3m_origin_fallback_served_bytes_total", nil, 1000},
		{"h3m_origin_repair_requests_total", nil, 1},
		{"h3m_origin_repair_served_bytes_total", nil, 10},
		{"h3m_origin_not_modified_total", nil, 1},
		{"h3m_origin_descriptions_served_total", nil, 0},
		{"h3m_origin_rejected_requests_total", []string{"reason", "not_found"}, 1},
		{"h3m_origin_rejected_requests_total", []string{"reason", "method"}, 1},
		{"h3m_origin_rejected_requests_total", []string{"reason", "range"}, 1},
		{"h3m_origin_rejected_requests_total", []string{"reason", "forbidden"}, 1},
		{"h3m_origin_rejected_requests_total", []string{"reason", "busy"}, 0},
		{"h3m_origin_sessions", []string{"state", "active"}, 0},
		{"h3m_origin_pushes_total", nil, 0},
	} {
		if got, ok := value(fams, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (%v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(fams, "h3m_origin_packets_sent_total"); ok {
		t.Error("transport metrics exported with no session running")
	}
	if _, ok := value(fams, "go_goroutines"); !ok {
		t.Error("no Go runtime metrics")
	}
}

// TestServeShutsDown: Serve answers at Path and returns nil once its
// context ends.
func TestServeShutsDown(t *testing.T) {
	reg, err := metrics.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := metrics.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.Serve(ctx, ln, reg, slogDiscard()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("%s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := metrics.Listen(ln.Addr().String()); err != nil {
		t.Errorf("the address is still taken after Serve returned: %v", err)
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }
