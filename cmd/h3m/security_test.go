package main

import (
	"crypto/tls"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/h3m"
	"github.com/h3m-project/h3m/unicast/client"
	"github.com/quic-go/quic-go/http3"
)

// TestReceiveNeverWritesThroughLinks: the output folder already holds a
// link to a folder elsewhere under a name the session pushes into
// (out/evil -> elsewhere). receive stores nothing through it: the resource
// fails, nothing appears elsewhere, and the rest of the folder arrives.
func TestReceiveNeverWritesThroughLinks(t *testing.T) {
	src, out, elsewhere := t.TempDir(), t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(src, "evil"), 0o755)
	os.WriteFile(filepath.Join(src, "evil", "x.bin"), []byte("through the link"), 0o644)
	os.WriteFile(filepath.Join(src, "ok.bin"), []byte("fine"), 0o644)
	if err := os.Symlink(elsewhere, filepath.Join(out, "evil")); err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:24438"
	_, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "2s", "--linger", "5s",
		"--group", "232.255.7.6", "--port", "5706", "--listen", listen, "--rate", "200000000")
	rcv := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert, "--out", out)
	err := rcv.wait(t, 60*time.Second)
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("receive wrote %s through the link in the output folder", entries[0].Name())
	}
	if err == nil || !strings.Contains(rcv.output(), "/evil/x.bin") {
		t.Errorf("receive did not report /evil/x.bin failed (%v):\n%s", err, rcv.output())
	}
	if b, err := os.ReadFile(filepath.Join(out, "ok.bin")); err != nil || string(b) != "fine" {
		t.Errorf("ok.bin: %q, %v", b, err)
	}
}

// TestCommitRemovesTemporaryAtOnce: a commit that cannot store its body
// (here through a link that leaves the folder) removes the body's
// temporary file at once, not when receive ends.
func TestCommitRemovesTemporaryAtOnce(t *testing.T) {
	out, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(out, "evil")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if err := root.Mkdir(partialDir, 0o700); err != nil {
		t.Fatal(err)
	}
	body, err := h3m.DirStorage{Dir: filepath.Join(out, partialDir)}.NewBody(nil, 4)
	if err != nil {
		t.Fatal(err)
	}
	body.WriteAt([]byte("data"), 0)
	if err := commit(root, client.Delivery{Path: "/evil/x.bin", Size: 4, Body: body}); err == nil {
		t.Fatal("committed through a link that leaves the folder")
	}
	if entries, _ := os.ReadDir(filepath.Join(out, partialDir)); len(entries) != 0 {
		t.Errorf("%s left in the partial folder", entries[0].Name())
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("%s written through the link", entries[0].Name())
	}
	// The same body under a name inside the folder is stored.
	body2, _ := h3m.DirStorage{Dir: filepath.Join(out, partialDir)}.NewBody(nil, 4)
	body2.WriteAt([]byte("data"), 0)
	if err := commit(root, client.Delivery{Path: "/sub/x.bin", Size: 4, Body: body2}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(out, "sub", "x.bin")); err != nil || string(b) != "data" {
		t.Errorf("sub/x.bin: %q, %v", b, err)
	}
}

func TestOutputName(t *testing.T) {
	for in, want := range map[string]string{"/": "index.html", "/a/": "a/index.html", "/a%20b.txt?v=2": "a b.txt", "/d/seg.m4s": "d/seg.m4s", "//x": "x", "/a//b": "a/b"} {
		if got, err := outputName(in); err != nil || got != want {
			t.Errorf("%q: %q, %v", in, got, err)
		}
	}
	for _, bad := range []string{"@evil:443/../update.bin", "/../x", "/.h3m-partial/x", "/.bashrc", "//.bashrc", "/a%2f..%2f..%2fx"} {
		if got, err := outputName(bad); err == nil {
			t.Errorf("%q stored as %q", bad, got)
		}
	}
}

// TestServeRefusesItsKeyInTheFolder: "serve --dir ." with the default
// --cert and --key would create the TLS key in the served folder, then
// push it and serve it. serve refuses to start, and creates no key.
func TestServeRefusesItsKeyInTheFolder(t *testing.T) {
	listen := "127.0.0.1:24439"
	srv := start(t, nil, h3mBinary, "serve", "--dir", ".", "--once", "--linger", "1s",
		"--group", "232.255.7.7", "--port", "5707", "--listen", listen)
	select {
	case err := <-srv.done:
		srv.done <- err
		if err == nil || !strings.Contains(srv.output(), "inside the served folder") {
			t.Errorf("serve: %v\n%s", err, srv.output())
		}
	case <-time.After(20 * time.Second):
		hc := &http.Client{Transport: &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := hc.Get("https://" + listen + "/h3m-key.pem")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("serve --dir . runs with its key in the folder; GET /h3m-key.pem: %s", resp.Status)
		}
		t.Fatalf("serve --dir . runs with its key in the folder")
	}
	if _, err := os.Stat(filepath.Join(srv.cmd.Dir, "h3m-key.pem")); err == nil {
		t.Error("serve created its key in the folder it would serve")
	}
}

// TestReceiveMaxResourceSize: --max-resource-size caps what receive
// accepts, by multicast and by unicast alike: the larger file fails (and
// is reported), the smaller one arrives.
func TestReceiveMaxResourceSize(t *testing.T) {
	src, out := t.TempDir(), t.TempDir()
	big, small := make([]byte, 150_000), make([]byte, 10_000)
	os.WriteFile(filepath.Join(src, "big.bin"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small.bin"), small, 0o644)
	listen := "127.0.0.1:24440"
	_, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "2s", "--linger", "10s",
		"--group", "232.255.7.8", "--port", "5708", "--listen", listen, "--rate", "200000000")
	rcv := start(t, nil, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert,
		"--out", out, "--max-resource-size", "100000")
	err := rcv.wait(t, 60*time.Second)
	if err == nil || !strings.Contains(rcv.output(), "big.bin") || !strings.Contains(rcv.output(), "cap 100000") {
		t.Errorf("receive did not refuse big.bin (%v):\n%s", err, rcv.output())
	}
	if _, err := os.Stat(filepath.Join(out, "big.bin")); err == nil {
		t.Error("big.bin stored")
	}
	if b, err := os.ReadFile(filepath.Join(out, "small.bin")); err != nil || len(b) != len(small) {
		t.Errorf("small.bin: %d bytes, %v", len(b), err)
	}
}
