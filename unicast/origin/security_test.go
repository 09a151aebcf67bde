package origin_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// TestNeverServesOrPushesExcluded: hidden files and folders (/.git/config,
// /.env) and writers' temporary files are neither served over HTTP/3 nor
// pushed; a name that needs escaping is pushed and listed under its
// escaped target and served under it.
func TestNeverServesOrPushesExcluded(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1})
	for name, content := range map[string]string{
		".git/config": "[remote]", ".env": "SECRET=1", "sub/.hidden": "h", ".dir/x.bin": "x",
		"a.tmp": "t", "b.part": "p", "c~": "c", "a b.txt": "spaced",
	} {
		p := filepath.Join(h.Dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink(".git/config", filepath.Join(h.Dir, "config.txt")) // a link inside the folder to a hidden file
	os.Symlink(".git", filepath.Join(h.Dir, "git"))
	hc := h.HTTPClient()
	base := "https://" + h.Addr
	excluded := []string{"/.git/config", "/.env", "/sub/.hidden", "/.dir/x.bin", "/a.tmp", "/b.part", "/c~", "/config.txt", "/git/config", "/.git/", "/sub/../.env"}
	for _, p := range excluded {
		if resp, body := fetch(t, hc, "GET", base+p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, %q", p, resp.Status, body)
		}
	}
	if resp, body := fetch(t, hc, "GET", base+"/a%20b.txt", nil); resp.StatusCode != 200 || string(body) != "spaced" {
		t.Errorf("GET /a%%20b.txt: %s, %q", resp.Status, body)
	}

	if _, err := h.Pub.Start(unicasttest.Ad(t, "excluded")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range excluded[:9] {
		if e, err := h.Pub.PushFile(ctx, p); err == nil {
			t.Errorf("%s pushed: %+v", p, e)
		}
	}
	e, err := h.Pub.PushFile(ctx, "/a b.txt")
	if err != nil || e.Path != "/a%20b.txt" {
		t.Errorf("push /a b.txt: listed as %q, %v", e.Path, err)
	}
	if _, err := h.Pub.Push(ctx, &origin.Content{Path: "@evil:443/../x", Header: http.Header{}, Body: nil}); err == nil {
		t.Error("pushed a path receivers refuse")
	}
	for _, e := range h.Catalog.List() {
		if e.Path != "/a%20b.txt" {
			t.Errorf("catalogue lists %q", e.Path)
		}
	}
}

// TestCheckOutside: keys and certificates inside the served folder are
// refused, through links too, before they exist as well.
func TestCheckOutside(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "key.pem"), []byte("k"), 0o600)
	os.WriteFile(filepath.Join(other, "key.pem"), []byte("k"), 0o600)
	os.Symlink(dir, filepath.Join(other, "served"))
	os.Symlink(filepath.Join(dir, "key.pem"), filepath.Join(other, "link.pem"))
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	for _, f := range []string{filepath.Join(dir, "key.pem"), "key.pem", "new-key.pem", filepath.Join(dir, "sub", "..", "x.pem"),
		filepath.Join(other, "served", "key.pem"), filepath.Join(other, "link.pem"), filepath.Join(dir, "missing", "k.pem")} {
		if err := origin.CheckOutside(".", f); !errors.Is(err, origin.ErrServesSecret) {
			t.Errorf("%s inside the folder accepted: %v", f, err)
		}
		if err := origin.CheckOutside(filepath.Join(other, "served"), f); !errors.Is(err, origin.ErrServesSecret) {
			t.Errorf("%s inside the folder (named through a link) accepted: %v", f, err)
		}
	}
	for _, f := range []string{filepath.Join(other, "key.pem"), filepath.Join(other, "new.pem"), ""} {
		if err := origin.CheckOutside(dir, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := origin.New(origin.Config{Dir: dir, Addr: "127.0.0.1:0", PrivateFiles: []string{"key.pem"}}); !errors.Is(err, origin.ErrServesSecret) {
		t.Errorf("origin.New with its key in the folder: %v", err)
	}
}

// TestRangeCap: a request with 60,000 one-byte ranges of a 200 kB file is
// answered with the whole file (not 60,000 multipart parts), overlapping
// and touching ranges are served as one, and ordinary ranges as asked.
func TestRangeCap(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1, MinSize: 200_000, MaxSize: 200_000, Seed: 51})
	hc, url := h.HTTPClient(), "https://"+h.Addr+h.Paths[0]
	content := h.Content[h.Paths[0]]
	var sb strings.Builder
	sb.WriteString("bytes=")
	for i := range 60_000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, "%d-%d", 3*i, 3*i)
	}
	resp, body := fetch(t, hc, "GET", url, http.Header{"Range": {sb.String()}})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Errorf("60,000 ranges: %s, %d bytes (%s)", resp.Status, len(body), resp.Header.Get("Content-Type"))
	}
	resp, body = fetch(t, hc, "GET", url, http.Header{"Range": {"bytes=150-199, 0-99,50-149"}})
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != "bytes 0-199/200000" || !bytes.Equal(body, content[:200]) {
		t.Errorf("overlapping ranges: %s, %q, %d bytes", resp.Status, resp.Header.Get("Content-Range"), len(body))
	}
	resp, body = fetch(t, hc, "GET", url, http.Header{"Range": {"bytes=1000-1009,-10"}})
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusPartialContent || mt != "multipart/byteranges" {
		t.Errorf("two ranges: %s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if resp, _ := fetch(t, hc, "GET", url, http.Header{"Range": {"bytes=300000-"}}); resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("unsatisfiable range: %s", resp.Status)
	}
	_ = body
	if st := h.Files.Stats(); st.RangesIgnored != 1 || st.RangesCoalesced != 2 {
		t.Errorf("stats: %+v", st)
	}
}

