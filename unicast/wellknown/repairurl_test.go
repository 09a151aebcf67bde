package wellknown

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseRepairURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://cache.example", "https://cache.example"},
		{"https://Cache.Example:8443/", "https://cache.example:8443"},
		{"https://cache.example/h3m/", "https://cache.example/h3m"},
		{"https://[::1]:443/a%20b", "https://[::1]:443/a%20b"},
		{"HTTPS://cache.example/x", "https://cache.example/x"},
		{"https://cache.example//x//y", "https://cache.example/x/y"}, // runs of / count as one (ParseTarget)
	} {
		u, err := ParseRepairURL(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if u.String() != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, u, tc.want)
		}
	}
	for _, in := range []string{
		"", "/relative", "cache.example", "http://cache.example/", "ftp://cache.example/",
		"https:///nohost", "https://user@cache.example/", "https://u:p@cache.example/",
		"https://cache.example/?q=1", "https://cache.example/?", "https://cache.example/#f",
		"https://cache.example/../etc", "https://cache.example/.hidden",
		"https:opaque", "https://cache.example:x/",
	} {
		if u, err := ParseRepairURL(in); !errors.Is(err, ErrRepairURL) {
			t.Errorf("%q: got %v, %v; want ErrRepairURL", in, u, err)
		}
	}
}

func TestTargetOn(t *testing.T) {
	for _, tc := range []struct{ base, target, want string }{
		{"https://cache.example", "/a.bin", "https://cache.example/a.bin"},
		{"https://cache.example/h3m/", "/dir/a%20b.bin?v=1", "https://cache.example/h3m/dir/a%20b.bin?v=1"},
		{"https://cache.example/x%20y", "/a", "https://cache.example/x%20y/a"},
	} {
		base, err := ParseRepairURL(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		tg, err := ParseTarget(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.On(base).String(); got != tc.want {
			t.Errorf("%s on %s: got %s, want %s", tc.target, tc.base, got, tc.want)
		}
	}
}

// FuzzParseRepairURL: repair URLs come from the network (the description).
// An accepted base is https with a host and nothing that could change what
// a target appended to it names, and normalising is idempotent.
func FuzzParseRepairURL(f *testing.F) {
	f.Add("https://cache.example/h3m/")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseRepairURL(s)
		if err != nil {
			if !errors.Is(err, ErrRepairURL) {
				t.Fatalf("error %v does not wrap ErrRepairURL", err)
			}
			return
		}
		if u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(u.Path, "/") {
			t.Fatalf("%q accepted as %#v", s, u)
		}
		again, err := ParseRepairURL(u.String())
		if err != nil || again.String() != u.String() {
			t.Fatalf("%q normalised to %q, which parses to %v, %v", s, u, again, err)
		}
		tg := Target{Path: "/x", RawPath: "/x"}
		on, err := url.Parse(tg.On(u).String())
		if err != nil || on.Host != u.Host || on.Scheme != "https" || on.User != nil {
			t.Fatalf("/x on %q is %v (%v)", u, on, err)
		}
	})
}
