package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		Rate: 100_000_000, Repeat: 1, Wait: DefaultPeersAwaitWait, AwaitReceivers: true, PacketSize: DefaultPeersPacketSize,
		Timeout: 2 * time.Minute, Dir: t.TempDir(), Out: &out})
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Cases) != 1 || len(rep.Cases[0].H3M) != 1 || len(rep.Cases[0].UFTP) != 1 {
		t.Fatalf("want one case with one run of each tool, got %+v", rep.Cases)
	}
	// Both tools' closing lines and counts were read: Peers fails a run
	// whose output lacks them, and the deliveries add up to the files.
	if d := rep.Cases[0].H3M[0].H3M; d.total() != 6 || d.Failed != 0 {
		t.Errorf("h3m receive's closing line: %+v, want 6 resources delivered", d)
	}
	for _, r := range []PeerRun{rep.Cases[0].H3M[0], rep.Cases[0].UFTP[0]} {
		if r.LastFile <= 0 || r.LastFile > r.Done || r.ReceiverCPU <= 0 || r.WirePackets == 0 {
			t.Errorf("%s: the output's figures were not all read: %+v", r.Tool, r)
		}
		if r.Err != nil {
			t.Errorf("%s: %v", r.Tool, r.Err)
			continue
		}
		// Every byte crossed the bridge at least once, and the loss rule
		// dropped some of it.
		if r.WireBytes < 3<<20 || r.Dropped == 0 || r.Done <= 0 || r.SenderCPU <= 0 {
			t.Errorf("%s: implausible figures: %+v", r.Tool, r)
		}
		// Both tools send every byte by multicast first; the counter
		// sees nothing the sender's eth0 did not send.
		if r.SenderMulticastBytes < 3<<20 || r.SenderMulticastBytes > r.SenderBytes {
			t.Errorf("%s: multicast %d bytes of the sender's %d, want between the content (3 MiB) and all", r.Tool, r.SenderMulticastBytes, r.SenderBytes)
		}
	}
	if rep.UFTPVersion == "" {
		t.Error("UFTP's version was not read from its output")
	}
	if !strings.Contains(rep.H3MServe, "--wait 2s --wait-receivers N --packet-size 1352") {
		t.Errorf("h3m serve's command line lacks the wait for the receivers and the packet size: %s", rep.H3MServe)
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
	if d.parse("h3m: 11 resources: 7 by multicast, 2 repaired (1995813 bytes), 1 by fallback, 0 missing") {
		t.Error("a closing line whose counts do not add up was taken")
	}
}

// A run whose output lacks what its figures come from is reported, naming
// what is missing: h3m receive's closing line or its stored lines, uftpd's
// completions, the loss rule's counter.
func TestPeersOutputChecks(t *testing.T) {
	stored := []string{
		"multicast  /file-001.bin (77519 bytes)",
		"repair     /file-002.bin (155038 bytes), 1200 bytes repaired",
		"fallback   /file-003.bin (310076 bytes)",
	}
	closing := "h3m: 3 resources: 1 by multicast, 1 repaired (1200 bytes), 1 by fallback, 0 missing"
	for _, tc := range []struct {
		name  string
		lines []string
		want  string // in the error; "" for none
	}{
		{"whole", append(slices.Clone(stored), closing), ""},
		{"no closing line", stored, "closing line"},
		{"closing line changed", append(slices.Clone(stored), strings.Replace(closing, "resources:", "resources", 1)), "closing line"},
		{"fewer resources", append(slices.Clone(stored[:2]), "h3m: 2 resources: 1 by multicast, 1 repaired (1200 bytes), 0 by fallback, 0 missing"), "counts 2 resources, 3 files"},
		{"a stored line missing", append(slices.Clone(stored[:2]), closing), "2 lines of resources stored"},
		{"nothing", nil, "closing line"},
	} {
		var o h3mReceiveOutput
		for i, l := range tc.lines {
			o.line(l, time.Duration(i+1)*time.Second)
		}
		err := o.check(3)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
		if tc.want == "" && (o.last != 3*time.Second || o.closing.total() != 3) {
			t.Errorf("%s: last file at %v, counts %+v", tc.name, o.last, o.closing)
		}
	}

	var u uftpClientOutput
	u.line("2026/12/06 05:10:29.657779: [B5CB44E8/00:0001]: File transfer complete", time.Second)
	u.line("2026/12/06 05:10:38.416518: [B5CB44E8/00:0]: COMPLETE sent", 2*time.Second)
	if err := u.check(1); err != nil || u.last != time.Second {
		t.Errorf("uftpd with its one file: %v, last %v", err, u.last)
	}
	if err := u.check(2); err == nil || !strings.Contains(err.Error(), "File transfer complete") {
		t.Errorf("uftpd with one of two files: %v", err)
	}
	// uftpd may report a file complete twice: it counts once.
	u.line("2026/12/06 05:10:29.657799: [B5CB44E8/00:0001]: File transfer complete", 3*time.Second)
	if err := u.check(1); err != nil {
		t.Errorf("a file said complete twice: %v", err)
	}
	u.line("2026/12/06 05:10:30.1: [B5CB44E8/00:0002]: File transfer complete", 4*time.Second)
	if err := u.check(2); err != nil || u.last != 4*time.Second {
		t.Errorf("two files: %v, last %v", err, u.last)
	}

	n, err := parseDropped("table inet h3m_peers_loss {\n\tchain pre {\n\t\tip daddr 224.0.0.0/4 meta l4proto udp numgen random mod 100 < 2 counter packets 1834 bytes 2330012 drop\n\t}\n}\n")
	if err != nil || n != 1834 {
		t.Errorf("counter: %d, %v", n, err)
	}
	for _, bad := range []string{"table inet h3m_peers_loss {\n}\n", "counter packets ", "counter packets many"} {
		if _, err := parseDropped(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}

	// nft 1.0.6's listing of the bridge's multicast counter (-j): frames
	// are its bytes and 14 bytes of Ethernet header per packet.
	mc, err := parseMulticastCounter([]byte(`{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"counter": {"family": "bridge", "name": "multicast", "table": "h3m_peers_wire", "handle": 2, "packets": 80694, "bytes": 110428802}}]}`))
	if err != nil || mc != 110428802+14*80694 {
		t.Errorf("multicast counter: %d, %v", mc, err)
	}
	for _, bad := range []string{"", `{"nftables": [{"metainfo": {"version": "1.0.6"}}]}`, `{"nftables": [{"counter": {"name": "other", "packets": 1, "bytes": 2}}]}`} {
		if _, err := parseMulticastCounter([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
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
