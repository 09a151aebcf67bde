package origin

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/h3m-project/h3m/h3m/integrity"
	"github.com/h3m-project/h3m/unicast/internal/caplog"
)

// Representation describes one file as the FileServer serves it and the
// Publisher pushes it: both use these exact values, so that a range repair
// taken from the server matches the pushed bytes (If-Range on the ETag) and
// verifies against the pushed digests.
type Representation struct {
	// Path is the request path.
	Path        string
	Size        int64
	ModTime     time.Time
	ContentType string
	// ETag is strong and derived from the content: the unpadded base64url
	// SHA-256 of the bytes, quoted.
	ETag string
	// ContentDigest is the RFC 9530 value over the whole content (also
	// sent as Repr-Digest); Digest the RFC 3230 value.
	ContentDigest string
	Digest        string
}

// Header returns the fields that describe the representation in a full
// (200) response or a push: Content-Type, ETag, Last-Modified,
// Content-Digest, Repr-Digest and Digest.
func (r *Representation) Header() http.Header {
	h := http.Header{}
	if r.ContentType != "" {
		h.Set("Content-Type", r.ContentType)
	}
	h.Set("Etag", r.ETag)
	if !r.ModTime.IsZero() {
		h.Set("Last-Modified", r.ModTime.UTC().Format(http.TimeFormat))
	}
	h.Set(integrity.FieldContentDigest, r.ContentDigest)
	h.Set("Repr-Digest", r.ContentDigest)
	h.Set(integrity.FieldDigest, r.Digest)
	return h
}

// Describe computes the representation of content read from r (size
// bytes, or to EOF when size < 0) and leaves r where it started. name gives
// the Content-Type by extension; without one the content is sniffed.
func Describe(r io.ReadSeeker, name string, size int64, digests []string) (Representation, error) {
	if len(digests) == 0 {
		digests = []string{integrity.DigestSHA256}
	}
	h, err := integrity.NewHasher(append([]string{integrity.DigestSHA256}, digests...)...)
	if err != nil {
		return Representation{}, err
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return Representation{}, err
	}
	var src io.Reader = r
	if size >= 0 {
		src = io.LimitReader(r, size)
	}
	sniff := &sniffer{}
	n, err := io.Copy(io.MultiWriter(h, sniff), src)
	if err != nil {
		return Representation{}, fmt.Errorf("origin: describe %s: %w", name, err)
	}
	if size >= 0 && n != size {
		return Representation{}, fmt.Errorf("origin: describe %s: %d bytes, expected %d", name, n, size)
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return Representation{}, err
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = http.DetectContentType(sniff.b)
	}
	return Representation{
		Path: name, Size: n, ContentType: ct,
		ETag:          `"` + base64.RawURLEncoding.EncodeToString(h.Sum(integrity.DigestSHA256)) + `"`,
		ContentDigest: h.ContentDigest(),
		Digest:        h.Digest(),
	}, nil
}

// sniffer keeps the first 512 bytes written (what DetectContentType reads).
type sniffer struct{ b []byte }

