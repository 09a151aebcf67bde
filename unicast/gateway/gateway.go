package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/internal/mediatype"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/h3m-project/h3m/unicast/internal/httpmeter"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// DefaultHoldPatterns match the segments of live DASH and HLS streams:
// requests for them wait for the multicast copy.
var DefaultHoldPatterns = []string{"*.m4s", "*.m4v", "*.m4a", "*.mp4", "*.ts", "*.cmfv", "*.cmfa", "*.webm", "*.aac"}

// The gateway's own paths. Nothing under Prefix is passed upstream.
const (
	Prefix = "/_h3m/"
	// IndexPath is the gateway's index: its streams, the player, status.
	IndexPath = Prefix
	// StatusPath is the status page for people; StatusJSONPath the same
	// figures as JSON (snake_case names).
	StatusPath     = Prefix + "status"
	StatusJSONPath = StatusPath + ".json"
	// TimePath answers DASH UTCTiming sources (ISO/IEC 23009-1 5.8.5.7):
	// GET returns the time as xs:dateTime in UTC with milliseconds, which
	// both urn:mpeg:dash:utc:http-iso:2014 and
	// urn:mpeg:dash:utc:http-xsdate:2014 read; HEAD returns the Date field
	// that urn:mpeg:dash:utc:http-head:2014 reads.
	TimePath = Prefix + "time"
	// PlayerPath is a page that plays a DASH stream with dash.js
	// (?src=/path/to/manifest.mpd) and shows how each segment came.
	PlayerPath = Prefix + "player"
)

// ViaHeader is the response field that says how the gateway got what it
// served: client.ViaMulticast, ViaRepair, ViaFallback, or ViaUnicast.
const ViaHeader = "X-H3m-Via"

// ViaUnicast: the gateway fetched it from upstream for this request (it did
// not hold it, or a held segment did not arrive in time).
const ViaUnicast = "unicast"

// UTCTimingScheme is the DASH UTCTiming scheme TimePath answers with GET
// (it answers http-xsdate too: the two formats are the same).
const UTCTimingScheme = "urn:mpeg:dash:utc:http-iso:2014"

// Default Cache-Control values, for responses whose origin sent none.
const (
	// DefaultManifestCacheControl: a live manifest changes in place; a
	// browser revalidates it each time (a 304 when it has not changed).
	DefaultManifestCacheControl = "no-cache"
	// DefaultSegmentCacheControl: a segment (a path matching a hold
	// pattern) never changes under its name while it is in a live window.
	// Short, so that a stream restarted under the same names is not mixed
	// with an earlier run's segments by a browser's cache.
	DefaultSegmentCacheControl = "max-age=60, immutable"
	// DefaultOtherCacheControl: anything else may be updated in place
	// (a new push of the same path); revalidation is cheap.
	DefaultOtherCacheControl = "no-cache"
)

// maxRanges caps the ranges of a request served from the store; a request
// with more is answered whole (RFC 9110 §14.2 lets a server ignore Range),
// so that thousands of tiny ranges cannot cost more than the body.
const maxRanges = 16

// Receiver is what the status page shows of the client that fills the
// store (a *client.Client).
type Receiver interface {
	Stats() client.Stats
	Sessions() []client.SessionInfo
}

