// Package trace holds the qlog plumbing the origin and the client share:
// quic-go's connection tracer under $QLOGDIR, and the recorders of
// multicast session traces.
package trace

import (
	"context"
	"os"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// DirTracer is the connection tracer of the default QUIC configurations:
// quic-go's, which writes <odcid>_{client,server}.sqlog under $QLOGDIR (the
// QUIC interop runner's convention); nil when QLOGDIR is not set.
func DirTracer() func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	if os.Getenv("QLOGDIR") == "" {
		return nil
	}
	return qlog.DefaultConnectionTracer
}

// Start returns a recorder of the trace tracer gives for a multicast
// session, or nil when there is no tracer or it gives no trace.
func Start(tracer func(sessionID []byte) qlogwriter.Trace, sessionID []byte) qlogwriter.Recorder {
	if tracer == nil {
		return nil
	}
	tr := tracer(sessionID)
	if tr == nil {
		return nil
	}
	return tr.AddProducer()
}

// Close closes a recorder of Start (nil: nothing to close).
func Close(rec qlogwriter.Recorder) {
	if rec != nil {
		rec.Close()
	}
}
