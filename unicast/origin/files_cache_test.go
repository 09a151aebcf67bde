package origin

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestFileServerCacheBounded: a live stream names a new file every few
// seconds for as long as it runs; the representations remembered stay
// under MaxCached, and a file forgotten is described again when asked.
func TestFileServerCacheBounded(t *testing.T) {
	dir := t.TempDir()
	f, err := NewFileServer(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.MaxCached = 8
	for i := range 100 {
		name := fmt.Sprintf("seg-%03d.m4s", i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		file, rep, err := f.Open("/" + name)
		if err != nil {
			t.Fatal(err)
		}
		file.Close()
		if rep.Size != int64(len(name)) || rep.ETag == "" {
			t.Fatalf("%s: %+v", name, rep)
		}
		if n := len(f.cache); n > f.MaxCached {
			t.Fatalf("after %d files, %d representations remembered (MaxCached %d)", i+1, n, f.MaxCached)
		}
	}
	file, rep, err := f.Open("/seg-000.m4s")
	if err != nil || rep.Size != 11 {
		t.Fatalf("a forgotten file again: %+v, %v", rep, err)
	}
	file.Close()
}
