package origin

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/unicast/internal/httpmeter"
	"github.com/h3m-project/h3m/unicast/internal/trace"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Server is the unicast HTTP/3 server of h3m: it serves Handler (by
// default the files under Root) over quic-go's HTTP/3 with TLS, advertises
// the live sessions of Sessions in an Alt-Svc field on every response, and
// describes Sessions and Catalog at wellknown.Path. It also serves the signed
// manifests of asymmetric sessions (wellknown.ManifestsPath) and the public keys of
// resource signatures (wellknown.KeysPath).
//
// Session keys are in the Alt-Svc field and the description, so both are
// only ever sent over TLS: ServeHTTP leaves them out of any request that did
// not come over TLS.
type Server struct {
	// Addr is the UDP address to listen on, e.g. "127.0.0.1:4433".
	Addr string
	// Handler serves everything but wellknown.Path. Nil means a FileServer
	// over Root.
	Handler http.Handler
	// Root is the directory served when Handler is nil.
	Root string
	// TLSConfig must hold a certificate (see LoadOrCreateCertificate).
	TLSConfig *tls.Config
	// QUICConfig tunes the QUIC connections; nil means quic-go's defaults,
	// with qlog traces of every connection under $QLOGDIR when that is set
	// (<odcid>_server.sqlog, quic-go's qlog.DefaultConnectionTracer), and
	// no path MTU discovery when RepairURLs lists caches.
	QUICConfig *quic.Config
	// Sessions are the sessions to advertise; nil advertises none.
	Sessions *Sessions
	// Catalog lists recently pushed resources; nil lists none.
	Catalog *Catalog
	// Manifests holds the signed manifests of asymmetric sessions, served
	// at wellknown.ManifestsPath; nil serves none.
	Manifests *Manifests
	// Keys are the public keys of resource signatures, served at wellknown.KeysPath
	// and listed in the description; nil publishes none.
	Keys *Keys
	// RepairURLs are listed in the description (wellknown.Description's
	// RepairURLs): the base URLs of the caches that receivers repair and
	// fall back through, nearest first. Check them with
	// wellknown.ParseRepairURL; nil lists none.
	RepairURLs []string
	// TCPAddr, when set, is a TCP address on which ListenAndServe also
	// serves the content over TLS with HTTP/2 and HTTP/1.1, for the caches
	// of RepairURLs to fetch from (ServeTCP).
	TCPAddr string
	// CatalogKey signs the catalogue entries served alone at
	// wellknown.CatalogPath, whose public key the description lists; nil
	// means a key made for the server's life. Caches may store and serve
	// those entries: the signature proves them to receivers.
	CatalogKey ed25519.PrivateKey
	// Logger receives logs; nil means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	h3      *http3.Server
	conn    net.PacketConn // opened by ListenAndServe
	files   *FileServer
	handler http.Handler
	closed  bool

	counters serverCounters
	tcp      *http.Server // ServeTCP's, closed with the server
}

// ErrServerClosed is returned by Serve and ListenAndServe after Close.
var ErrServerClosed = http.ErrServerClosed

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// setup builds the HTTP/3 server once.
func (s *Server) setup() (*http3.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrServerClosed
	}
	if s.h3 != nil {
		return s.h3, nil
	}
	if s.TLSConfig == nil || (len(s.TLSConfig.Certificates) == 0 && s.TLSConfig.GetCertificate == nil && s.TLSConfig.GetConfigForClient == nil) {
		return nil, errors.New("origin: server: TLSConfig with a certificate is required")
	}
	if _, err := s.handlerLocked(); err != nil {
		return nil, err
	}
	qc := s.QUICConfig
	if qc == nil {
		qc = &quic.Config{Tracer: trace.DirTracer()}
		// With caches listed, the receivers' connections here carry the
		// description, keys and a few reads, and the bulk goes through
		// the caches: the MTU probes (five or six packets of up to 1.4 kB
		// each way) would cost each receiver more than larger packets
		// save it.
		qc.DisablePathMTUDiscovery = len(s.RepairURLs) > 0
	}
	tc := s.TLSConfig.Clone()
	if len(s.RepairURLs) > 0 {
		// No TLS session tickets: h3m's client keeps no session cache (a
		// receiver holds one connection for its life), so a ticket is
		// never presented, and each receiver's handshake would carry
		// 0.2 kB for nothing — with caches listed, the receivers'
		// connections are most of what the origin sends over HTTP/3.
		tc.SessionTicketsDisabled = true
	}
	s.h3 = &http3.Server{
		Addr:       s.Addr,
		TLSConfig:  http3.ConfigureTLSConfig(tc),
		QUICConfig: qc,
		Handler:    s,
		Logger:     s.Logger,
	}
	return s.h3, nil
}

