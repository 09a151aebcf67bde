package dirwatch

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func names(fs []File) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Path)
	}
	return out
}

func TestScanSettlesAndOrders(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("manifest.mpd", "v1")
	write("video/seg-1.m4s", "aaaa")
	write("seg-2.m4s.tmp", "being written")
	write(".hidden", "x")
	w := New(dir, Options{Settle: time.Second})
	t0 := time.Now()
	got, err := w.Scan(t0, false) // initial: everything present
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"video/seg-1.m4s", "manifest.mpd"}; !reflect.DeepEqual(names(got), want) {
		t.Fatalf("initial scan %v, want %v", names(got), want)
	}
	// A new segment is reported only once it has settled; the manifest that
	// changes in the same scan comes after it.
	write("video/seg-2.m4s", "bbbb")
	os.Remove(filepath.Join(dir, "seg-2.m4s.tmp"))
	write("manifest.mpd", "v2")
	future := time.Now().Add(time.Hour) // mtimes differ from before
	os.Chtimes(filepath.Join(dir, "manifest.mpd"), future, future)
	if got, _ := w.Scan(t0.Add(100*time.Millisecond), true); len(got) != 0 {
		t.Fatalf("reported before settling: %v", names(got))
	}
	got, _ = w.Scan(t0.Add(1200*time.Millisecond), true)
	if want := []string{"video/seg-2.m4s", "manifest.mpd"}; !reflect.DeepEqual(names(got), want) {
		t.Fatalf("after settling %v, want %v", names(got), want)
	}
	if got, _ := w.Scan(t0.Add(3*time.Second), true); len(got) != 0 {
		t.Fatalf("reported twice: %v", names(got))
	}
	// A file still growing is not reported.
	write("video/seg-3.m4s", "c")
	w.Scan(t0.Add(4*time.Second), true)
	write("video/seg-3.m4s", "cc")
	if got, _ := w.Scan(t0.Add(4500*time.Millisecond), true); len(got) != 0 {
		t.Fatalf("growing file reported: %v", names(got))
	}
}
