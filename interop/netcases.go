package interop

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The network cases: what a snooping switch and a slow link do to a
// session. Their endpoints run the push case (TESTCASE=push), so any
// implementation that pushes can take part; what differs is the network.

// Rates of the bottleneck case: a session faster than the receiver's link.
const (
	bottleneckSession = 50_000_000
	bottleneckLink    = 20_000_000
)

// NetworkCases returns the cases of the network itself, in matrix order:
// the snooping switch, the bottleneck link and the receiver's circuit
// breaker behind it.
func NetworkCases() []*TestCase {
	return []*TestCase{
		{
			Name: "snooping", Abbr: "W", EndpointName: "push",
			Desc: "On a switch that snoops IGMPv3/MLDv2: the bridge forwards the group to a receiver's port once it " +
				"reports, a late joiner is forwarded the session after its report, a receiver that exits leaves the " +
				"bridge's database, and a host that never joined receives no session packet.",
			Topology:   Topology{Receivers: 3, Snooping: true},
			NeedsNetns: true, Timeout: 40 * time.Second, Rate: defaultRate,
			Later: 2, // r2 joins late, r3 never
			files: batches(3, 2, 200<<10),
			drive: driveSnooping,
			check: checkSnooping,
		},
		{
			Name: "bottleneck", Abbr: "K", EndpointName: "push",
			Desc: "A receiver behind a 20 Mbit/s link (tbf) under a 50 Mbit/s session: the link drops in bursts when " +
				"its queue overflows, and the receiver still gets every file byte-exact.",
			Topology:   Topology{Receivers: 1, Bottleneck: []Bottleneck{{Rate: bottleneckLink}}},
			NeedsNetns: true, Timeout: 40 * time.Second, Rate: bottleneckSession,
			files: repeat(8, 512<<10),
			drive: driveBottleneck,
			check: checkBottleneck,
		},
		{
			Name: "breaker", Abbr: "X",
			Desc: "The bottleneck behind a snooping switch, with the receiver's circuit breaker (TESTCASE=breaker: trip " +
				"after 1 s of bad windows, rejoin after 2 s): the receiver leaves the group (the bridge drops its " +
				"membership), gets the files over unicast byte-exact, and joins again after the back-off.",
			Topology:   Topology{Receivers: 1, Snooping: true, Bottleneck: []Bottleneck{{Rate: bottleneckLink}}},
			NeedsNetns: true, Timeout: 60 * time.Second, Rate: bottleneckSession,
			files: repeat(16, 1<<20),
			drive: driveBreaker,
			check: checkBreaker,
		},
	}
}

// switchNote describes the bridge for the case's log.
func switchNote(n *Network) string {
	if n.Snooping {
		return ", snooping switch (IGMPv3/MLDv2, querier on)"
	}
	return ""
}

// switchForwards reports whether the switch forwards the session to h: on
// a snooping switch, once h's port is a member of (sender, group) in the
// bridge's database; on a flooding bridge, always.
func (c *caseRun) switchForwards(h Host) bool {
	if !c.net.Snooping {
		return true
	}
	ok, err := c.net.Member(c.ctx, h, c.net.Group, c.net.Sender.Addr)
	return err == nil && ok
}

// driveSnooping: receiver 1 gets batch 0; receiver 2 starts, and once the
// bridge has its report, batch 1 goes to both; receiver 1 exits, and once
// the bridge dropped its port, batch 2 goes to receiver 2 only. Host 3
// never joins. Every host counts the session's packets at its interface.
func driveSnooping(c *caseRun) error {
	n := c.net
	if !n.Snooping {
		return errors.New("snooping case on a bridge that does not snoop")
	}
	for _, h := range n.Receivers {
		if err := h.CountGroup(c.ctx, n.Group, n.Port); err != nil {
			return err
		}
	}
	if err := c.release(0); err != nil {
		return err
	}
	if err := c.waitFiles([]int{0}, 0); err != nil {
		return err
	}
	if err := c.startReceiver(1); err != nil {
		return err
	}
	if err := c.waitJoined(1); err != nil { // the bridge has its report
		return err
	}
	if err := c.waitFiles([]int{1}, 0); err != nil {
		return fmt.Errorf("late receiver, earlier files: %w", err)
	}
	if err := c.release(1); err != nil {
		return err
	}
	if err := c.waitFiles([]int{0, 1}, 1); err != nil {
		return err
	}
	// Receiver 1 exits: its membership must go from the bridge.
	c.marks["leave"] = time.Now()
	c.receivers[0].stop(5 * time.Second)
	wctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	err := n.WaitMember(wctx, n.Receivers[0], n.Group, n.Sender.Addr, false)
	cancel()
	if err != nil {
		return fmt.Errorf("receiver 1 exited: %w", err)
	}
	c.logf("the bridge dropped receiver 1's membership %v after it was stopped", time.Since(c.marks["leave"]).Round(time.Millisecond))
	atLeave, err := n.Receivers[0].GroupPackets(c.ctx)
	if err != nil {
		return err
	}
	if err := c.release(2); err != nil {
		return err
	}
	if err := c.waitFiles([]int{1}, 2); err != nil {
		return err
	}
	var errs []error
	counts := make([]uint64, len(n.Receivers))
	for i, h := range n.Receivers {
		if counts[i], err = h.GroupPackets(c.ctx); err != nil {
			return err
		}
	}
	c.details = fmt.Sprintf("session packets at r1 %d (%d at its leave), r2 %d, r3 %d", counts[0], atLeave, counts[1], counts[2])
	c.logf("%s", c.details)
	if counts[0] == 0 || counts[1] == 0 {
		errs = append(errs, fmt.Errorf("a member counted no session packet: multicast did not deliver (%s)", c.details))
	}
	if counts[0] != atLeave {
		errs = append(errs, fmt.Errorf("receiver 1's host counted %d session packets after its leave", counts[0]-atLeave))
	}
	if counts[2] != 0 {
		errs = append(errs, fmt.Errorf("host 3 never joined but counted %d session packets: the switch flooded", counts[2]))
	}
	return errors.Join(errs...)
}