// handlerLocked returns the content handler, opening Root the first time.
func (s *Server) handlerLocked() (http.Handler, error) {
	if s.handler != nil {
		return s.handler, nil
	}
	if s.Handler != nil {
		s.handler = s.Handler
		return s.handler, nil
	}
	if s.Root == "" {
		return nil, errors.New("origin: server: neither Handler nor Root is set")
	}
	fsrv, err := NewFileServer(s.Root)
	if err != nil {
		return nil, err
	}
	s.files, s.handler = fsrv, fsrv
	return s.handler, nil
}

// ListenAndServe listens on Addr (UDP) and serves until ctx ends or Close
// is called; then it returns nil.
func (s *Server) ListenAndServe(ctx context.Context) error {
	if s.Addr == "" {
		return errors.New("origin: server: Addr is required")
	}
	conn, err := net.ListenPacket("udp", s.Addr)
	if err != nil {
		return fmt.Errorf("origin: server: %w", err)
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	tcpDone := make(chan error, 1)
	if s.TCPAddr != "" {
		ln, err := net.Listen("tcp", s.TCPAddr)
		if err != nil {
			s.Close()
			return fmt.Errorf("origin: server: %w", err)
		}
		go func() { tcpDone <- s.ServeTCP(ln) }()
	} else {
		tcpDone <- nil
	}
	err = s.Serve(conn)
	s.Close()
	if terr := <-tcpDone; terr != nil && !errors.Is(terr, ErrServerClosed) && (err == nil || errors.Is(err, ErrServerClosed)) {
		err = terr
	}
	if errors.Is(err, ErrServerClosed) {
		return nil
	}
	return err
}

// Serve serves HTTP/3 on conn until Close. Close does not close a conn
// given here.
func (s *Server) Serve(conn net.PacketConn) error {
	h3, err := s.setup()
	if err != nil {
		return err
	}
	s.logger().Info("unicast server listening", "addr", conn.LocalAddr().String())
	return h3.Serve(conn)
}

// Close stops the server: open connections are closed at once. The socket
// ListenAndServe opened is closed too.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	h3, conn, files, tcp := s.h3, s.conn, s.files, s.tcp
	s.mu.Unlock()
	var errs []error
	if tcp != nil {
		errs = append(errs, tcp.Close())
	}
	if h3 != nil {
		errs = append(errs, h3.Close())
	}
	if conn != nil {
		errs = append(errs, conn.Close())
	}
	if files != nil {
		errs = append(errs, files.Close())
	}
	return errors.Join(errs...)
}

// LocalAddr returns the address ListenAndServe listens on (nil before).
func (s *Server) LocalAddr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	return s.conn.LocalAddr()
}

// ServeHTTP handles one request: the Alt-Svc field, the well-known
// description, and Handler for everything else. It can also be mounted on
// an HTTPS (TCP) server; over plain HTTP it never sends session keys.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := routeOf(r.URL.Path)
	// Manifest streams last long: their bytes are counted as they go.
	cw := &httpmeter.Writer{ResponseWriter: w}
	if rt == routeManifests {
		cw.Live = &s.counters.manifestBytes
	}
	defer s.counters.count(rt, r.Method, cw)
	defer s.logServed(r, cw)
	s.serveHTTP(cw, r, rt)
}

