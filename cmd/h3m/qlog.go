package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"
)

// qlogFlag registers --qlog-dir of a command in role ("sender" or
// "receiver"); it defaults to $QLOGDIR (the QUIC interop runner's
// convention).
func qlogFlag(fs *flag.FlagSet, p *string, role string) {
	conn := "server"
	if role == "receiver" {
		conn = "client"
	}
	fs.StringVar(p, "qlog-dir", os.Getenv("QLOGDIR"), fmt.Sprintf(
		"write qlog traces into this folder (default $QLOGDIR, \"\" for none): <session-id>_mcast_%s.sqlog for each multicast session, <odcid>_%s.sqlog for each unicast QUIC connection",
		role, conn))
}

// qlogSetup prepares the qlog traces of a run into dir and returns the
// multicast session tracer of role ("sender" or "receiver"), or nil when
// dir is empty. It points QLOGDIR at dir, which the unicast server's and
// client's QUIC connections trace into (origin.Server.QUICConfig).
func qlogSetup(dir, role string, log *slog.Logger) (func(sessionID []byte) qlogwriter.Trace, error) {
	if dir == "" {
		// --qlog-dir "" turns the unicast traces off too.
		return nil, os.Unsetenv("QLOGDIR")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--qlog-dir: %w", err)
	}
	if os.Getenv("QLOGDIR") != dir {
		if err := os.Setenv("QLOGDIR", dir); err != nil {
			return nil, err
		}
	}
	isClient := role == "receiver"
	return func(sessionID []byte) qlogwriter.Trace {
		f, err := createTraceFile(dir, fmt.Sprintf("%x_mcast_%s", sessionID, role))
		if err != nil {
			log.Error("qlog trace not written", "err", err)
			return nil
		}
		log.Info("qlog trace", "session", fmt.Sprintf("%x", sessionID), "file", f.f.Name())
		fs := qlogwriter.NewConnectionFileSeq(f, isClient, quic.ConnectionIDFromBytes(sessionID))
		go fs.Run()
		return fs
	}, nil
}

// createTraceFile creates dir/name.sqlog, or dir/name-2.sqlog, -3, ... when
// it exists (a session joined again gets a trace of its own).
func createTraceFile(dir, name string) (*traceFile, error) {
	for i := 1; i <= 100; i++ {
		p := filepath.Join(dir, name+".sqlog")
		if i > 1 {
			p = filepath.Join(dir, fmt.Sprintf("%s-%d.sqlog", name, i))
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &traceFile{w: bufio.NewWriterSize(f, 64<<10), f: f}, nil
	}
	return nil, fmt.Errorf("qlog: %s: 100 traces of this session already", filepath.Join(dir, name))
}

// traceFile is a buffered trace file; Close flushes it.
type traceFile struct {
	w *bufio.Writer
	f *os.File
}

func (t *traceFile) Write(p []byte) (int, error) { return t.w.Write(p) }

func (t *traceFile) Close() error {
	return errors.Join(t.w.Flush(), t.f.Close())
}

// qlogQUICConfig is the QUIC configuration of a quic-go client the
// unicast package does not build (the gateway's upstream): traces under
// QLOGDIR when set, quic-go's defaults otherwise.
func qlogQUICConfig() *quic.Config {
	if os.Getenv("QLOGDIR") == "" {
		return nil
	}
	return &quic.Config{Tracer: qlog.DefaultConnectionTracer}
}