// Config configures a Gateway.
type Config struct {
	// Store holds what the receiver delivered.
	Store *Store
	// Upstream is the unicast server, for what the store does not have: its
	// base URL and the transport to reach it (HTTP/3). With none (a session
	// announced elsewhere), what the store does not have is not found.
	Upstream  *url.URL
	Transport http.RoundTripper
	// HoldPatterns are path.Match patterns (matched against the last path
	// element) of live resources whose requests wait for the multicast copy;
	// nil means DefaultHoldPatterns.
	HoldPatterns []string
	// HoldTimeout is how long such a request waits before it is fetched from
	// upstream; 0 means 4 s.
	HoldTimeout time.Duration
	// CORSOrigins are the origins whose pages may read the gateway's
	// responses (AnyOrigin for all); nil means none. See DefaultCORS.
	CORSOrigins []string
	// Cache-Control for responses whose origin sent none: manifests
	// (.mpd, .m3u8), segments (HoldPatterns) and anything else; "" means
	// the Default* value.
	ManifestCacheControl, SegmentCacheControl, OtherCacheControl string
	// DashJSURL is where the player page loads dash.js from; "" means
	// DefaultDashJSURL.
	DashJSURL string
	// Receiver, if set, adds the receiver's sessions and figures to the
	// status page.
	Receiver Receiver
	// OnRequest, if set, is called with the path (decoded) of each player
	// request for content, before it is served: client.Client.Use, which
	// joins the session of the path's channel while players use it
	// (client.Config.ChannelIdle). It returns missed when multicast will
	// not bring path (pushed while the receiver was not joined to its
	// channel): a request for it is then passed upstream at once, not held.
	OnRequest func(path string) (missed bool)
	// Now is the clock (nil: time.Now): TimePath's answer, ages and rates
	// on the status page.
	Now func() time.Time
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger
}

// Gateway is an http.Handler serving the store to players.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	cors    cors
	started time.Time

	served                      map[string]*viaCounter // by Via
	held, heldHit, heldFallback atomic.Uint64
	passthrough, upstreamErrors atomic.Uint64
	notModified, refused        atomic.Uint64

	rates rateMeter

	recentMu sync.Mutex
	recent   []RequestStatus // ring of the last recentRequests requests
	next     int
}

type viaCounter struct{ requests, bytes atomic.Uint64 }

// New returns a gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Store == nil {
		return nil, errors.New("gateway: no store")
	}
	if cfg.Upstream != nil && cfg.Transport == nil {
		return nil, errors.New("gateway: an upstream but no transport to reach it")
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
	setDefault(&cfg.ManifestCacheControl, DefaultManifestCacheControl)
	setDefault(&cfg.SegmentCacheControl, DefaultSegmentCacheControl)
	setDefault(&cfg.OtherCacheControl, DefaultOtherCacheControl)
	setDefault(&cfg.DashJSURL, DefaultDashJSURL)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c, err := newCORS(cfg.CORSOrigins)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, cors: c, started: cfg.Now(), served: map[string]*viaCounter{},
		rates: rateMeter{last: map[string]rateSample{}}}
	for _, v := range []string{client.ViaMulticast, client.ViaRepair, client.ViaFallback, ViaUnicast} {
		g.served[v] = new(viaCounter)
	}
	return g, nil
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
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

// isWellKnown reports whether p is under the origin's well-known h3m
// document, which carries session keys: the gateway serves players over
// plain HTTP and must never pass it on, whatever the case of the letters
// (the origin's or another server's matching may ignore it).
func isWellKnown(p string) bool {
	n := len(wellknown.Path)
	return len(p) >= n && strings.EqualFold(p[:n], wellknown.Path) && (len(p) == n || p[n] == '/')
}

// cleanPath is path.Clean keeping a trailing slash.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w := &meter{Writer: httpmeter.Writer{ResponseWriter: rw}}
	g.cors.apply(w.Header(), r)
	g.serveHTTP(w, r)
	if w.via != "" {
		// Errors (an upstream 404) are no resource served.
		if c := g.served[w.via]; c != nil && w.Status < 400 {
			c.requests.Add(1)
			c.bytes.Add(uint64(w.Bytes))
		}
		if w.Status == http.StatusNotModified {
			g.notModified.Add(1)
		}
		g.remember(RequestStatus{Time: g.cfg.Now(), Method: r.Method, Path: r.URL.Path, Status: w.Status, Via: w.via, Bytes: w.Bytes})
	}
}

