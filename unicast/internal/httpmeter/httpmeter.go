// Package httpmeter records what an HTTP handler answered: the status and
// the body bytes of its response. The origin counts its responses with it,
// the gateway those it serves to players.
package httpmeter

import (
	"net/http"
	"sync/atomic"
)

// Writer wraps a ResponseWriter and records the response written through
// it.
type Writer struct {
	http.ResponseWriter
	// Status is the final status written (informational 1xx ones are not),
	// 200 once a body is written without one; 0 while nothing is.
	Status int
	// Bytes counts the body bytes written, but those Live takes.
	Bytes int64
	// Live, when set, receives the body bytes of a 200 response as they
	// are written instead of Bytes: a long response (a stream) counted as
	// it goes, not when the handler returns.
	Live *atomic.Uint64
}

// WriteHeader records the status and passes it on.
func (w *Writer) WriteHeader(code int) {
	if w.Status == 0 && code >= 200 {
		w.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write counts p's bytes written.
func (w *Writer) Write(p []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	if w.Live != nil && w.Status == http.StatusOK {
		w.Live.Add(uint64(n))
	} else {
		w.Bytes += int64(n)
	}
	return n, err
}

// Flush passes on to the response writer, so that a streamed response
// reaches its client as it comes.
func (w *Writer) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the response writer.
func (w *Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }
