package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one endpoint (or helper) process, run in its own process group
// so that it and everything it starts can be stopped together.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	started time.Time

	mu       sync.Mutex
	exited   time.Time
	exitCode int
	stopped  bool // the runner signalled it before it exited by itself
	cpu      time.Duration
}

// startProc starts argv on host with env, writing stdout and stderr to
// logPath.
func startProc(host Host, name string, argv, env []string, dir, logPath string) (*proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := host.Command(context.Background(), argv...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = lf, lf
	// Own process group: stop() signals the whole tree. No Pdeathsig: it
	// fires when the forking OS thread ends, and Host.Do ends threads.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, strings.Join(argv, " "), err)
	}
	p := &proc{name: name, cmd: cmd, logFile: lf, done: make(chan struct{}), started: time.Now(), exitCode: -1}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exited = time.Now()
		p.exitCode = exitCodeOf(err, cmd.ProcessState)
		if st := cmd.ProcessState; st != nil {
			p.cpu = st.UserTime() + st.SystemTime()
		}
		p.mu.Unlock()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func exitCodeOf(err error, st *os.ProcessState) int {
	if st == nil {
		return -1
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1
	}
	return st.ExitCode()
}

// wait waits up to d for the process to exit and reports whether it did.
func (p *proc) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

// exitedItself reports whether the process has exited without being
// signalled by the runner, and its exit code.
func (p *proc) result() (exited bool, code int, stopped bool) {
	select {
	case <-p.done:
		exited = true
	default:
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return exited, p.exitCode, p.stopped
}

// signal sends sig to the process group. It marks the process as stopped
// by the runner.
func (p *proc) signal(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	if !p.wait(context.Background(), grace) {
		p.signal(syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader still get the group's SIGKILL.
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}

// groupCPU sums user and system CPU time of every live process in the
// process group, from /proc/<pid>/stat.
func (p *proc) groupCPU() time.Duration {
	pgid := p.cmd.Process.Pid
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue // not a process
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		grp, t, ok := parseStat(string(b))
		if ok && grp == pgid {
			ticks += t
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// clockTicks is USER_HZ, which is 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// parseStat returns the process group and utime+stime (in clock ticks)
// from a /proc/<pid>/stat line.
func parseStat(s string) (pgrp int, ticks int64, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	// After ")": state ppid pgrp session tty_nr tpgid flags minflt cminflt
	// majflt cmajflt utime stime …
	if len(f) < 13 {
		return 0, 0, false
	}
	pgrp, err1 := strconv.Atoi(f[2])
	ut, err2 := strconv.ParseInt(f[11], 10, 64)
	st, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return pgrp, ut + st, true
}
