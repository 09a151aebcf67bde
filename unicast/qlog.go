package unicast

import (
	"context"
	"os"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// qlogDirTracer is the connection tracer of the default QUIC
// configurations: quic-go's, which writes <odcid>_{client,server}.sqlog
// under $QLOGDIR (the QUIC interop runner's convention); nil when QLOGDIR
// is not set.
func qlogDirTracer() func(context.Context, bool, quic.ConnectionID) qlogwriter.Trace {
	if os.Getenv("QLOGDIR") == "" {
		return nil
	}
	return qlog.DefaultConnectionTracer
}

// startTrace returns a recorder of the trace tracer gives for a multicast
// session, or nil when there is no tracer or it gives no trace.
func startTrace(tracer func(sessionID []byte) qlogwriter.Trace, sessionID []byte) qlogwriter.Recorder {
	if tracer == nil {
		return nil
	}
	tr := tracer(sessionID)
	if tr == nil {
		return nil
	}
	return tr.AddProducer()
}

// closeTrace closes a recorder of startTrace (nil: nothing to close).
func closeTrace(rec qlogwriter.Recorder) {
	if rec != nil {
		rec.Close()
	}
}
