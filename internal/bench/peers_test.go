package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPeers runs the h3m/UFTP comparison at a size CI affords: one
// receiver, 10 % loss (so that both tools repair), 3 MB in 6 files. It
// proves the harness runs both tools and that both deliver every file
// intact; it asserts nothing about their speed.
func TestPeers(t *testing.T) {
	if err := PeersAvailable(); err != nil {
		t.Skipf("peers: skipping: %v", err)
	}
	bin := buildH3M(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := Peers(ctx, PeersOptions{H3M: bin, Receivers: []int{1}, Loss: []int{10}, Size: 3 << 20, Files: 6,
		Rate: 100_000_000, Repeat: 1, Wait: DefaultPeersWait, Timeout: 2 * time.Minute, Dir: t.TempDir(), Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cases) != 1 || len(rep.Cases[0].H3M) != 1 || len(rep.Cases[0].UFTP) != 1 {
		t.Fatalf("want one case with one run of each tool, got %+v", rep.Cases)
	}
	for _, r := range []PeerRun{rep.Cases[0].H3M[0], rep.Cases[0].UFTP[0]} {
		if r.Err != nil {
			t.Errorf("%s: %v", r.Tool, r.Err)
			continue
		}
		// Every byte crossed the bridge at least once, and the loss rule
		// dropped some of it.
		if r.WireBytes < 3<<20 || r.Dropped == 0 || r.Done <= 0 || r.SenderCPU <= 0 {
			t.Errorf("%s: implausible figures: %+v", r.Tool, r)
		}
	}
	if rep.UFTPVersion == "" {
		t.Error("UFTP's version was not read from its output")
	}
	if !strings.Contains(out.String(), "| 1 | 10 % |") {
		t.Errorf("the summary lacks the case's row:\n%s", out.String())
	}
}

// TestVerifyCatchesDamage shows the byte-for-byte check fails on a changed
// byte, a short file and a missing file.
func TestVerifyCatchesDamage(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	files, err := writeContent(src, 3<<20+5, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(src, f.Name))
		if err != nil || int64(len(b)) != f.Size {
			t.Fatalf("%s: %d bytes, %v", f.Name, len(b), err)
		}
		if err := os.WriteFile(filepath.Join(dst, f.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := verify(src, files, dst); err != nil {
		t.Fatalf("an exact copy fails: %v", err)
	}
	last := filepath.Join(dst, files[2].Name)
	b, _ := os.ReadFile(last)
	b[len(b)-1] ^= 1
	os.WriteFile(last, b, 0o644)
	if err := verify(src, files, dst); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("a flipped bit: %v", err)
	}
	os.WriteFile(last, b[:len(b)-1], 0o644)
	if err := verify(src, files, dst); err == nil || !strings.Contains(err.Error(), "bytes, the original") {
		t.Errorf("a short file: %v", err)
	}
	os.Remove(last)
	if err := verify(src, files, dst); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a missing file: %v", err)
	}
}

// TestH3MDeliveriesParse reads h3m receive's closing line.
func TestH3MDeliveriesParse(t *testing.T) {
	var d h3mDeliveries
	if !d.parse("h3m: 10 resources: 7 by multicast, 2 repaired (1995813 bytes), 1 by fallback, 0 missing") {
		t.Fatal("closing line not parsed")
	}
	if d.parse("multicast  /file-001.bin (77519 bytes)") {
		t.Error("a delivery line parsed as the closing line")
	}
	if d != (h3mDeliveries{Multicast: 7, Repaired: 2, Fallback: 1, RepairedBytes: 1995813}) {
		t.Errorf("got %+v", d)
	}
}

// buildH3M builds the h3m command into the test's folder.
func buildH3M(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("peers: skipping: no go tool to build h3m with: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "h3m")
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/h3m-project/h3m/cmd/h3m")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building h3m: %v\n%s", err, out)
	}
	return bin
}