func (s *sniffer) Write(p []byte) (int, error) {
	if room := 512 - len(s.b); room > 0 {
		s.b = append(s.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// FileServer serves the files of a directory over HTTP: GET and HEAD with
// byte ranges (single and multipart/byteranges), If-Range, conditional
// requests, and the fields of its Representation. Content-Digest is sent on
// full responses only (RFC 9530: it covers the content actually sent);
// Repr-Digest and Digest, which cover the whole representation, on partial
// ones too. Representations are computed once per (size, modification
// time) and cached. A directory is served as its index.html; there are no
// listings. Paths cannot escape the directory, and names Excluded (hidden
// files, writers' temporary files) and symbolic links are not found: what
// it serves is what "h3m serve" pushes.
//
// A request with more than MaxRanges ranges is answered with the whole
// representation; the ranges of others are sorted, and overlapping or
// touching ones coalesced, before they are served.
type FileServer struct {
	// MaxRanges caps the ranges of one request served as ranges (0:
	// DefaultMaxRanges). Set it before serving.
	MaxRanges int
	// Logger receives the log line of a cap that bites; nil means
	// slog.Default(). Set it before serving.
	Logger *slog.Logger
	// MaxCached bounds the representations remembered (0:
	// DefaultMaxCached); set it before serving.
	MaxCached int

	root    *os.Root
	digests []string

	mu    sync.Mutex
	cache map[string]cachedRep

	rangesIgnored, rangesCoalesced atomic.Uint64
	responses, partial, bodyBytes  atomic.Uint64
	rangeLog                       caplog.Limit
}

// FileStats are a FileServer's counters.
type FileStats struct {
	// RangesIgnored counts requests answered whole because they asked
	// for more than MaxRanges ranges; RangesCoalesced those whose ranges
	// were sorted and merged.
	RangesIgnored, RangesCoalesced uint64
	// Responses counts the GET responses with content (200 and 206),
	// Partial the 206 among them, and BodyBytes the body bytes they
	// carried: what the origin served over unicast, whichever listener
	// the requests came through.
	Responses, Partial, BodyBytes uint64
}

// Stats returns the server's counters.
func (f *FileServer) Stats() FileStats {
	return FileStats{RangesIgnored: f.rangesIgnored.Load(), RangesCoalesced: f.rangesCoalesced.Load(),
		Responses: f.responses.Load(), Partial: f.partial.Load(), BodyBytes: f.bodyBytes.Load()}
}

type cachedRep struct {
	size    int64
	modTime time.Time
	rep     Representation
}

// NewFileServer serves dir. digests are the digest algorithms of the
// Content-Digest and Digest fields (nil: SHA-256).
func NewFileServer(dir string, digests ...string) (*FileServer, error) {
	for _, d := range digests {
		if _, ok := integrity.CanonicalDigestAlgorithm(d); !ok {
			return nil, fmt.Errorf("origin: file server: unsupported digest algorithm %q", d)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("origin: file server: %w", err)
	}
	return &FileServer{root: root, digests: digests, cache: make(map[string]cachedRep)}, nil
}

// Close releases the directory.
func (f *FileServer) Close() error { return f.root.Close() }

// Open opens the file that serves urlPath and returns it with its
// representation. The caller closes the file. Errors wrap fs.ErrNotExist
// for paths that name nothing servable.
func (f *FileServer) Open(urlPath string) (*os.File, Representation, error) {
	name, err := fileName(urlPath)
	if err != nil {
		return nil, Representation{}, err
	}
	if err := f.noLinks(urlPath, name); err != nil {
		return nil, Representation{}, err
	}
	file, err := f.root.Open(name)
	if err != nil {
		return nil, Representation{}, openErr(urlPath, err)
	}
	st, err := file.Stat()
	if err == nil && st.IsDir() {
		file.Close()
		name = path.Join(name, "index.html")
		if file, err = f.root.Open(name); err != nil {
			return nil, Representation{}, openErr(urlPath, err)
		}
		st, err = file.Stat()
	}
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s: %w (not a regular file)", urlPath, fs.ErrNotExist)
	}
	if err != nil {
		file.Close()
		return nil, Representation{}, err
	}
	rep, err := f.representation(file, st, urlPath)
	if err != nil {
		file.Close()
		return nil, Representation{}, err
	}
	return file, rep, nil
}

func (f *FileServer) representation(file *os.File, st fs.FileInfo, urlPath string) (Representation, error) {
	key := file.Name()
	f.mu.Lock()
	c, ok := f.cache[key]
	f.mu.Unlock()
	if ok && c.size == st.Size() && c.modTime.Equal(st.ModTime()) {
		rep := c.rep
		rep.Path = urlPath
		return rep, nil
	}
	rep, err := Describe(file, file.Name(), st.Size(), f.digests)
	if err != nil {
		return Representation{}, err
	}
	rep.Path, rep.ModTime = urlPath, st.ModTime()
	f.mu.Lock()
	limit := f.MaxCached
	if limit <= 0 {
		limit = DefaultMaxCached
	}
	if len(f.cache) >= limit {
		// A live stream names a new file every few seconds for as long
		// as it runs: forget some (any: each costs one hash to recompute).
		for k := range f.cache {
			delete(f.cache, k)
			if len(f.cache) < limit*3/4 {
				break
			}
		}
	}
	f.cache[key] = cachedRep{size: st.Size(), modTime: st.ModTime(), rep: rep}
	f.mu.Unlock()
	return rep, nil
}

// noLinks refuses a name with a symbolic link on its way: the push set
// ("h3m serve" scans regular files, and links to neither files nor folders)
// has none, and a link inside the folder could name what Excluded keeps
// out (link -> .git/config).
func (f *FileServer) noLinks(urlPath, name string) error {
	if name == "." {
		return nil
	}
	for i := 0; i <= len(name); i++ {
		if i < len(name) && name[i] != '/' {
			continue
		}
		st, err := f.root.Lstat(name[:i])
		if err != nil {
			return openErr(urlPath, err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s: %w (a symbolic link)", urlPath, fs.ErrNotExist)
		}
	}
	return nil
}

// DefaultMaxCached is the default of FileServer.MaxCached.
const DefaultMaxCached = 4096

// openErr reports an open failure as not found unless it is a permission
// problem: names that leave the directory (through ".." or a symbolic
// link), that go through a file, or that loop, name nothing servable.
func openErr(urlPath string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return err
	}
	return fmt.Errorf("%s: %w (%v)", urlPath, fs.ErrNotExist, err)
}

// fileName maps a request path to a name inside the root. A path with an
// Excluded name in it names nothing: hidden files and folders, and the
// temporary files of writers, are never served (nor pushed: the Publisher
// opens files through Open).
func fileName(urlPath string) (string, error) {
	if !strings.HasPrefix(urlPath, "/") {
		return "", fmt.Errorf("%q: %w", urlPath, fs.ErrNotExist)
	}
	name := strings.TrimPrefix(path.Clean(urlPath), "/")
	if name == "" {
		return ".", nil
	}
	for seg := range strings.SplitSeq(name, "/") {
		if Excluded(seg) {
			return "", fmt.Errorf("%q: %w (excluded name %q)", urlPath, fs.ErrNotExist, seg)
		}
	}
	return name, nil
}

// Excluded reports the names (of a file or a folder) that an origin never
// pushes or serves: hidden ones (".git", ".env", a TLS key saved as
// ".key.pem"...) and the temporary names that writers such as packagers
// use before renaming a finished file ("*.tmp", "*.part", "*~"). It is the
// one rule of the push set ("h3m serve" skips these names when it scans
// the folder) and of the FileServer.
func Excluded(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") ||
		strings.HasSuffix(name, ".part") || strings.HasSuffix(name, "~")
}

// CheckOutside refuses files (TLS keys and certificates, signing keys) that
// lie inside dir, which is served to anyone and pushed to every receiver:
// "h3m serve --dir ." with the default --cert and --key would otherwise
// publish the server's private key. Links are followed on both sides; a
// file that does not exist yet is judged by where it would be created.
func CheckOutside(dir string, files ...string) error {
	dirs, err := bothForms(dir)
	if err != nil {
		return fmt.Errorf("origin: %s: %w", dir, err)
	}
	for _, f := range files {
		if f == "" {
			continue
		}
		forms, err := bothForms(f)
		if err != nil {
			return fmt.Errorf("origin: %s: %w", f, err)
		}
		for _, d := range dirs {
			for _, p := range forms {
				if rel, err := filepath.Rel(d, p); err == nil && filepath.IsLocal(rel) {
					return fmt.Errorf("%w: %s is inside the served folder %s; keep keys and certificates elsewhere", ErrServesSecret, f, dir)
				}
			}
		}
	}
	return nil
}

// ErrServesSecret is the error of CheckOutside: a key or certificate in the
// served folder.
var ErrServesSecret = errors.New("origin: refusing to serve a key")

// bothForms returns the absolute path of p and, when it differs, the path
// with links resolved (of p, or of its folder when p does not exist).
func bothForms(p string) ([]string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, fs.ErrNotExist) {
		var dir string
		if dir, err = filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			real = filepath.Join(dir, filepath.Base(abs))
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil || real == abs {
		return []string{abs}, nil
	}
	return []string{abs, real}, nil
}

// ServeHTTP implements http.Handler.
func (f *FileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	file, rep, err := f.Open(r.URL.Path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			http.Error(w, "not found", http.StatusNotFound)
		case errors.Is(err, fs.ErrPermission):
			http.Error(w, "forbidden", http.StatusForbidden)
		default:
			http.Error(w, "cannot read the file", http.StatusInternalServerError)
		}
		return
	}
	defer file.Close()
	for k, v := range rep.Header() {
		w.Header()[k] = v
	}
	if v := r.Header.Get("Range"); v != "" && r.Method == http.MethodGet {
		limit := f.MaxRanges
		if limit <= 0 {
			limit = DefaultMaxRanges
		}
		plan, n, whole, list := planRangeList(v, rep.Size, limit)
		if whole || plan != v {
			r = r.Clone(r.Context())
			if whole {
				r.Header.Del("Range")
				f.rangesIgnored.Add(1)
				log := f.Logger
				if log == nil {
					log = slog.Default()
				}
				f.rangeLog.Bit(log, slog.LevelWarn, "a request asks for too many ranges; serving the whole representation",
					"path", rep.Path, "ranges", n, "max_ranges", limit, "remote", r.RemoteAddr)
			} else {
				r.Header.Set("Range", plan)
				f.rangesCoalesced.Add(1)
			}
		}
		if !whole && len(list) > 1 && plainRangeRequest(r, rep) {
			dw := &digestWriter{ResponseWriter: w, f: f}
			f.serveByteranges(dw, file, rep, list)
			dw.flush()
			return
		}
	}
	dw := &digestWriter{ResponseWriter: w, f: f}
	http.ServeContent(dw, r, "", rep.ModTime, file)
	dw.flush()
}

// responseBuffer is how many bytes of small writes a response gathers
// before it hands them on. A multipart/byteranges response (a receiver's
// repair) is written as a part header then its bytes, a write each; over
// HTTP/3 each write would go out in packets of its own (a lost packet's
// bytes in one packet, the next part's header in a second of 180 bytes).
const responseBuffer = 16 << 10

// plainRangeRequest reports whether r asks for ranges of rep with no
// precondition but an If-Range that names rep's (strong) entity tag: the
// ranges are then served whatever, and serveByteranges can answer without
// http.ServeContent's precondition logic.
func plainRangeRequest(r *http.Request, rep Representation) bool {
	for _, k := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"} {
		if r.Header.Get(k) != "" {
			return false
		}
	}
	ir := r.Header.Get("If-Range")
	return ir == "" || ir == rep.ETag
}

// byterangesBoundary is the length of the boundary of the origin's
// multipart/byteranges answers, in hex digits: 64 random bits, as unlikely
// to occur in the content as net/http's 240.
const byterangesBoundary = 16

// serveByteranges answers a request for several ranges (sorted, apart)
// with a multipart/byteranges body whose parts carry only Content-Range
// (spec/unicast.md, "Repair through caches"): repairs ask for many small
// ranges (the packets lost, about 1.2 kB each), on which net/http's framing
// (a 60-digit boundary, and the representation's Content-Type in every
// part) costs 12 %, a short boundary and no Content-Type about 5 %. The
// parts are of the one representation whose Content-Type the response's
// request already knows (the push, the catalogue), which RFC 9110 section
// 14.6 leaves as a SHOULD.
func (f *FileServer) serveByteranges(w http.ResponseWriter, file io.ReadSeeker, rep Representation, list []byteRange) {
	var rnd [byterangesBoundary / 2]byte
	rand.Read(rnd[:])
	boundary := hex.EncodeToString(rnd[:])
	size := strconv.FormatInt(rep.Size, 10)
	head := func(i int, r byteRange) string {
		sep := "\r\n--"
		if i == 0 {
			sep = "--"
		}
		return sep + boundary + "\r\nContent-Range: bytes " + strconv.FormatInt(r.first, 10) + "-" + strconv.FormatInt(r.last, 10) + "/" + size + "\r\n\r\n"
	}
	tail := "\r\n--" + boundary + "--\r\n"
	length := int64(len(tail))
	for i, r := range list {
		length += int64(len(head(i, r))) + r.last - r.first + 1
	}
	h := w.Header()
	h.Set("Content-Type", "multipart/byteranges; boundary="+boundary)
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	h.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusPartialContent)
	bw := bufio.NewWriterSize(w, 32<<10)
	for i, r := range list {
		bw.WriteString(head(i, r))
		if _, err := file.Seek(r.first, io.SeekStart); err != nil {
			return // the connection ends short: the client sees a truncated body
		}
		if _, err := io.CopyN(bw, file, r.last-r.first+1); err != nil {
			return
		}
	}
	bw.WriteString(tail)
	bw.Flush()
}

