package origin

import (
	"bytes"
	"fmt"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeCounter is a ResponseWriter that counts its Write calls.
type writeCounter struct {
	*httptest.ResponseRecorder
	writes int
}

func (w *writeCounter) Write(p []byte) (int, error) {
	w.writes++
	return w.ResponseRecorder.Write(p)
}

// TestFileServerGathersParts: a repair's multipart/byteranges response of
// 40 lost packets reaches the connection in a few writes, not a write per
// part header and per part (each of which HTTP/3 would send in packets of
// its own); the parts are intact.
func TestFileServerGathersParts(t *testing.T) {
	dir := t.TempDir()
	body := make([]byte, 200_000)
	for i := range body {
		body[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "f.bin"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := NewFileServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var asked []string
	for i := range 40 {
		first := i * 4000
		asked = append(asked, fmt.Sprintf("%d-%d", first, first+1299))
	}
	req := httptest.NewRequest(http.MethodGet, "/f.bin", nil)
	req.Header.Set("Range", "bytes="+strings.Join(asked, ","))
	w := &writeCounter{ResponseRecorder: httptest.NewRecorder()}
	f.ServeHTTP(w, req)
	if w.Code != http.StatusPartialContent {
		t.Fatalf("status %d", w.Code)
	}
	if w.writes > 5 {
		t.Errorf("%d writes for a response of %d bytes in 40 parts", w.writes, w.Body.Len())
	}
	_, params, err := mime.ParseMediaType(w.Header().Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(w.Body, params["boundary"])
	parts := 0
	for ; ; parts++ {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		var first, last, size int
		if _, err := fmt.Sscanf(p.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &size); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		got.ReadFrom(p)
		if !bytes.Equal(got.Bytes(), body[first:last+1]) {
			t.Fatalf("part %d-%d differs", first, last)
		}
	}
	if parts != 40 {
		t.Fatalf("%d parts, want 40", parts)
	}
}