// logServed is the access log, at debug level: what each receiver and
// cache costs the origin, request by request. Defer it: it reads what w
// recorded.
func (s *Server) logServed(r *http.Request, w *httpmeter.Writer) {
	if log := s.logger(); log.Enabled(r.Context(), slog.LevelDebug) {
		log.Debug("served", "method", r.Method, "target", r.URL.RequestURI(), "range", r.Header.Get("Range"),
			"status", w.Status, "bytes", w.Bytes, "proto", r.Proto, "remote", r.RemoteAddr)
	}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request, rt route) {
	s.mu.Lock()
	handler, herr := s.handlerLocked()
	s.mu.Unlock()
	secure := r.TLS != nil
	// The description lists the sessions' alt-values in its body: the
	// field would repeat them (a few hundred bytes, keys included) on
	// every poll of every receiver.
	if secure && rt != routeDescription {
		if v := s.Sessions.AltSvc(time.Now()); v != "" {
			w.Header().Set("Alt-Svc", v)
		}
	}
	switch rt {
	case routeDescription:
		s.serveDescription(w, r, secure)
		return
	case routeManifests:
		s.serveManifests(w, r, secure)
		return
	case routeKeys:
		s.serveKey(w, r, secure)
		return
	case routeCatalog:
		s.serveCatalogEntry(w, r)
		return
	}
	if herr != nil {
		s.logger().Error("unicast server has no content handler", "err", herr)
		http.Error(w, "no content", http.StatusInternalServerError)
		return
	}
	handler.ServeHTTP(w, r)
}

func (s *Server) serveDescription(w http.ResponseWriter, r *http.Request, secure bool) {
	w.Header().Set("Cache-Control", "no-store")
	if !secure {
		http.Error(w, "the h3m description carries session keys and is only served over TLS", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	d := s.description()
	if v := r.URL.Query().Get(wellknown.ResourcesAfterParam); v != "" {
		after, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			http.Error(w, wellknown.ResourcesAfterParam+": want an RFC 3339 time", http.StatusBadRequest)
			return
		}
		// Only what was pushed since: receivers poll often, and the whole
		// catalogue each time would cost more than the content.
		kept := d.Resources[:0]
		for _, e := range d.Resources {
			if !e.Pushed.Before(after) {
				kept = append(kept, e)
			}
		}
		d.Resources, d.ResourcesAfter = kept, after
	} else if v := r.URL.Query().Get(wellknown.ResourcesFromParam); v != "" {
		from, err := strconv.ParseUint(v, 10, 64)
		if v == wellknown.ResourcesFromNext {
			from, err = math.MaxUint64, nil
		}
		if err != nil || from == math.MaxUint64 && v != wellknown.ResourcesFromNext {
			http.Error(w, wellknown.ResourcesFromParam+": want an entry number or "+wellknown.ResourcesFromNext, http.StatusBadRequest)
			return
		}
		// What was added since the reader's last read, and nothing it
		// had: the document stays the same (a 304) while nothing is.
		entries, next, whole := s.Catalog.ListFrom(from)
		d.Resources, d.CatalogNext = entries, next
		if d.Resources == nil {
			d.Resources = []wellknown.CatalogEntry{}
		}
		if !whole {
			d.ResourcesFrom = min(from, next)
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		s.logger().Error("describing sessions", "err", err)
		http.Error(w, "cannot describe the sessions", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("Vary", "Accept-Encoding")
	// The entity tag names the document's bytes (of the query asked): a
	// receiver that has them is answered 304 with no body (spec
	// unicast.md, "Reading the description").
	gz := len(b) > 1024 && acceptsGzip(r)
	etag := descriptionETag(b, gz)
	w.Header().Set("Etag", etag)
	if etagMatch(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified) // counted by the server's counters
		return
	}
	if gz {
		// Catalogues repeat their keys and session IDs: gzip takes them
		// to a fraction, and receivers poll every second.
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(b)
		zw.Close()
		b = zb.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}

// descriptionETag is the strong entity tag of a description document of
// bytes b, served gzipped or not (each coding is its own representation).
func descriptionETag(b []byte, gz bool) string {
	sum := sha256.Sum256(b)
	tag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18])
	if gz {
		tag += "-gz"
	}
	return tag + `"`
}

// etagMatch reports whether If-None-Match values name etag (weak
// comparison, RFC 9110 section 13.1.2).
func etagMatch(values []string, etag string) bool {
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
			if t == "*" || t == etag {
				return true
			}
		}
	}
	return false
}

