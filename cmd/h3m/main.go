// Command h3m delivers HTTP resources to many receivers at once over
// multicast QUIC (draft-pardue-quic-http-mcast), with unicast HTTP/3 for
// announcement, keys, repair and fallback.
//
// Run "h3m help" for the list of commands and "h3m help <command>" for the
// flags of one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of h3m.
type command struct {
	name  string
	usage string // argument synopsis
	short string // one line
	long  string // paragraphs for "h3m help <name>"
	// logLevel is the default of --log-level ("info" when empty).
	logLevel string
	flags    func(fs *flag.FlagSet) func(ctx context.Context, env *env) error
}

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	log            *slog.Logger
	args           []string
}

// Exit codes.
const (
	exitOK        = 0
	exitFailure   = 1 // the job failed (e.g. a resource could not be received)
	exitUsage     = 2 // bad command line
	exitInterrupt = 130
)

func commands() []*command {
	return []*command{demoCommand(), benchCommand(), serveCommand(), receiveCommand(), gatewayCommand(), interopCommand()}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stderr, cmds)
		return exitUsage
	}
	name := args[0]
	if name == "help" {
		if len(args) > 1 {
			for _, c := range cmds {
				if c.name == args[1] {
					fs := newFlagSet(c, stderr)
					c.flags(fs)
					commonFlags(fs, c)
					fs.SetOutput(stdout)
					fs.Usage()
					return exitOK
				}
			}
			fmt.Fprintf(stderr, "h3m: unknown command %q\n", args[1])
			return exitUsage
		}
		usage(stdout, cmds)
		return exitOK
	}
	for _, c := range cmds {
		if c.name != name {
			continue
		}
		fs := newFlagSet(c, stderr)
		runFn := c.flags(fs)
		logLevel, logFormat := commonFlags(fs, c)
		if err := fs.Parse(args[1:]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage
		}
		logger, err := newLogger(stderr, *logLevel, *logFormat)
		if err != nil {
			fmt.Fprintf(stderr, "h3m %s: %v\n", name, err)
			return exitUsage
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err = runFn(ctx, &env{stdout: stdout, stderr: stderr, log: logger, args: fs.Args()})
		switch {
		case err == nil:
			return exitOK
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "h3m %s: %v\n", name, err)
			return exitUsage
		case ctx.Err() != nil && errors.Is(err, context.Canceled):
			return exitInterrupt
		default:
			fmt.Fprintf(stderr, "h3m %s: %v\n", name, err)
			return exitFailure
		}
	}
	fmt.Fprintf(stderr, "h3m: unknown command %q (run \"h3m help\")\n", name)
	return exitUsage
}

// usageError is a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// commonFlags registers the flags every command has.
func commonFlags(fs *flag.FlagSet, c *command) (level, format *string) {
	def := c.logLevel
	if def == "" {
		def = "info"
	}
	level = fs.String("log-level", def, "log level: debug, info, warn or error")
	format = fs.String("log-format", "text", "log format: text or json (logs go to stderr)")
	return level, format
}

func newFlagSet(c *command, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("h3m "+c.name, flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: h3m %s %s\n\n%s\n\n", c.name, c.usage, strings.TrimSpace(c.long))
		fmt.Fprintln(w, "Flags:")
		fs.PrintDefaults()
	}
	return fs
}

func usage(w io.Writer, cmds []*command) {
	fmt.Fprint(w, `h3m delivers HTTP resources to many receivers at once over multicast QUIC
(draft-pardue-quic-http-mcast), with unicast HTTP/3 for announcement, keys,
repair and fallback.

Usage: h3m <command> [flags]

Commands:
`)
	sorted := append([]*command(nil), cmds...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.short)
	}
	fmt.Fprint(w, `
Run "h3m help <command>" for its flags. Exit codes: 0 success, 1 failure,
2 usage error, 130 interrupted.

Multicast is only ever sent on an explicitly named interface (loopback by
default) with TTL 1 unless told otherwise.
`)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: want text or json", format)
}