// TestManifestStreamsPerClient: one client (one source address) cannot
// hold every manifest stream: past MaxStreamsPerClient it gets 503, and a
// client from another address still gets one.
func TestManifestStreamsPerClient(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1})
	const id = "0a0b"
	h.Manifests.Open(id, manifest.DigestSHA256)
	url := "https://" + h.Addr + wellknown.ManifestPath(id)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(hc *http.Client) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp.StatusCode
	}
	hc := h.HTTPClient()
	for i := range origin.DefaultMaxManifestStreamsPerClient {
		if code := open(hc); code != http.StatusOK {
			t.Fatalf("stream %d: %d", i, code)
		}
	}
	if code := open(hc); code != http.StatusServiceUnavailable {
		t.Errorf("stream %d of one client: %d, want 503", origin.DefaultMaxManifestStreamsPerClient+1, code)
	}
	if code := open(clientFrom(t, h, "127.0.0.2")); code != http.StatusOK {
		t.Errorf("a stream of another client: %d", code)
	}
	if st, _ := h.Manifests.Stats(id); st.StreamsRefused != 1 || st.StreamsServing != origin.DefaultMaxManifestStreamsPerClient+1 {
		t.Errorf("stats: %+v", st)
	}
}

// clientFrom returns an HTTP/3 client of h whose connections come from
// local address ip.
func clientFrom(t *testing.T, h *origintest.Harness, ip string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(h.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			conn, err := net.ListenPacket("udp", ip+":0")
			if err != nil {
				return nil, err
			}
			raddr, err := net.ResolveUDPAddr("udp", addr)
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { conn.Close() })
			return quic.DialEarly(ctx, conn, raddr, tlsCfg, cfg)
		},
	}
	t.Cleanup(func() { tr.Close() })
	return &http.Client{Transport: tr}
}

// TestByteranges: several ranges come as a multipart/byteranges body with
// a short boundary and only Content-Range in each part, which a standard
// multipart reader reads; with a precondition the answer is net/http's
// (an If-Range for another version: the whole representation).
func TestByteranges(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1, MinSize: 100_000, MaxSize: 100_000, Seed: 52})
	hc, url := h.HTTPClient(), "https://"+h.Addr+h.Paths[0]
	content := h.Content[h.Paths[0]]
	want := [][2]int{{10, 1158}, {5000, 6148}, {99_990, 99_999}}
	resp, body := fetch(t, hc, "GET", url, http.Header{"Range": {"bytes=5000-6148,10-1158,-10"}})
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode != http.StatusPartialContent || err != nil || mt != "multipart/byteranges" || len(params["boundary"]) != 16 {
		t.Fatalf("three ranges: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			if i != len(want) {
				t.Errorf("%d parts, want %d", i, len(want))
			}
			break
		}
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		b, _ := io.ReadAll(p)
		w := want[i]
		if cr := p.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/100000", w[0], w[1]) || !bytes.Equal(b, content[w[0]:w[1]+1]) || len(p.Header) != 1 {
			t.Errorf("part %d: %q, fields %v, %d bytes", i, cr, p.Header, len(b))
		}
	}
	if framing := len(body) - (1149 + 1149 + 10); framing > 240 { // net/http: about 3 × 150
		t.Errorf("multipart framing of %d bytes for 3 parts", framing)
	}
	resp, body = fetch(t, hc, "GET", url, http.Header{"Range": {"bytes=0-9,20-29"}, "If-Range": {`"other"`}})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Errorf("If-Range of another version: %s, %d bytes", resp.Status, len(body))
	}
	etag := resp.Header.Get("Etag")
	resp, _ = fetch(t, hc, "GET", url, http.Header{"Range": {"bytes=0-9,20-29"}, "If-None-Match": {etag}})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match of the current version: %s", resp.Status)
	}
	resp, _ = fetch(t, hc, "GET", url, http.Header{"Range": {"bytes=0-9,20-29"}, "If-Range": {etag}})
	if resp.StatusCode != http.StatusPartialContent {
		t.Errorf("If-Range of the current version: %s", resp.Status)
	}
}