func (g *Gateway) serveHTTP(w *meter, r *http.Request) {
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		http.Error(w, "h3m gateway: the request target must be an absolute path", http.StatusBadRequest)
		return
	}
	if c := cleanPath(p); c != p {
		// A player never sends "/a/../b" or "//b"; never hand such a path
		// to the upstream, whose own cleaning could make it another one.
		u := url.URL{Path: c, RawQuery: r.URL.RawQuery}
		http.Redirect(w, r, u.String(), http.StatusPermanentRedirect)
		return
	}
	if r.Method == http.MethodOptions {
		g.cors.preflight(w, r)
		return
	}
	if isWellKnown(p) {
		g.refused.Add(1)
		g.log.Warn("refused a request for the session description: it carries session keys, which only travel over TLS from the origin", "path", p, "remote", r.RemoteAddr)
		http.Error(w, "h3m gateway: "+wellknown.Path+" is not served here: it carries session keys, which only travel over TLS from the origin", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD, OPTIONS")
		http.Error(w, "h3m gateway: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if p+"/" == Prefix || strings.HasPrefix(p, Prefix) {
		g.servePage(w, r)
		return
	}
	missed := false
	if g.cfg.OnRequest != nil {
		missed = g.cfg.OnRequest(p)
	}
	key := p
	if strings.HasSuffix(key, "/") {
		key += "index.html"
	}
	if e, ok := g.cfg.Store.Get(key); ok {
		g.serveEntry(w, r, e)
		return
	}
	if g.holds(p) && !missed {
		g.held.Add(1)
		ctx, cancel := context.WithTimeout(r.Context(), g.cfg.HoldTimeout)
		e, err := g.waitHeld(ctx, key, p)
		cancel()
		if err == nil {
			g.heldHit.Add(1)
			g.serveEntry(w, r, e)
			return
		}
		if r.Context().Err() != nil {
			return // the player gave up
		}
		g.heldFallback.Add(1)
		if errors.Is(err, errMissed) {
			g.log.Info("segment pushed before its channel was joined; fetching it over unicast", "path", p)
		} else {
			g.log.Info("segment not received in time; fetching it over unicast", "path", p, "waited", g.cfg.HoldTimeout)
		}
	} else {
		g.passthrough.Add(1)
	}
	g.proxy(w, r)
}

// holdRecheck is how often a held request of a channel asks OnRequest
// again: it keeps the channel in use while the player waits, and learns
// from the receiver's next catalogue read that the segment was pushed
// before the channel was joined (so will not come by multicast).
const holdRecheck = 250 * time.Millisecond

// errMissed: OnRequest says multicast will not bring the path.
var errMissed = errors.New("gateway: pushed while its channel was not received")

// waitHeld waits for key in the store until ctx ends or, with OnRequest,
// until it reports p missed.
func (g *Gateway) waitHeld(ctx context.Context, key, p string) (*Entry, error) {
	if g.cfg.OnRequest == nil {
		return g.cfg.Store.Wait(ctx, key)
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, holdRecheck)
		e, err := g.cfg.Store.Wait(wctx, key)
		cancel()
		if err == nil || ctx.Err() != nil {
			return e, err
		}
		if g.cfg.OnRequest(p) {
			return nil, errMissed
		}
	}
}

// entrySkip are the fields of a push that do not go to players as they
// are: framing (set by the server for what is actually sent), hop-by-hop
// fields, Alt-Svc (the player talks to the gateway only), Last-Modified
// (from the modification time given to ServeContent), Content-Type (from
// the media type table first).
var entrySkip = map[string]bool{
	"Content-Length": true, "Content-Range": true, "Connection": true, "Transfer-Encoding": true,
	"Keep-Alive": true, "Alt-Svc": true, "Date": true, "Last-Modified": true, "Content-Type": true,
	"Set-Cookie": true,
}

