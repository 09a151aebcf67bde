//go:build unix

package bench

import (
	"syscall"
	"time"
)

// processCPU returns the user and system time the process has used, or 0
// if the system does not say.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