// checkSnooping: receiver 1 holds batches 0 and 1, receiver 2 everything,
// byte-exact; receiver 2 exits 0; what was released after receiver 2's
// report reached it over multicast (little unicast).
func checkSnooping(c *caseRun) error {
	errs := []error{c.checkExactBatches(0, 0, 1), c.checkExactBatches(1, -1), c.checkExited(1, 0)}
	errs = append(errs, c.checkUnicast(1, c.contentBytes(1)+c.contentBytes(2), 0, 0.3, c.marks["release-1"], time.Time{}))
	return errors.Join(errs...)
}

// checkExactBatches checks receiver i's copies of the given batches (-1:
// every released file) against the originals.
func (c *caseRun) checkExactBatches(i int, batches ...int) error {
	var bad []string
	cnt := 0
	for _, b := range batches {
		for _, f := range c.batchFiles(b) {
			if _, ok := c.released[f.Path]; !ok {
				continue
			}
			cnt++
			data, err := os.ReadFile(filepath.Join(c.downloads[i], filepath.FromSlash(f.Path)))
			switch {
			case err != nil:
				bad = append(bad, f.Path+" missing")
			case sha256.Sum256(data) != c.sums[f.Path]:
				bad = append(bad, f.Path+" differs")
			}
		}
	}
	if len(bad) > 0 {
		if len(bad) > 4 {
			bad = append(bad[:4], "…")
		}
		return fmt.Errorf("receiver %d: %v", i+1, bad)
	}
	c.logf("receiver %d: %d files byte-exact", i+1, cnt)
	return nil
}

// driveBottleneck releases everything and waits for the receiver behind
// the slow link.
func driveBottleneck(c *caseRun) error {
	if err := driveSimple(c); err != nil {
		return err
	}
	drops, err := c.net.BottleneckDrops(c.ctx, 0)
	if err != nil {
		return err
	}
	c.details = fmt.Sprintf("the %d Mbit/s link dropped %d packets", bottleneckLink/1_000_000, drops)
	c.logf("%s", c.details)
	if drops == 0 {
		return fmt.Errorf("the link dropped nothing under a %d Mbit/s session: no bottleneck", bottleneckSession/1_000_000)
	}
	return nil
}

// checkBottleneck: byte-exact, and the receiver exits 0.
func checkBottleneck(c *caseRun) error {
	return errors.Join(c.checkExact(0), c.checkExited(0, 0))
}

// driveBreaker releases every file and watches the bridge: the receiver's
// membership must go (the breaker left the group) and come back (it
// joined again after the back-off), and every file must arrive.
func driveBreaker(c *caseRun) error {
	n := c.net
	h := n.Receivers[0]
	if err := c.release(-1); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	err := n.WaitMember(wctx, h, n.Group, n.Sender.Addr, false)
	cancel()
	if err != nil {
		return fmt.Errorf("the receiver's breaker did not leave the group: %w", err)
	}
	c.marks["left"] = time.Now()
	c.logf("the receiver left the group %v after the release", c.marks["left"].Sub(c.marks["release--1"]).Round(time.Millisecond))
	wctx, cancel = context.WithTimeout(c.ctx, 30*time.Second)
	err = n.WaitMember(wctx, h, n.Group, n.Sender.Addr, true)
	cancel()
	if err != nil {
		return fmt.Errorf("the receiver did not join the group again after its back-off: %w", err)
	}
	c.marks["rejoined"] = time.Now()
	c.logf("the receiver joined again %v after it left", c.marks["rejoined"].Sub(c.marks["left"]).Round(time.Millisecond))
	if err := c.waitFiles([]int{0}, -1); err != nil {
		return err
	}
	drops, err := n.BottleneckDrops(c.ctx, 0)
	if err != nil {
		return err
	}
	c.details = fmt.Sprintf("left the group %v after the release, back %v later; the link dropped %d packets",
		c.marks["left"].Sub(c.marks["release--1"]).Round(100*time.Millisecond),
		c.marks["rejoined"].Sub(c.marks["left"]).Round(100*time.Millisecond), drops)
	return nil
}

// checkBreaker: byte-exact, exit 0, the receiver logged the trip, and a
// good part of the content came over unicast.
func checkBreaker(c *caseRun) error {
	errs := []error{c.checkExact(0), c.checkExited(0, 0)}
	out, err := os.ReadFile(filepath.Join(c.dir, "receiver-1", "output.txt"))
	if err != nil {
		errs = append(errs, err)
	} else if !strings.Contains(string(out), "circuit breaker tripped") {
		errs = append(errs, errors.New("the receiver's output does not say its circuit breaker tripped"))
	}
	errs = append(errs, c.checkUnicast(0, c.contentBytes(-1), 0.2, 1.5, time.Time{}, time.Time{}))
	return errors.Join(errs...)
}
