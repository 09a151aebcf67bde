package origin

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/httpmeter"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// ServeTCP serves the content (Handler) over TLS on ln, with HTTP/2 and
// HTTP/1.1 chosen by ALPN, until Close; it returns ErrServerClosed then.
// It is there for HTTP caches (Server.RepairURLs), most of which cannot
// fetch over HTTP/3: a cache in front of the origin fetches the pushed
// resources from here, and receivers repair through the cache.
//
// Only the content is served here: no Alt-Svc field (it carries session
// keys, which a cache would store and hand to anyone), and no well-known
// description, manifests or keys (404), which receivers fetch from the
// origin itself, over HTTP/3. Close closes ln.
func (s *Server) ServeTCP(ln net.Listener) error {
	if _, err := s.setup(); err != nil {
		ln.Close()
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	handler, _ := s.handlerLocked()
	tc := s.TLSConfig.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	// Caches keep their connections and fetch in bulk: full-size records
	// from the first byte (the small ones that speed a browser's first
	// paint cost a record header every 1.2 kB).
	tc.DynamicRecordSizingDisabled = true
	srv := &http.Server{
		Handler:           contentOnly{s, handler},
		TLSConfig:         tc,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	s.tcp = srv
	s.mu.Unlock()
	s.logger().Info("unicast server listening over TCP (HTTP/2, HTTP/1.1) for caches", "addr", ln.Addr().String())
	return srv.ServeTLS(ln, "", "")
}

// contentOnly serves the content handler and, under wellknown.Path, only
// the signed catalogue entries (which carry no key, and which a cache may
// serve: their signature proves them). Its answers count in the server's
// counters as those over HTTP/3 do.
type contentOnly struct {
	s    *Server
	next http.Handler
}

func (c contentOnly) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := routeOf(r.URL.Path)
	cw := &httpmeter.Writer{ResponseWriter: w}
	defer c.s.counters.count(rt, r.Method, cw)
	defer c.s.logServed(r, cw)
	switch {
	case rt == routeCatalog:
		c.s.serveCatalogEntry(cw, r)
	case r.URL.Path == wellknown.Path || strings.HasPrefix(r.URL.Path, wellknown.Path+"/"):
		http.Error(cw, "the h3m description, manifests and keys are served by the origin over HTTP/3 only", http.StatusNotFound)
	default:
		c.next.ServeHTTP(cw, r)
	}
}
