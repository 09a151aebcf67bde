package httpmeter

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// sink is a ResponseWriter that takes everything.
type sink struct{ h http.Header }

func (s *sink) Header() http.Header {
	if s.h == nil {
		s.h = http.Header{}
	}
	return s.h
}
func (*sink) Write(p []byte) (int, error) { return len(p), nil }
func (*sink) WriteHeader(int)             {}

func TestWriter(t *testing.T) {
	w := &Writer{ResponseWriter: &sink{}}
	w.WriteHeader(http.StatusEarlyHints) // informational: not the status
	w.WriteHeader(http.StatusPartialContent)
	w.Write([]byte("abc"))
	w.Flush()
	if w.Status != http.StatusPartialContent || w.Bytes != 3 {
		t.Fatalf("status %d, %d bytes", w.Status, w.Bytes)
	}

	var live atomic.Uint64
	w = &Writer{ResponseWriter: httptest.NewRecorder(), Live: &live}
	w.Write([]byte("hello")) // 200 implied: live
	if w.Status != http.StatusOK || w.Bytes != 0 || live.Load() != 5 {
		t.Fatalf("status %d, %d bytes, %d live", w.Status, w.Bytes, live.Load())
	}
	w = &Writer{ResponseWriter: httptest.NewRecorder(), Live: &live}
	w.WriteHeader(http.StatusNotFound)
	w.Write([]byte("no")) // not a 200: counted at the end
	if w.Bytes != 2 || live.Load() != 5 {
		t.Fatalf("%d bytes, %d live", w.Bytes, live.Load())
	}
}
