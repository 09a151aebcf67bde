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
	"runtime/debug"
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
	if len(args) == 0 {
		usage(stderr, cmds)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout, cmds)
		return exitOK
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionLine(debug.ReadBuildInfo()))
		return exitOK
	case "help":
		if len(args) == 1 {
			usage(stdout, cmds)
			return exitOK
		}
		if args[1] == "version" {
			fmt.Fprintln(stdout, "Usage: h3m version\n\nPrints the module version, the VCS revision and the Go version h3m was built with.")
			return exitOK
		}
		c := findCommand(cmds, args[1])
		if c == nil {
			unknownCommand(stderr, cmds, args[1])
			return exitUsage
		}
		fs := newFlagSet(c)
		c.flags(fs)
		commonFlags(fs, c)
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK
	}
	c := findCommand(cmds, name)
	if c == nil {
		unknownCommand(stderr, cmds, name)
		return exitUsage
	}
	fs := newFlagSet(c)
	runFn := c.flags(fs)
	logLevel, logFormat := commonFlags(fs, c)
	if err := parseFlags(fs, args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		fmt.Fprintf(stderr, "h3m %s: %v\nRun \"h3m help %s\" for its flags.\n", name, err, name)
		return exitUsage
	}
	if err := applyConfig(fs, fs.Lookup(configFlag).Value.String()); err != nil {
		fmt.Fprintf(stderr, "h3m %s: %v\n", name, err)
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

func findCommand(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

// unknownCommand says so in one line, with the nearest command's name when
// one is near.
func unknownCommand(w io.Writer, cmds []*command, name string) {
	names := []string{"help", "version"}
	for _, c := range cmds {
		names = append(names, c.name)
	}
	msg := fmt.Sprintf("h3m: unknown command %q", name)
	if near := nearest(name, names); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	fmt.Fprintf(w, "%s\nRun \"h3m help\" for the list of commands.\n", msg)
}

// parseFlags parses args into fs and turns the flag package's errors into
// one line each: an unknown flag names the nearest known one.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage, out := fs.Usage, fs.Output()
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.Usage = usage
	fs.SetOutput(out)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	const undefined = "flag provided but not defined: -"
	if name, ok := strings.CutPrefix(err.Error(), undefined); ok {
		msg := fmt.Sprintf("unknown flag --%s", name)
		if near := nearest(name, flagNames(fs)); near != "" {
			msg += fmt.Sprintf("; did you mean --%s?", near)
		}
		return errors.New(msg)
	}
	return err
}

// nearest returns the candidate closest to name by edit distance, if it is
// close enough to be what was meant, or the one candidate name is a prefix
// of; "" otherwise.
func nearest(name string, candidates []string) string {
	best, bestDist := "", -1
	var prefixed []string
	for _, c := range candidates {
		if len(name) >= 2 && strings.HasPrefix(c, name) {
			prefixed = append(prefixed, c)
		}
		d := editDistance(strings.ToLower(name), strings.ToLower(c))
		if bestDist < 0 || d < bestDist || (d == bestDist && c < best) {
			best, bestDist = c, d
		}
	}
	if bestDist >= 0 && bestDist <= max(2, len(name)/3) && bestDist < len(name) {
		return best
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the optimal-string-alignment distance of a and b:
// insertions, deletions, substitutions and swaps of neighbours ("sevre").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// versionLine describes the build: the module version and VCS revision
// that runtime/debug records, and the Go version.
func versionLine(bi *debug.BuildInfo, ok bool) string {
	if !ok {
		return "h3m (no build information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	line := "h3m " + v
	if rev := set["vcs.revision"]; rev != "" {
		line += ", revision " + rev
		if at := set["vcs.time"]; at != "" {
			line += " (" + at + ")"
		}
		if set["vcs.modified"] == "true" {
			line += " with local changes"
		}
	}
	goos, goarch := set["GOOS"], set["GOARCH"]
	line += ", " + bi.GoVersion
	if goos != "" && goarch != "" {
		line += " " + goos + "/" + goarch
	}
	return line
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
	if fs.Lookup(configFlag) == nil {
		fs.String(configFlag, "", "JSON file of flag values ({\"interface\": \"eth1\", \"hold-timeout\": \"2s\", ...}); flags given on the command line win")
	}
	return level, format
}

func newFlagSet(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet("h3m "+c.name, flag.ContinueOnError)
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
	fmt.Fprintf(w, "  %-9s %s\n", "version", "print the version and VCS revision (also --version)")
	fmt.Fprint(w, `
Run "h3m help <command>" for its flags; every command also takes --config
FILE (a JSON object of flag values), --log-level and --log-format. Exit
codes: 0 success, 1 failure, 2 usage error, 130 interrupted.

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
