package origin_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/h3m-project/h3m/unicast/internal/origintest"
	"github.com/h3m-project/h3m/unicast/internal/unicasttest"
	"github.com/h3m-project/h3m/unicast/origin"
)

// TestNeverServesOrPushesExcluded: hidden files and folders (/.git/config,
// /.env) and writers' temporary files are neither served over HTTP/3 nor
// pushed; a name that needs escaping is pushed and listed under its
// escaped target and served under it.
func TestNeverServesOrPushesExcluded(t *testing.T) {
	h := origintest.New(t, origintest.Options{Files: 1})
	for name, content := range map[string]string{
		".git/config": "[remote]", ".env": "SECRET=1", "sub/.hidden": "h", ".dir/x.bin": "x",
		"a.tmp": "t", "b.part": "p", "c~": "c", "a b.txt": "spaced",
	} {
		p := filepath.Join(h.Dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hc := h.HTTPClient()
	base := "https://" + h.Addr
	excluded := []string{"/.git/config", "/.env", "/sub/.hidden", "/.dir/x.bin", "/a.tmp", "/b.part", "/c~", "/.git/", "/sub/../.env"}
	for _, p := range excluded {
		if resp, body := fetch(t, hc, "GET", base+p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, %q", p, resp.Status, body)
		}
	}
	if resp, body := fetch(t, hc, "GET", base+"/a%20b.txt", nil); resp.StatusCode != 200 || string(body) != "spaced" {
		t.Errorf("GET /a%%20b.txt: %s, %q", resp.Status, body)
	}

	if _, err := h.Pub.Start(unicasttest.Ad(t, "excluded")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, p := range excluded[:7] {
		if e, err := h.Pub.PushFile(ctx, p); err == nil {
			t.Errorf("%s pushed: %+v", p, e)
		}
	}
	e, err := h.Pub.PushFile(ctx, "/a b.txt")
	if err != nil || e.Path != "/a%20b.txt" {
		t.Errorf("push /a b.txt: listed as %q, %v", e.Path, err)
	}
	if _, err := h.Pub.Push(ctx, &origin.Content{Path: "@evil:443/../x", Header: http.Header{}, Body: nil}); err == nil {
		t.Error("pushed a path receivers refuse")
	}
	for _, e := range h.Catalog.List() {
		if e.Path != "/a%20b.txt" {
			t.Errorf("catalogue lists %q", e.Path)
		}
	}
}

// TestCheckOutside: keys and certificates inside the served folder are
// refused, through links too, before they exist as well.
func TestCheckOutside(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(dir, "key.pem"), []byte("k"), 0o600)
	os.WriteFile(filepath.Join(other, "key.pem"), []byte("k"), 0o600)
	os.Symlink(dir, filepath.Join(other, "served"))
	os.Symlink(filepath.Join(dir, "key.pem"), filepath.Join(other, "link.pem"))
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	for _, f := range []string{filepath.Join(dir, "key.pem"), "key.pem", "new-key.pem", filepath.Join(dir, "sub", "..", "x.pem"),
		filepath.Join(other, "served", "key.pem"), filepath.Join(other, "link.pem"), filepath.Join(dir, "missing", "k.pem")} {
		if err := origin.CheckOutside(".", f); !errors.Is(err, origin.ErrServesSecret) {
			t.Errorf("%s inside the folder accepted: %v", f, err)
		}
		if err := origin.CheckOutside(filepath.Join(other, "served"), f); !errors.Is(err, origin.ErrServesSecret) {
			t.Errorf("%s inside the folder (named through a link) accepted: %v", f, err)
		}
	}
	for _, f := range []string{filepath.Join(other, "key.pem"), filepath.Join(other, "new.pem"), ""} {
		if err := origin.CheckOutside(dir, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if _, err := origin.New(origin.Config{Dir: dir, Addr: "127.0.0.1:0", PrivateFiles: []string{"key.pem"}}); !errors.Is(err, origin.ErrServesSecret) {
		t.Errorf("origin.New with its key in the folder: %v", err)
	}
}
