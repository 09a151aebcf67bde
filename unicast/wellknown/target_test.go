package wellknown

import (
	"errors"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	origin := &url.URL{Scheme: "https", Host: "origin.example:4433"}
	for _, c := range []struct{ in, path, name, url string }{
		{"/", "/", "index.html", "https://origin.example:4433/"},
		{"/seg-001.m4s", "/seg-001.m4s", "seg-001.m4s", "https://origin.example:4433/seg-001.m4s"},
		{"/live/", "/live/", "live/index.html", "https://origin.example:4433/live/"},
		{"/a%20b.txt", "/a b.txt", "a b.txt", "https://origin.example:4433/a%20b.txt"},
		{"/v/seg.m4s?v=2&x=/y?", "/v/seg.m4s", "v/seg.m4s", "https://origin.example:4433/v/seg.m4s?v=2&x=/y?"},
		{"/user@host:1/x", "/user@host:1/x", "user@host:1/x", "https://origin.example:4433/user@host:1/x"},
		{"/100%25", "/100%", "100%", "https://origin.example:4433/100%25"},
		{"/a..b/c.", "/a..b/c.", "a..b/c.", "https://origin.example:4433/a..b/c."},
	} {
		tg, err := ParseTarget(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if tg.Path != c.path || tg.Name() != c.name || tg.String() != c.in {
			t.Errorf("%q: path %q name %q string %q", c.in, tg.Path, tg.Name(), tg.String())
		}
		if got := tg.URL(origin).String(); got != c.url {
			t.Errorf("%q: URL %s, want %s", c.in, got, c.url)
		}
	}
	// Runs of "/" collapse (nghq's sender promises "//hello.txt"): the
	// target can never read as an authority.
	for in, want := range map[string]string{"//hello.txt": "/hello.txt", "//evil/x": "/evil/x", "/a//b///c": "/a/b/c", "///": "/"} {
		tg, err := ParseTarget(in)
		if err != nil || tg.Path != want || tg.String() != want {
			t.Errorf("%q: %+v, %v; want %q", in, tg, err, want)
			continue
		}
		if got := tg.URL(origin).String(); got != "https://origin.example:4433"+want {
			t.Errorf("%q: URL %s", in, got)
		}
	}
	for _, bad := range []string{
		"", "@evil:443/../update.bin", "evil/x", "https://evil/x", "/../x", "//../x", "/a/../b",
		"/./a", "/a/.", "/%2e%2e/x", "/%2E%2E", "/a%2fb", "/a%5cb", "/a%00b", "/a%0a", "/a b", "/a#frag",
		"/a\x00", "/a\\b", "/%zz", "/%4", "/é", "/.git/config", "/.h3m-partial/x", "/a/%2ehidden", "/x?a b",
		"/x?#", "/x?\x7f", "/" + strings.Repeat("a", maxPathLen),
	} {
		if tg, err := ParseTarget(bad); !errors.Is(err, ErrTarget) {
			t.Errorf("%q accepted: %+v, %v", bad, tg, err)
		}
	}
}

func TestEscapeTarget(t *testing.T) {
	for _, name := range []string{"/a b.txt", "/100%.bin", "/q?x", "/dir/é.mp4", "/x#y", "/(1)!*'.txt"} {
		tg, err := ParseTarget(EscapeTarget(name))
		if err != nil || tg.Path != name {
			t.Errorf("%q escaped to %q: %+v, %v", name, EscapeTarget(name), tg, err)
		}
	}
}

// FuzzParseTarget: promised paths come from the network. Whatever it
// accepts stays on the origin and inside the output folder.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"/", "/a/b.m4s?v=1", "@evil:443/../update.bin", "//evil/x", "/%2e%2e/x", "/a%20b", "/.git/config", "/a/"} {
		f.Add(s)
	}
	origin := &url.URL{Scheme: "https", Host: "origin.example:4433"}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			if !errors.Is(err, ErrTarget) {
				t.Fatalf("%q: %v does not wrap ErrTarget", s, err)
			}
			return
		}
		u, err := url.Parse(tg.URL(origin).String())
		if err != nil || u.Scheme != "https" || u.Host != origin.Host || u.User != nil || u.Path != tg.Path || u.RawQuery != tg.RawQuery {
			t.Fatalf("%q: URL %v parses back as %+v, %v", s, tg.URL(origin), u, err)
		}
		name := tg.Name()
		if !filepath.IsLocal(filepath.FromSlash(name)) || strings.HasPrefix(name, ".") || strings.Contains(name, "/.") {
			t.Fatalf("%q: name %q leaves the folder or is hidden", s, name)
		}
		raw, query, hasQuery := strings.Cut(s, "?")
		want := collapseSlashes(raw)
		if hasQuery && query != "" {
			want += "?" + query
		}
		if tg.String() != want {
			t.Fatalf("%q: String %q", s, tg.String())
		}
	})
}