// describe builds the document for the current sessions and catalogue.
func describe(sessions *Sessions, catalog *Catalog) *wellknown.Description {
	d := &wellknown.Description{Version: wellknown.Version, Sessions: []wellknown.SessionInfo{}, Resources: []wellknown.CatalogEntry{}}
	if sessions != nil {
		for _, s := range sessions.List() {
			d.Sessions = append(d.Sessions, wellknown.SessionInfo{
				ID: s.ID, State: s.State, AltSvc: s.Advertisement.String(),
				Successor: s.Successor, Predecessor: s.Predecessor,
				Announced: s.Announced, Started: s.Started, Ended: s.Ended, Expires: s.Expires,
				Channel: s.Channel,
			})
		}
	}
	if catalog != nil {
		entries, next, _ := catalog.ListFrom(0)
		d.Resources, d.CatalogNext = append(d.Resources, entries...), next
	}
	return d
}

// description is the document the server serves: describe, with the
// manifest paths and the keys.
func (s *Server) description() *wellknown.Description {
	d := describe(s.Sessions, s.Catalog)
	for i := range d.Sessions {
		if s.Manifests.Has(d.Sessions[i].ID) {
			d.Sessions[i].Manifests = wellknown.ManifestPath(d.Sessions[i].ID)
		}
	}
	d.Keys = s.Keys.List()
	d.RepairURLs = s.RepairURLs
	if s.Catalog != nil {
		d.CatalogKey = wellknown.EncodeCatalogKey(s.catalogKey().Public().(ed25519.PublicKey))
	}
	return d
}

// catalogKey returns the key that signs catalogue entries, made the first
// time when CatalogKey is nil.
func (s *Server) catalogKey() ed25519.PrivateKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.CatalogKey == nil {
		_, key, err := ed25519.GenerateKey(nil)
		if err != nil {
			panic(fmt.Sprintf("origin: making the catalogue key: %v", err)) // crypto/rand does not fail
		}
		s.CatalogKey = key
	}
	return s.CatalogKey
}

// serveCatalogEntry serves one catalogue entry, signed, at
// wellknown.CatalogEntryPath or CatalogStreamEntryPath: an immutable
// document (a push ID, or a stream ID, names one push of a session), which
// caches may keep while the catalogue does, so
// that receivers that need an entry ask their cache, not the origin
// (spec/unicast.md, "Signed catalogue entries"). It carries no key and is
// served over TCP too.
func (s *Server) serveCatalogEntry(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ref, ok := wellknown.ParseCatalogEntryRef(r.URL.Path)
	var e wellknown.CatalogEntry
	if ok && s.Catalog != nil {
		e, ok = s.Catalog.EntryOf(ref)
	}
	if !ok {
		// Not listed (yet): a cache must not keep the answer.
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "no such catalogue entry", http.StatusNotFound)
		return
	}
	b, err := wellknown.SignCatalogEntry(s.catalogKey(), &e)
	if err != nil {
		s.logger().Error("signing a catalogue entry", "err", err)
		http.Error(w, "cannot sign the entry", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d, immutable", int(s.Catalog.maxAge().Seconds())))
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(b)
}

// acceptsGzip reports whether the request accepts the gzip content coding.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, c := range strings.Split(v, ",") {
			name, q, _ := strings.Cut(strings.TrimSpace(c), ";")
			if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
				return true
			}
		}
	}
	return false
}
