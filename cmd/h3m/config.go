package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
)

// configFlag is the flag every command takes for a file of flag values.
const configFlag = "config"

// applyConfig sets the flags named in a JSON config file that were not given
// on the command line. Values are JSON strings, numbers or booleans as
// the flag takes them ("4s" for a duration); a list of strings is a
// comma-separated flag (["*.m4s", "*.ts"] for --hold).
func applyConfig(fs *flag.FlagSet, file string) error {
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return usagef("--config: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return usagef("--config %s: not a JSON object of flag values: %v", file, err)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the first error is the same every run
	for _, k := range keys {
		if fs.Lookup(k) == nil || k == configFlag {
			msg := fmt.Sprintf("--config %s: unknown setting %q", file, k)
			if near := nearest(k, flagNames(fs)); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			return usageError{msg}
		}
		if given[k] {
			continue
		}
		s, err := configValue(m[k])
		if err != nil {
			return usagef("--config %s: %s: %v", file, k, err)
		}
		if err := fs.Set(k, s); err != nil {
			return usagef("--config %s: %s: %v", file, k, err)
		}
	}
	return nil
}

// configValue is the flag text of a JSON value.
func configValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		if x == float64(int64(x)) {
			return strconv.FormatInt(int64(x), 10), nil
		}
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, ok := e.(string)
			if !ok {
				return "", fmt.Errorf("a list may hold strings only, not %v", e)
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("want a string, number, boolean or list of strings, not %v", v)
}

// flagNames lists the flags of fs.
func flagNames(fs *flag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	return names
}

// parseServerURL reads the URL of an h3m unicast server as receive and
// gateway take it (--url): https://HOST[:PORT][/...], or HOST[:PORT]
// alone, which means https. Only the origin counts; the result has path
// "/". Plain http is refused: the server delivers the session keys.
func parseServerURL(raw string) (*url.URL, error) {
	bad := func(why string) error {
		return usagef("--url %q: %s; want https://HOST[:PORT]/ as h3m serve prints it", raw, why)
	}
	s := strings.TrimSpace(raw)
	if s == "" {
		return nil, bad("empty")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, bad("not a URL")
	}
	switch {
	case u.Scheme == "http":
		return nil, bad("plain http: the server delivers session keys, which only travel over TLS")
	case u.Scheme != "https":
		return nil, bad(fmt.Sprintf("scheme %q", u.Scheme))
	case u.Hostname() == "":
		return nil, bad("no host")
	case u.User != nil:
		return nil, bad("user information is not used")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, bad(fmt.Sprintf("port %q", p))
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return nil, bad("empty port")
	}
	host := u.Hostname()
	if strings.Contains(host, ":") { // IPv6
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" {
		host = net.JoinHostPort(u.Hostname(), p)
	}
	return &url.URL{Scheme: "https", Host: host, Path: "/"}, nil
}
