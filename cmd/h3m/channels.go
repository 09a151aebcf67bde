package main

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/h3m-project/h3m/unicast/origin"
	"github.com/h3m-project/h3m/unicast/wellknown"
)

// channelSet maps the subfolders of serve's --dir to the publishers of
// their channels (serve --channels).
type channelSet struct {
	byDir map[string]*origin.Publisher // first path segment -> publisher
}

// channelPlan is a channel serve --channels runs: its folder, its channel
// and its session's group and port.
type channelPlan struct {
	dir, channel string
	group        netip.AddrPort
}

// planChannels lists the channels of the subfolders of o.dir present now:
// the channel "/NAME/" on the Nth group address and port after o.ad's (N
// from 1, in name order). A group of its own, because switches and routers
// forward by (source, group); a port of its own too, so that a receiver's
// sockets for several renditions never share a port (only Linux lets a
// socket bound to one port get just its own group's datagrams) and
// firewalls and captures tell the renditions apart by port.
func planChannels(o serveOptions, e *env) ([]channelPlan, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("--channels: %w", err)
	}
	var names []string
	for _, d := range entries {
		if !d.IsDir() || origin.Excluded(d.Name()) {
			continue
		}
		if _, err := wellknown.ParseChannel(wellknown.EscapeTarget("/" + d.Name() + "/")); err != nil {
			e.log.Warn("--channels: this subfolder cannot be a channel; its files go on the main session", "folder", d.Name(), "err", err)
			continue
		}
		names = append(names, d.Name())
	}
	if len(names) == 0 {
		return nil, usagef("--channels: %s has no subfolder to make a channel of", o.dir)
	}
	if len(names) >= wellknown.MaxSessions/2 {
		return nil, usagef("--channels: %d subfolders, at most %d channels", len(names), wellknown.MaxSessions/2-1)
	}
	sort.Strings(names)
	base := o.ad.Session.Group
	group, port := base.Addr(), int(base.Port())
	var plans []channelPlan
	for _, name := range names {
		group, port = group.Next(), port+1
		if !group.IsValid() || !group.IsMulticast() || (group.Is4() && !netip.MustParsePrefix("232.0.0.0/8").Contains(group)) {
			return nil, usagef("--channels: no SSM group address left after %v for channel %s (give a lower --group)", base.Addr(), name)
		}
		if port > 65535 {
			return nil, usagef("--channels: no port left after %d for channel %s (give a lower --port)", base.Port(), name)
		}
		plans = append(plans, channelPlan{dir: name, channel: wellknown.EscapeTarget("/" + name + "/"), group: netip.AddrPortFrom(group, uint16(port))})
	}
	return plans, nil
}

// startChannels starts a session per planned channel, each with keys and a
// session ID of its own.
func startChannels(org *origin.Origin, o serveOptions, plans []channelPlan, e *env) (*channelSet, error) {
	cs := &channelSet{byDir: map[string]*origin.Publisher{}}
	for _, c := range plans {
		p, err := org.AddChannel(c.channel)
		if err != nil {
			return nil, err
		}
		ad := origin.Rekey(o.ad)
		ad.Session.Group = c.group
		id, err := p.Start(ad)
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", c.channel, err)
		}
		fmt.Fprintf(e.stdout, "h3m: channel %s: session %s on %s\n", c.channel, id, c.group)
		cs.byDir[c.dir] = p
	}
	return cs, nil
}

// publisher returns the publisher of the file at rel (slash-separated,
// relative to --dir): its channel's, or main for a file in none.
func (cs *channelSet) publisher(main *origin.Publisher, rel string) *origin.Publisher {
	if cs == nil {
		return main
	}
	dir, _, nested := strings.Cut(rel, "/")
	if p := cs.byDir[dir]; nested && p != nil {
		return p
	}
	return main
}
