package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
)

// DefaultHoldPatterns match the segments of live DASH and HLS streams:
// requests for them wait for the multicast copy.
var DefaultHoldPatterns = []string{"*.m4s", "*.m4v", "*.m4a", "*.mp4", "*.ts", "*.cmfv", "*.cmfa", "*.webm", "*.aac"}

// StatusPath is where the gateway's status page lives (HTML; add ".json"
// for JSON).
const StatusPath = "/_h3m/status"

// Config configures a Gateway.
type Config struct {
	// Store holds what the receiver delivered.
	Store *Store
	// Upstream is the unicast server, for what the store does not have: its
	// base URL and the transport to reach it (HTTP/3).
	Upstream  *url.URL
	Transport http.RoundTripper
	// HoldPatterns are path.Match patterns (matched against the last path
	// element) of live resources whose requests wait for the multicast copy;
	// nil means DefaultHoldPatterns.
	HoldPatterns []string
	// HoldTimeout is how long such a request waits before it is fetched from
	// upstream; 0 means 4 s.
	HoldTimeout time.Duration
	// Status, if set, adds the receiver's own figures (sessions, loss,
	// repair and fallback counts) to the status page.
	Status func() any
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// Gateway is an http.Handler serving the store to players.
type Gateway struct {
	cfg Config
	log *slog.Logger

	served                      map[string]*atomic.Uint64 // by Via
	held, heldHit, heldFallback atomic.Uint64
	passthrough, upstreamErrors atomic.Uint64
	started                     time.Time
}

// New returns a gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Store == nil {
		return nil, errors.New("gateway: no store")
	}
	if cfg.Upstream == nil || cfg.Transport == nil {
		return nil, errors.New("gateway: no upstream")
	}
	if cfg.HoldPatterns == nil {
		cfg.HoldPatterns = DefaultHoldPatterns
	}
	for _, p := range cfg.HoldPatterns {
		if _, err := path.Match(p, "x"); err != nil {
			return nil, fmt.Errorf("gateway: hold pattern %q: %w", p, err)
		}
	}
	if cfg.HoldTimeout == 0 {
		cfg.HoldTimeout = 4 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, started: time.Now(), served: map[string]*atomic.Uint64{}}
	for _, v := range []string{client.ViaMulticast, client.ViaRepair, client.ViaFallback} {
		g.served[v] = new(atomic.Uint64)
	}
	return g, nil
}

func (g *Gateway) holds(p string) bool {
	base := path.Base(p)
	for _, pat := range g.cfg.HoldPatterns {
		if ok, _ := path.Match(pat, base); ok {
			return true
		}
	}
	return false
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case StatusPath:
		g.statusHTML(w)
		return
	case StatusPath + ".json":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(g.Status())
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if e, ok := g.cfg.Store.Get(p); ok {
		g.serve(w, r, e)
		return
	}
	if g.holds(p) {
		g.held.Add(1)
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.HoldTimeout)
		e, err := g.cfg.Store.Wait(ctx, p)
		cancel()
		if err == nil {
			g.heldHit.Add(1)
			g.serve(w, r, e)
			return
		}
		if r.Context().Err() != nil {
			return // the player gave up
		}
		g.heldFallback.Add(1)
		g.log.Info("segment not received in time; fetching it over unicast", "path", p, "waited", g.cfg.HoldTimeout)
	} else {
		g.passthrough.Add(1)
	}
	g.proxy(w, r)
}

func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, e *Entry) {
	for k, v := range e.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Content-Length", "Connection", "Transfer-Encoding", "Content-Range":
			continue
		}
		w.Header()[k] = v
	}
	w.Header().Set("X-H3m-Via", e.Via)
	if c := g.served[e.Via]; c != nil {
		c.Add(1)
	}
	http.ServeContent(w, r, "", e.ModTime, io.NewSectionReader(e.Body, 0, e.Size))
}

// proxy fetches r from upstream and copies the response.
func (g *Gateway) proxy(w http.ResponseWriter, r *http.Request) {
	u := *g.cfg.Upstream
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	req, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, h := range []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since", "Accept", "Accept-Encoding"} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	resp, err := g.cfg.Transport.RoundTrip(req)
	if err != nil {
		g.upstreamErrors.Add(1)
		g.log.Warn("upstream request failed", "path", r.URL.Path, "err", err)
		http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Transfer-Encoding", "Alt-Svc":
			continue
		}
		w.Header()[k] = v
	}
	w.Header().Set("X-H3m-Via", "unicast")
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		g.log.Debug("copying the upstream response failed", "path", r.URL.Path, "err", err)
	}
}

// Status is what the status page shows.
type Status struct {
	Uptime      string            `json:"uptime"`
	Served      map[string]uint64 `json:"served_by_via"`
	Held        uint64            `json:"held_requests"`
	HeldArrived uint64            `json:"held_then_arrived"`
	HeldTimeout uint64            `json:"held_then_fetched"`
	Passthrough uint64            `json:"passed_to_upstream"`
	UpstreamErr uint64            `json:"upstream_errors"`
	Store       StoreStats        `json:"store"`
	Receiver    any               `json:"receiver,omitempty"`
	Recent      []EntryStatus     `json:"recent"`
}

// EntryStatus describes one stored entry.
type EntryStatus struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Via  string `json:"via"`
}

// Status returns the gateway's figures.
func (g *Gateway) Status() Status {
	st := Status{
		Uptime:      time.Since(g.started).Round(time.Second).String(),
		Served:      map[string]uint64{},
		Held:        g.held.Load(),
		HeldArrived: g.heldHit.Load(),
		HeldTimeout: g.heldFallback.Load(),
		Passthrough: g.passthrough.Load(),
		UpstreamErr: g.upstreamErrors.Load(),
		Store:       g.cfg.Store.Stats(),
	}
	for k, c := range g.served {
		st.Served[k] = c.Load()
	}
	if g.cfg.Status != nil {
		st.Receiver = g.cfg.Status()
	}
	for i, e := range g.cfg.Store.Entries() {
		if i == 50 {
			break
		}
		st.Recent = append(st.Recent, EntryStatus{Path: e.Path, Size: e.Size, Via: e.Via})
	}
	return st
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="2"><title>h3m gateway</title>
<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:left}pre{background:#f4f4f4;padding:1em}</style>
</head><body><h1>h3m gateway</h1>
<p>Up {{.Uptime}}. Served: {{range $k, $v := .Served}}{{$k}} {{$v}}, {{end}}
held requests {{.Held}} ({{.HeldArrived}} arrived in time, {{.HeldTimeout}} fetched over unicast),
passed to upstream {{.Passthrough}}, upstream errors {{.UpstreamErr}}.</p>
<p>Store: {{.Store.Entries}} entries, {{.Store.Bytes}} of {{.Store.MaxSize}} bytes, {{.Store.Waiting}} waiting requests.</p>
{{with .Receiver}}<h2>Receiver</h2><pre>{{.}}</pre>{{end}}
<h2>Recent resources</h2><table><tr><th>path</th><th>bytes</th><th>via</th></tr>
{{range .Recent}}<tr><td>{{.Path}}</td><td>{{.Size}}</td><td>{{.Via}}</td></tr>{{end}}</table>
<p><a href="status.json">JSON</a></p></body></html>
`))

func (g *Gateway) statusHTML(w http.ResponseWriter) {
	st := g.Status()
	if st.Receiver != nil {
		b, _ := json.MarshalIndent(st.Receiver, "", "  ")
		st.Receiver = strings.TrimSpace(string(b))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := statusPage.Execute(w, st); err != nil {
		g.log.Debug("status page", "err", err)
	}
}
