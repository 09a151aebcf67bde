// Package caplog logs the limits that bite: every cap of the unicast
// packages has a counter and a log line when it refuses something, at its
// level (a warning, mostly) the first time and then at most once a minute
// (with how many times it bit since), at debug level otherwise, so that a
// flood cannot flood the log too.
package caplog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Interval is the least time between two lines of one Limit above debug.
const Interval = time.Minute

// Limit is the log of one cap. The zero value is ready to use.
type Limit struct {
	mu    sync.Mutex
	last  time.Time
	since uint64 // bites since the last line above debug
}

// Bit logs that the cap refused something: a line at level (a warning,
// say) carrying the number of bites since the last such line when Interval
// has passed since it, otherwise a debug line.
func (l *Limit) Bit(log *slog.Logger, level slog.Level, msg string, args ...any) {
	now := time.Now()
	l.mu.Lock()
	l.since++
	warn := l.last.IsZero() || now.Sub(l.last) >= Interval
	n := l.since
	if warn {
		l.last, l.since = now, 0
	}
	l.mu.Unlock()
	if !warn {
		level = slog.LevelDebug
	} else {
		args = append(args, "times", n)
	}
	log.Log(context.Background(), level, msg, args...)
}