// serveEntry serves a stored resource: GET and HEAD, byte ranges,
// If-Range and conditional requests (http.ServeContent), with the push's
// validators and digests.
func (g *Gateway) serveEntry(w *meter, r *http.Request, e *Entry) {
	h := w.Header()
	for k, v := range e.Header {
		if !entrySkip[http.CanonicalHeaderKey(k)] {
			h[http.CanonicalHeaderKey(k)] = v
		}
	}
	h.Set("Content-Type", g.mediaType(e.Path, e.Header.Get("Content-Type")))
	if h.Get("Cache-Control") == "" {
		h.Set("Cache-Control", g.cacheControl(e.Path))
	}
	// A full response's Content-Digest is the whole representation's
	// digest; say so as Repr-Digest (RFC 9530), which partial responses
	// keep.
	if cd := h.Get("Content-Digest"); cd != "" && h.Get("Repr-Digest") == "" {
		h.Set("Repr-Digest", cd)
	}
	h.Set(ViaHeader, e.Via)
	w.via = e.Via
	modTime := e.ModTime
	if lm, err := http.ParseTime(e.Header.Get("Last-Modified")); err == nil {
		modTime = lm
	}
	if rg := r.Header.Get("Range"); strings.Count(rg, ",") >= maxRanges {
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	http.ServeContent(&digestWriter{meter: w}, r, "", modTime, io.NewSectionReader(e.Body, 0, e.Size))
}

// mediaType is the Content-Type of path: the built-in table's, else the
// origin's, else application/octet-stream. Never the host's MIME database,
// never sniffed.
func (g *Gateway) mediaType(p, origin string) string {
	if t, ok := mediatype.ByName(p); ok {
		return t
	}
	if origin != "" {
		return origin
	}
	return mediatype.Default
}

func (g *Gateway) cacheControl(p string) string {
	switch {
	case mediatype.IsManifest(p):
		return g.cfg.ManifestCacheControl
	case g.holds(p):
		return g.cfg.SegmentCacheControl
	}
	return g.cfg.OtherCacheControl
}

// digestWriter removes what does not describe the content a response
// actually carries: the whole representation's Content-Digest from
// partial and 304 responses (RFC 9530 §2: it covers the content sent), and
// every digest and validator from errors.
type digestWriter struct {
	*meter
	wrote bool
}

func (d *digestWriter) WriteHeader(code int) {
	if !d.wrote {
		d.wrote = true
		h := d.Header()
		switch {
		case code == http.StatusOK:
		case code == http.StatusPartialContent, code == http.StatusNotModified:
			h.Del("Content-Digest")
		default:
			for _, k := range []string{"Content-Digest", "Repr-Digest", "Digest", "Etag", "Last-Modified", "Cache-Control"} {
				h.Del(k)
			}
		}
	}
	d.meter.WriteHeader(code)
}

func (d *digestWriter) Write(p []byte) (int, error) {
	if !d.wrote {
		d.WriteHeader(http.StatusOK)
	}
	return d.meter.Write(p)
}

// proxySkip are the upstream response fields not passed to players.
var proxySkip = map[string]bool{
	"Connection": true, "Transfer-Encoding": true, "Keep-Alive": true, "Alt-Svc": true, "Set-Cookie": true,
}

// proxy fetches r from upstream and copies the response.
func (g *Gateway) proxy(w *meter, r *http.Request) {
	if g.cfg.Upstream == nil {
		http.Error(w, "not received by multicast, and this gateway has no unicast server to ask", http.StatusNotFound)
		return
	}
	w.via = ViaUnicast
	u := *g.cfg.Upstream
	u.Path = r.URL.Path
	u.RawPath = ""
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
		http.Error(w, "h3m gateway: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	h := w.Header()
	for k, v := range resp.Header {
		k = http.CanonicalHeaderKey(k)
		if proxySkip[k] || strings.HasPrefix(k, "Access-Control-") {
			continue
		}
		h[k] = v
	}
	if resp.StatusCode < 300 || resp.StatusCode == http.StatusNotModified {
		if resp.StatusCode != http.StatusNotModified {
			h.Set("Content-Type", g.mediaType(r.URL.Path, resp.Header.Get("Content-Type")))
		}
		if h.Get("Cache-Control") == "" {
			h.Set("Cache-Control", g.cacheControl(r.URL.Path))
		}
	}
	h.Set(ViaHeader, ViaUnicast)
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, resp.Body); err != nil {
		g.log.Debug("copying the upstream response failed", "path", r.URL.Path, "err", err)
	}
}

// meter records what a response was: its status, body bytes and how the
// gateway got it.
type meter struct {
	httpmeter.Writer
	via string
}

// serveTime answers TimePath.
func (g *Gateway) serveTime(w http.ResponseWriter, r *http.Request) {
	now := g.cfg.Now().UTC()
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Date", now.Format(http.TimeFormat))
	body := now.Format("2006-01-02T15:04:05.000Z")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	io.WriteString(w, body)
}