// digestWriter removes the representation fields that do not describe
// what a response actually carries: Content-Digest from partial responses,
// every digest and validator from errors.
type digestWriter struct {
	http.ResponseWriter
	f       *FileServer // counts the content served
	wrote   bool
	content bool   // a 200 or 206: its body bytes are counted
	buf     []byte // small writes not yet handed on (responseBuffer)
}

func (d *digestWriter) WriteHeader(code int) {
	if !d.wrote {
		d.wrote = true
		h := d.Header()
		switch code {
		case http.StatusOK, http.StatusPartialContent:
			d.content = true
			d.f.responses.Add(1)
			if code == http.StatusPartialContent {
				d.f.partial.Add(1)
			}
		}
		switch {
		case code == http.StatusOK:
		case code == http.StatusPartialContent, code == http.StatusNotModified:
			h.Del(integrity.FieldContentDigest)
		default:
			for _, k := range []string{integrity.FieldContentDigest, "Repr-Digest", integrity.FieldDigest, "Etag", "Last-Modified"} {
				h.Del(k)
			}
		}
	}
	d.ResponseWriter.WriteHeader(code)
}

func (d *digestWriter) Write(p []byte) (int, error) {
	if !d.wrote {
		d.WriteHeader(http.StatusOK)
	}
	if len(d.buf)+len(p) > responseBuffer {
		if err := d.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= responseBuffer {
		return d.write(p)
	}
	if d.buf == nil {
		d.buf = make([]byte, 0, responseBuffer)
	}
	d.buf = append(d.buf, p...)
	return len(p), nil
}

// flush hands on the bytes gathered.
func (d *digestWriter) flush() error {
	if len(d.buf) == 0 {
		return nil
	}
	_, err := d.write(d.buf)
	d.buf = d.buf[:0]
	return err
}

func (d *digestWriter) write(p []byte) (int, error) {
	n, err := d.ResponseWriter.Write(p)
	if d.content {
		d.f.bodyBytes.Add(uint64(n))
	}
	return n, err
}
