package interop

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/h3m-project/h3m/internal/pcapfile"
)

const sigTERM = syscall.SIGTERM

var execLookPath = exec.LookPath

// unicastSlack is what a receiver may fetch over unicast besides repairs:
// TLS handshakes, the session description and its refreshes.
const unicastSlack = 100 << 10

// --- drives ---

func driveSimple(c *caseRun) error {
	if err := c.release(-1); err != nil {
		return err
	}
	return c.waitFiles(allIdx(len(c.net.Receivers)), -1)
}

func driveMeasure(c *caseRun) error {
	cpu0 := c.sender.groupCPU()
	t0 := time.Now()
	if err := c.release(-1); err != nil {
		return err
	}
	err := c.waitFiles(allIdx(len(c.net.Receivers)), -1)
	c.senderCPU = c.sender.groupCPU() - cpu0
	c.logf("sender CPU during the transfer: %v (%v wall)", c.senderCPU, time.Since(t0).Round(time.Millisecond))
	return err
}

func driveBlackhole(c *caseRun) error {
	all := allIdx(len(c.net.Receivers))
	if err := c.release(0); err != nil {
		return err
	}
	if err := c.waitFiles(all, 0); err != nil {
		return fmt.Errorf("before the blackhole: %w", err)
	}
	for _, h := range c.net.Receivers {
		if err := h.Blackhole(c.ctx, c.net.Group, true); err != nil {
			return err
		}
	}
	c.marks["blackhole-on"] = time.Now()
	c.logf("blackhole on: every multicast packet is dropped")
	if err := c.release(1); err != nil {
		return err
	}
	werr := c.waitFiles(all, 1)
	// Keep the hole open a little longer than the transfer so that the
	// receiver really saw multicast stop.
	time.Sleep(time.Second)
	for _, h := range c.net.Receivers {
		if err := h.Blackhole(c.ctx, c.net.Group, false); err != nil {
			return err
		}
	}
	c.marks["blackhole-off"] = time.Now()
	c.logf("blackhole off")
	if werr != nil {
		return fmt.Errorf("during the blackhole: %w", werr)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := c.release(2); err != nil {
		return err
	}
	if err := c.waitFiles(all, 2); err != nil {
		return fmt.Errorf("after the blackhole: %w", err)
	}
	c.marks["after-done"] = time.Now()
	return nil
}

func driveLateJoin(c *caseRun) error {
	if err := c.release(0); err != nil {
		return err
	}
	if err := c.waitFiles([]int{0}, 0); err != nil {
		return err
	}
	late := len(c.net.Receivers) - 1
	if err := c.startReceiver(late); err != nil {
		return err
	}
	if err := c.waitJoined(late); err != nil {
		return err
	}
	if err := c.waitFiles([]int{late}, 0); err != nil {
		return fmt.Errorf("late receiver, earlier files: %w", err)
	}
	if err := c.release(1); err != nil {
		return err
	}
	return c.waitFiles(allIdx(len(c.net.Receivers)), -1)
}

func driveRollover(c *caseRun) error {
	nb := 0
	for _, f := range c.files {
		nb = max(nb, f.Batch+1)
	}
	for b := 0; b < nb; b++ {
		if err := c.release(b); err != nil {
			return err
		}
		if b < nb-1 {
			time.Sleep(1500 * time.Millisecond)
		}
	}
	return c.waitFiles(allIdx(len(c.net.Receivers)), -1)
}

// --- checks ---

// checkExact compares every released file at receiver i with the
// original, byte for byte.
func (c *caseRun) checkExact(i int) error {
	var bad []string
	for path := range c.released {
		data, err := os.ReadFile(filepath.Join(c.downloads[i], filepath.FromSlash(path)))
		if err != nil {
			bad = append(bad, path+" missing")
		} else if sha256.Sum256(data) != c.sums[path] {
			bad = append(bad, path+" differs")
		}
		if len(bad) > 3 {
			break
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("receiver %d: %s", i+1, strings.Join(bad, ", "))
	}
	c.logf("receiver %d: all %d files byte-exact", i+1, len(c.released))
	return nil
}

// checkExited requires receiver i to have exited by itself with 0 after
// the session ended (within within, when not 0).
func (c *caseRun) checkExited(i int, within time.Duration) error {
	p := c.receivers[i]
	exited, code, stopped := p.result()
	switch {
	case !exited:
		return fmt.Errorf("receiver %d still running", i+1)
	case stopped && !p.exitedAt().Before(c.senderEnd.Add(10*time.Second)):
		return fmt.Errorf("receiver %d did not exit after the session ended (the runner stopped it)", i+1)
	case code != 0:
		return fmt.Errorf("receiver %d exited with %d: %s", i+1, code, c.tail(fmt.Sprintf("receiver-%d", i+1)))
	case within > 0 && p.exitedAt().Sub(c.senderEnd) > within:
		return fmt.Errorf("receiver %d exited %v after the session ended (limit %v)", i+1, p.exitedAt().Sub(c.senderEnd).Round(time.Millisecond), within)
	}
	return nil
}

// checkSenderExit requires the sender to have exited 0 after SIGTERM.
func (c *caseRun) checkSenderExit() error {
	_, code, _ := c.sender.result()
	if code != 0 {
		return fmt.Errorf("sender exited with %d after SIGTERM (want 0): %s", code, c.tail("sender"))
	}
	return nil
}

// checkUnicast bounds receiver i's unicast bytes (server → receiver UDP
// payload from the captures) between lo and hi times content bytes
// (+ unicastSlack on hi) in the interval [from, to) (zero: unbounded).
func (c *caseRun) checkUnicast(i int, content int64, lo, hi float64, from, to time.Time) error {
	got, err := c.unicastBytes(i, from, to)
	if err != nil {
		return err
	}
	max := int64(hi*float64(content)) + unicastSlack
	min := int64(lo * float64(content))
	c.logf("receiver %d: %d unicast bytes from the server (content %d bytes; allowed %d..%d)", i+1, got, content, min, max)
	if got > max {
		return fmt.Errorf("receiver %d got %d bytes over unicast for %d bytes of content (at most %d allowed): multicast did not deliver", i+1, got, content, max)
	}
	if got < min {
		return fmt.Errorf("receiver %d got only %d bytes over unicast for %d bytes of content (at least %d expected): no repair or fallback happened", i+1, got, content, min)
	}
	return nil
}

// unicastBytes counts UDP payload bytes sent by the server to receiver i.
// In loopback mode all receivers share one capture; each is charged an
// equal share.
func (c *caseRun) unicastBytes(i int, from, to time.Time) (int64, error) {
	name := c.net.Receivers[i].Name
	share := int64(1)
	if c.mode == ModeLoopback {
		name = "lo"
		share = int64(len(c.net.Receivers))
	}
	pkts, err := c.capture(name)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range pkts {
		if p.Src != c.net.Server {
			continue
		}
		if (!from.IsZero() && p.Time.Before(from)) || (!to.IsZero() && !p.Time.Before(to)) {
			continue
		}
		n += int64(len(p.Payload))
	}
	return n / share, nil
}

func (c *caseRun) capture(host string) ([]pcapfile.Packet, error) {
	file, ok := c.pcaps[host]
	if !ok {
		return nil, fmt.Errorf("no capture of %s (is tcpdump installed?)", host)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pkts, err := pcapfile.ReadUDPPayloads(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("capture %s: %w", file, err)
	}
	return pkts, nil
}

func (c *caseRun) checkAllExact() error {
	var errs []error
	for i := range c.net.Receivers {
		errs = append(errs, c.checkExact(i))
	}
	return errors.Join(errs...)
}

func checkAnnounce(c *caseRun) error {
	if c.joined[0].IsZero() {
		return errors.New("receiver 1 never joined the group")
	}
	return errors.Join(c.checkExact(0), c.checkExited(0, 0))
}

// checkMulticast: byte-exact everywhere, clean exits, and at most share
// of the content over unicast at each receiver.
func checkMulticast(share float64) func(c *caseRun) error {
	return func(c *caseRun) error {
		var errs []error
		for i := range c.net.Receivers {
			errs = append(errs, c.checkExact(i), c.checkExited(i, 0),
				c.checkUnicast(i, c.contentBytes(-1), 0, share, time.Time{}, time.Time{}))
		}
		return errors.Join(errs...)
	}
}

// driveIntegrity is driveSimple, then, with Runner.Forger, the key
// holder's forgeries once every file has arrived (so that they do not
// shadow the sender's own stream-0 bytes while it pushes).
func driveIntegrity(c *caseRun) error {
	if c.forgery != nil {
		if err := c.learnSession(); err != nil {
			return err
		}
	}
	if err := driveSimple(c); err != nil {
		return err
	}
	if c.forgery == nil {
		return nil
	}
	if err := c.forge(); err != nil {
		return err
	}
	// Time for the receiver to see the forged pushes fail (a push
	// timeout) while the session still runs; the checks look at what it
	// did, whenever it did it.
	time.Sleep(6 * time.Second)
	return nil
}

func checkIntegrity(c *caseRun) error {
	fwd := c.attacker.Forwarded.Load()
	c.logf("attacker re-sent %d tampered packets", fwd)
	var errs []error
	if fwd == 0 {
		errs = append(errs, errors.New("the attacker sent no tampered packet: nothing was tested"))
	}
	errs = append(errs, c.checkExact(0), c.checkExited(0, 0),
		c.checkUnicast(0, c.contentBytes(-1), 0, 0.75, time.Time{}, time.Time{}))
	if c.forgery != nil {
		errs = append(errs, c.checkForgery(0))
	}
	return errors.Join(errs...)
}

func checkSignature(c *caseRun) error {
	if err := checkMulticast(0.2)(c); err != nil {
		return err
	}
	// The receiver must say, per resource, that it verified a signature:
	// a line of its output that names the path and says "signature" and
	// "verified" (or "valid"), in any format (h3m: its delivery lines).
	b, err := os.ReadFile(filepath.Join(c.dir, "receiver-1", "output.txt"))
	if err != nil {
		return err
	}
	var unverified []string
	lines := strings.Split(strings.ToLower(string(b)), "\n")
	for path := range c.released {
		ok := false
		for _, l := range lines {
			if strings.Contains(l, strings.ToLower(path)) && strings.Contains(l, "signature") &&
				(strings.Contains(l, "verified") || strings.Contains(l, "valid")) && !strings.Contains(l, "invalid") {
				ok = true
				break
			}
		}
		if !ok {
			unverified = append(unverified, path)
		}
	}
	c.logf("receiver 1: %d of %d resources reported with a verified signature", len(c.released)-len(unverified), len(c.released))
	if len(unverified) > 0 {
		sort.Strings(unverified)
		return fmt.Errorf("receiver 1 does not report a verified signature for %v", unverified)
	}
	return nil
}

func checkLoss(c *caseRun) error {
	var errs []error
	for i := range c.net.Receivers {
		errs = append(errs, c.checkExact(i), c.checkExited(i, 0),
			c.checkUnicast(i, c.contentBytes(-1), 0.01, 0.85, time.Time{}, time.Time{}))
	}
	return errors.Join(errs...)
}

func checkBlackhole(c *caseRun) error {
	errs := []error{c.checkExact(0), c.checkExited(0, 0)}
	// During the hole the content came over unicast …
	errs = append(errs, c.checkUnicast(0, c.contentBytes(1), 0.9, 2, c.marks["blackhole-on"], c.marks["blackhole-off"]))
	// … and after it, over multicast again.
	errs = append(errs, c.checkUnicast(0, c.contentBytes(2), 0, 0.3, c.marks["release-2"], c.marks["after-done"]))
	return errors.Join(errs...)
}

func checkLateJoin(c *caseRun) error {
	late := len(c.net.Receivers) - 1
	errs := []error{c.checkAllExact(), c.checkExited(0, 0), c.checkExited(late, 0)}
	// The early files reached the late receiver over unicast; the later
	// ones over multicast.
	errs = append(errs, c.checkUnicast(late, c.contentBytes(1), 0, 0.3, c.marks["release-1"], time.Time{}))
	return errors.Join(errs...)
}

func checkClose(c *caseRun) error {
	var errs []error
	for i := range c.net.Receivers {
		errs = append(errs, c.checkExact(i), c.checkExited(i, 5*time.Second))
	}
	errs = append(errs, c.checkSenderExit())
	return errors.Join(errs...)
}

func checkRollover(c *caseRun) error {
	if err := checkMulticast(0.3)(c); err != nil {
		return err
	}
	// The sender's packets must show more than one session: the bytes
	// after the first (the start of the connection ID) change.
	pkts, err := c.capture(c.net.Sender.Name)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	total := 0
	for _, p := range pkts {
		if p.Dst.Addr() != c.net.Group || len(p.Payload) < 5 {
			continue
		}
		counts[string(p.Payload[1:5])]++
		total++
	}
	sessions := 0
	for _, n := range counts {
		if n*50 >= total { // at least 2 % of the packets
			sessions++
		}
	}
	c.logf("sender: %d multicast packets, %d session IDs with at least 2 %% of them", total, sessions)
	if sessions < 2 {
		return fmt.Errorf("the sender's packets show %d session(s): no rollover happened", sessions)
	}
	return nil
}

func checkMultiReceiver(c *caseRun) error {
	var errs []error
	for i := range c.net.Receivers {
		share := 0.2
		if lossOf(c.tc.Topology, i) > 0 {
			share = 0.85
		}
		errs = append(errs, c.checkExact(i), c.checkExited(i, 0),
			c.checkUnicast(i, c.contentBytes(-1), 0, share, time.Time{}, time.Time{}))
	}
	return errors.Join(errs...)
}

func checkGoodput(c *caseRun) error {
	if err := c.checkAllExact(); err != nil {
		return err
	}
	size := c.contentBytes(-1)
	var parts []string
	var sum float64
	for i := range c.net.Receivers {
		first, last, err := c.transferSpan(i)
		if err != nil {
			return err
		}
		kbps := float64(size) * 8 / 1000 / last.Sub(first).Seconds()
		sum += kbps
		parts = append(parts, fmt.Sprintf("r%d %.0f", i+1, kbps))
	}
	c.details = fmt.Sprintf("%.0f kbps mean (%s; %d MiB at RATE %d bit/s)", sum/float64(len(c.net.Receivers)), strings.Join(parts, ", "), size>>20, c.tc.Rate)
	c.logf("goodput: %s", c.details)
	return nil
}

// transferSpan returns, from receiver i's capture, the time of the first
// data packet of the session after the files were released and of the
// last packet (multicast or unicast from the server) that carried data
// before the runner found the file complete.
// Keep-alives (under 200 bytes) do not count.
func (c *caseRun) transferSpan(i int) (first, last time.Time, err error) {
	name := c.net.Receivers[i].Name
	if c.mode == ModeLoopback {
		name = "lo"
	}
	pkts, err := c.capture(name)
	if err != nil {
		return first, last, err
	}
	released := c.marks["release--1"]
	var done time.Time
	for _, t := range c.completeAt[i] {
		if t.After(done) {
			done = t
		}
	}
	for _, p := range pkts {
		if p.Time.Before(released) || p.Time.After(done) || len(p.Payload) < 200 {
			continue
		}
		mc := p.Dst.Addr() == c.net.Group && p.Dst.Port() == c.net.Port
		if mc && first.IsZero() {
			first = p.Time
		}
		if !first.IsZero() && (mc || p.Src == c.net.Server) {
			last = p.Time
		}
	}
	if first.IsZero() || !last.After(first) {
		return first, last, fmt.Errorf("receiver %d: no transfer in the capture", i+1)
	}
	return first, last, nil
}

func checkCPU(c *caseRun) error {
	cpu := c.senderCPU
	size := c.contentBytes(-1)
	perGB := cpu.Seconds() / (float64(size) / 1e9)
	c.details = fmt.Sprintf("%.2f s/GB (%v for %d MiB at RATE %d bit/s)", perGB, cpu, size>>20, c.tc.Rate)
	c.logf("sender CPU: %s", c.details)
	return c.checkAllExact()
}
