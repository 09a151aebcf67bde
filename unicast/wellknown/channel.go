package wellknown

import (
	"fmt"
	"strings"
)

// ParseChannel checks the channel of a session (SessionInfo.Channel): a
// path prefix that ParseTarget accepts, in the form it keeps (no run of
// "/"), with no query, ending in "/" so that "/a/" never matches "/ab". It
// returns the channel as a Target; a request path (decoded, as URL.Path)
// is in the channel when it starts with the Target's Path (InChannel).
// Errors wrap ErrTarget.
func ParseChannel(s string) (Target, error) {
	t, err := ParseTarget(s)
	if err != nil {
		return Target{}, err
	}
	switch {
	case strings.Contains(s, "?"):
		return Target{}, fmt.Errorf("%w: channel %q has a query", ErrTarget, Truncate(s))
	case !strings.HasSuffix(s, "/"):
		return Target{}, fmt.Errorf("%w: channel %q does not end with /", ErrTarget, Truncate(s))
	case t.RawPath != s:
		return Target{}, fmt.Errorf("%w: channel %q is not in normal form (%q)", ErrTarget, Truncate(s), Truncate(t.RawPath))
	}
	return t, nil
}

// InChannel reports whether the decoded request path p ("/720p/seg 1.m4s")
// lies in channel, a Target ParseChannel returned.
func InChannel(channel Target, p string) bool {
	return channel.Path != "" && strings.HasPrefix(p, channel.Path)
}
