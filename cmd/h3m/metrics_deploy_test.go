package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The deployment files shipped with h3m: a unit and an example
// configuration for each daemon.
var deployed = []struct{ command, unit, config string }{
	{"serve", "deploy/systemd/h3m-serve.service", "deploy/config/serve.json"},
	{"gateway", "deploy/systemd/h3m-gateway.service", "deploy/config/gateway.json"},
}

// unitSettings reads the Key=Value lines of a unit file (every value of a
// repeated key).
func unitSettings(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is no setting", file, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

// TestDeployConfigsLoad: each example configuration loads with the loader
// the commands use (every setting a flag of the command, every value one
// it takes), and agrees with its unit: the unit reads it from
// /etc/h3m/<name>, the files the command writes lie in the unit's state
// directory, multicast goes to a named interface with TTL 1, and metrics
// stay on loopback.
func TestDeployConfigsLoad(t *testing.T) {
	for _, d := range deployed {
		t.Run(d.command, func(t *testing.T) {
			c := findCommand(commands(), d.command)
			fs := newFlagSet(c)
			c.flags(fs)
			commonFlags(fs, c)
			if err := applyConfig(fs, d.config); err != nil {
				t.Fatalf("%s: %v", d.config, err)
			}
			b, _ := os.ReadFile(d.config)
			var m map[string]any
			json.Unmarshal(b, &m)
			// Each setting took effect: the flag holds what setting it
			// directly gives.
			direct := newFlagSet(c)
			c.flags(direct)
			commonFlags(direct, c)
			for k, v := range m {
				s, _ := configValue(v)
				direct.Set(k, s)
				if got, want := fs.Lookup(k).Value.String(), direct.Lookup(k).Value.String(); got != want {
					t.Errorf("%s: %s is %q, want %q", d.config, k, got, want)
				}
			}
			get := func(name string) string { return fs.Lookup(name).Value.String() }

			u := unitSettings(t, d.unit)
			if exec := strings.Join(u["ExecStart"], " "); !strings.Contains(exec, " "+d.command+" --config /etc/h3m/"+filepath.Base(d.config)) {
				t.Errorf("%s: ExecStart %q does not read /etc/h3m/%s", d.unit, exec, filepath.Base(d.config))
			}
			state := "/var/lib/" + strings.Join(u["StateDirectory"], "")
			if rw := strings.Join(u["ReadWritePaths"], " "); rw != state {
				t.Errorf("%s: ReadWritePaths %q, want the state directory %s alone", d.unit, rw, state)
			}
			if d.command == "serve" {
				for _, f := range []string{"cert", "key"} {
					if filepath.Dir(get(f)) != state {
						t.Errorf("%s: --%s %s is outside the unit's state directory %s, where serve may write", d.config, f, get(f), state)
					}
				}
				if get("ttl") != "1" {
					t.Errorf("%s: ttl %s; the example keeps multicast on the local network", d.config, get("ttl"))
				}
			}
			if i := get("interface"); i == "" || i == "lo" {
				t.Errorf("%s: interface %q: a deployment names its network interface", d.config, i)
			}
			ap, err := netip.ParseAddrPort(get(metricsListenFlag))
			if err != nil || !ap.Addr().IsLoopback() {
				t.Errorf("%s: metrics-listen %q: want a loopback address (%v)", d.config, get(metricsListenFlag), err)
			}
		})
	}
}

// TestDeployUnitsVerify runs systemd-analyze verify on the units (with
// ExecStart pointing at the h3m under test, which must exist), failing on
// any complaint, and bounds their exposure as systemd-analyze security
// rates it. A unit with a misspelled setting shows that verify complains.
func TestDeployUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (Debian package systemd): the units are not checked")
	}
	dir := t.TempDir()
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, analyze, args...).CombinedOutput()
		return string(out), err
	}
	write := func(name, body string) string {
		body = strings.ReplaceAll(body, "/usr/local/bin/h3m", h3mBinary)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var units []string
	for _, d := range deployed {
		b, err := os.ReadFile(d.unit)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "ExecStart=/usr/local/bin/h3m ") {
			t.Errorf("%s: ExecStart does not run /usr/local/bin/h3m", d.unit)
		}
		units = append(units, write(filepath.Base(d.unit), string(b)))
	}
	out, err := run(append([]string{"verify", "--man=no"}, units...)...)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure 0 (locked down) to 10 (unprotected); 1.5 at most.
	out, err = run(append([]string{"security", "--offline=true", "--threshold=15", "--no-pager"}, units...)...)
	if err != nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "Overall exposure") {
			t.Log(strings.TrimSpace(l))
		}
	}

	b, _ := os.ReadFile(deployed[0].unit)
	bad := write("bad.service", strings.Replace(string(b), "NoNewPrivileges=yes", "NoNewPrivilege=yes", 1))
	if out, _ := run("verify", "--man=no", bad); !strings.Contains(out, "NoNewPrivilege") {
		t.Errorf("systemd-analyze verify let a misspelled setting pass: %q", out)
	}
}

// TestCLIMetricsListenTaken: each command that serves metrics says so and
// exits 1 when its metrics address is taken, before it announces, joins or
// serves anything.
func TestCLIMetricsListenTaken(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "a.bin"), []byte("hello"), 0o644)
	for _, args := range [][]string{
		{"serve", "--dir", src, "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp")), "--group", "232.255.7.23", "--port", "5723"},
		{"receive", "--url", "https://127.0.0.1:1/", "--out", t.TempDir()},
		{"gateway", "--url", "https://127.0.0.1:1/", "--listen", fmt.Sprintf("127.0.0.1:%d", freePort(t, "tcp"))},
	} {
		out, errOut, code := runH3M(t, append(args, "--metrics-listen", addr)...)
		want := fmt.Sprintf("h3m %s: --metrics-listen: metrics: cannot listen on %s: listen tcp %s: bind: address already in use", args[0], addr, addr)
		if code != exitFailure || !strings.Contains(errOut, want) || strings.Contains(out, "session") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1 and %q", args[0], code, out, errOut, want)
		}
	}
}
