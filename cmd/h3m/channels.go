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

// startChannels starts a session per subfolder of o.dir present now: the
// channel "/NAME/" on the Nth group address and port after o.ad's (N from 1,
// in name order), with keys and a session ID of its own. A group of its own,
// because switches and routers forward by (source, group); a port of its
// own too, because h3m's receiver has been seen to lose the packets of two
// sessions joined at once on one port of different groups (interop's
// rollover test).
func startChannels(org *origin.Origin, o serveOptions, e *env) (*channelSet, error) {
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
	cs := &channelSet{byDir: map[string]*origin.Publisher{}}
	group, port := o.ad.Session.Group.Addr(), int(o.ad.Session.Group.Port())
	for _, name := range names {
		group, port = group.Next(), port+1
		if port > 65535 {
			return nil, usagef("--channels: no port left after %d for channel %s (give a lower --port)", o.ad.Session.Group.Port(), name)
		}
		if !group.IsValid() || !group.IsMulticast() || (group.Is4() && !netip.MustParsePrefix("232.0.0.0/8").Contains(group)) {
			return nil, usagef("--channels: no SSM group address left after %v for channel %s (give a lower --group)", o.ad.Session.Group.Addr(), name)
		}
		channel := wellknown.EscapeTarget("/" + name + "/")
		p, err := org.AddChannel(channel)
		if err != nil {
			return nil, err
		}
		ad := origin.Rekey(o.ad)
		ad.Session.Group = netip.AddrPortFrom(group, uint16(port))
		id, err := p.Start(ad)
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", channel, err)
		}
		fmt.Fprintf(e.stdout, "h3m: channel %s: session %s on %s\n", channel, id, ad.Session.Group)
		cs.byDir[name] = p
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
