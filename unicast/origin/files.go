package origin

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/h3m-project/h3m/h3m/integrity"
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
// listings. Paths cannot escape the directory.
type FileServer struct {
	// MaxCached bounds the representations remembered (0:
	// DefaultMaxCached); set it before serving.
	MaxCached int

	root    *os.Root
	digests []string

	mu    sync.Mutex
	cache map[string]cachedRep
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

// fileName maps a request path to a name inside the root.
func fileName(urlPath string) (string, error) {
	if !strings.HasPrefix(urlPath, "/") {
		return "", fmt.Errorf("%q: %w", urlPath, fs.ErrNotExist)
	}
	name := strings.TrimPrefix(path.Clean(urlPath), "/")
	if name == "" {
		name = "."
	}
	return name, nil
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
	http.ServeContent(&digestWriter{ResponseWriter: w}, r, "", rep.ModTime, file)
}

// digestWriter removes the representation fields that do not describe
// what a response actually carries: Content-Digest from partial responses,
// every digest and validator from errors.
type digestWriter struct {
	http.ResponseWriter
	wrote bool
}

func (d *digestWriter) WriteHeader(code int) {
	if !d.wrote {
		d.wrote = true
		h := d.Header()
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
	return d.ResponseWriter.Write(p)
}
