// Command stubrecv is a stand-in receiver for developing the interop
// runner before `h3m receive` exists: it follows the endpoint contract
// (ROLE, TESTCASE, URL, CERTS, IFACE, DOWNLOADS) with the unicast
// package's client and writes each delivery under DOWNLOADS.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/h3m-project/h3m/unicast"
)

func main() {
	if os.Getenv("ROLE") != "receiver" || os.Getenv("TESTCASE") == "dash" || len(os.Getenv("TESTCASE")) > 12 && os.Getenv("TESTCASE")[:12] == "unsupported-" {
		os.Exit(127)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	out := os.Getenv("DOWNLOADS")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	failed := false
	c, err := unicast.NewClient(unicast.ClientConfig{
		URL: os.Getenv("URL"), CAFile: filepath.Join(os.Getenv("CERTS"), "ca.pem"),
		Interface: os.Getenv("IFACE"), ExitOnEnd: true, CatchUp: true, Logger: log,
		FallbackAfter: time.Second,
		OnResource: func(d unicast.Delivery) {
			if d.Err != nil {
				failed = true
				log.Error("given up", "path", d.Path, "err", d.Err)
				return
			}
			p := filepath.Join(out, filepath.FromSlash(d.Path))
			os.MkdirAll(filepath.Dir(p), 0o755)
			f, _ := os.CreateTemp(filepath.Dir(p), ".part")
			r := io.NewSectionReader(d.Body, 0, d.Size)
			io.Copy(f, r)
			f.Close()
			os.Rename(f.Name(), p)
			log.Info("delivered", "path", d.Path, "via", d.Via, "repair_bytes", d.RepairBytes, "lost_bytes", d.LostBytes)
		},
	})
	if err != nil {
		log.Error("client", "err", err)
		os.Exit(1)
	}
	if err := c.Run(ctx); err != nil || failed {
		log.Error("run", "err", err)
		os.Exit(1)
	}
}
