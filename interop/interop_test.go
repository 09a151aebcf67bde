package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDefaultRegistry(t *testing.T) {
	reg := DefaultRegistry()
	for _, name := range []string{"h3m", "h3m-07", "broken"} {
		if reg[name] == nil {
			t.Fatalf("built-in registry lacks %q", name)
		}
	}
	if got := reg.Names(RoleSender, false); !slices.Equal(got, []string{"h3m", "h3m-07"}) {
		t.Errorf("default senders = %v, want [h3m h3m-07] (broken is optional)", got)
	}
	if got := reg.Names(RoleSender, true); !slices.Contains(got, "broken") {
		t.Errorf("senders with optional = %v, want broken among them", got)
	}
	if got := reg.Names(RoleReceiver, true); slices.Contains(got, "broken") {
		t.Errorf("broken is a sender only, but receivers = %v", got)
	}
	if reg["h3m-07"].Sender.Env["H3M_PROFILE"] != "h3m-07" || reg["h3m-07"].Sender.Env["H3M_SUITE"] != "none" {
		t.Errorf("h3m-07 entry: %+v", reg["h3m-07"].Sender)
	}
}

func TestParseRegistryErrors(t *testing.T) {
	for name, js := range map[string]string{
		"empty":           `{}`,
		"bad role":        `{"x": {"role": "client", "sender": {"cmd": ["a"]}}}`,
		"missing sender":  `{"x": {"role": "both", "receiver": {"cmd": ["a"]}}}`,
		"empty cmd":       `{"x": {"role": "sender", "sender": {"cmd": []}}}`,
		"bad placeholder": `{"x": {"role": "sender", "sender": {"cmd": ["{WWW"]}}}`,
		"unknown field":   `{"x": {"role": "sender", "image": "y", "sender": {"cmd": ["a"]}}}`,
		"bad name":        `{"a b": {"role": "sender", "sender": {"cmd": ["a"]}}}`,
		"bad env name":    `{"x": {"role": "sender", "sender": {"cmd": ["a"], "env": {"A=B": "c"}}}}`,
		"null":            `{"x": null}`,
		"not json":        `[`,
	} {
		if _, err := ParseRegistry(strings.NewReader(js)); err == nil {
			t.Errorf("%s: ParseRegistry(%s) succeeded", name, js)
		}
	}
}

func TestEndpointCommand(t *testing.T) {
	e := &Endpoint{Cmd: []string{"{h3m}", "serve", "--dir", "{WWW}", "--group={GROUP}:{PORT}"}, Env: map[string]string{"Z": "{ROLE}", "A": "x"}}
	argv, env, err := e.Command(map[string]string{"h3m": "/bin/h3m", "WWW": "/www", "GROUP": "232.1.1.1", "PORT": "5", "ROLE": "sender"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/h3m", "serve", "--dir", "/www", "--group=232.1.1.1:5"}; !slices.Equal(argv, want) {
		t.Errorf("argv = %q, want %q", argv, want)
	}
	if want := []string{"A=x", "Z=sender"}; !slices.Equal(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
	if _, _, err := e.Command(map[string]string{"h3m": "x"}); err == nil || !strings.Contains(err.Error(), "{WWW}") {
		t.Errorf("missing variable: err = %v, want one naming {WWW}", err)
	}
}

func TestParseMaddr(t *testing.T) {
	out := `2:	eth0
	link  33:33:00:00:00:01
	link  01:00:5e:4d:00:01
	inet  232.77.0.1 users 2
	inet  224.0.0.1
	inet6 ff3e::77:1
	inet6 ff02::1 users 2
`
	for _, c := range []struct {
		group string
		want  int
	}{{"232.77.0.1", 2}, {"224.0.0.1", 1}, {"ff3e::77:1", 1}, {"232.77.0.2", 0}, {"ff3e::77:2", 0}} {
		if got := parseMaddr(out, netip.MustParseAddr(c.group)); got != c.want {
			t.Errorf("parseMaddr(%s) = %d, want %d", c.group, got, c.want)
		}
	}
}

func TestParseProcNet(t *testing.T) {
	udp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 01004D0A:1151 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0000000000000000 0
`
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F91 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
`
	if !parseProcNet(udp, 4433) {
		t.Error("UDP 4433 not found")
	}
	if !parseProcNet(tcp, 8080) {
		t.Error("TCP listener 8080 not found")
	}
	if parseProcNet(udp+tcp, 4434) {
		t.Error("port 4434 found")
	}
}

func TestParseStat(t *testing.T) {
	// pid (comm with ") spaces") state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime …
	s := "4242 (h3m (x) y) S 1 4240 4240 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 8 0"
	pgrp, ticks, ok := parseStat(s)
	if !ok || pgrp != 4240 || ticks != 287 {
		t.Errorf("parseStat = %d, %d, %v; want 4240, 287, true", pgrp, ticks, ok)
	}
	if _, _, ok := parseStat("garbage"); ok {
		t.Error("parseStat accepted garbage")
	}
}

func TestResultsLayout(t *testing.T) {
	tests := TestCases()[:3]
	r := &Runner{Registry: DefaultRegistry(), Senders: []string{"h3m", "h3m-07"}, Receivers: []string{"h3m"}, Tests: tests, LogDir: "logs"}
	res := newResults(r, ModeNetns)
	res.add("h3m", "h3m", []CaseResult{{Abbr: "A", Name: "announce", Result: Succeeded}, {Abbr: "P", Name: "push", Result: Failed, Reason: "x"},
		{Abbr: "M", Name: "push-many", Result: Unsupported}}, nil)
	res.add("h3m-07", "h3m", []CaseResult{{Abbr: "A", Name: "announce", Result: Succeeded}, {Abbr: "P", Name: "push", Result: Succeeded},
		{Abbr: "M", Name: "push-many", Result: Succeeded}}, nil)
	res.EndTime = time.Now()
	var buf bytes.Buffer
	if err := res.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"start_time", "end_time", "log_dir", "senders", "receivers", "urls", "tests", "results", "measurements"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, buf.String())
		}
	}
	first := m["results"].([]any)[0].([]any)[1].(map[string]any)
	if first["abbr"] != "P" || first["name"] != "push" || first["result"] != "failed" {
		t.Errorf("results[0][1] = %v", first)
	}
	if tst := m["tests"].(map[string]any)["A"].(map[string]any); tst["name"] != "announce" || tst["desc"] == "" {
		t.Errorf(`tests["A"] = %v`, tst)
	}
	if got := res.Cell("h3m-07", "h3m"); len(got) != 3 || got[1].Result != Succeeded {
		t.Errorf("Cell(h3m-07, h3m) = %v", got)
	}
	buf.Reset()
	res.WriteText(&buf)
	txt := buf.String()
	for _, want := range []string{"| h3m ", "✓(A)", "?(M)", "✕(P)", "✓(A P M)", "h3m-07"} {
		if !strings.Contains(txt, want) {
			t.Errorf("text matrix lacks %q:\n%s", want, txt)
		}
	}
	buf.Reset()
	res.WriteMarkdown(&buf)
	md := buf.String()
	for _, want := range []string{"| receiver \\ sender | h3m | h3m-07 |", "| --- | --- | --- |", "✓(A)<br>?(M)<br>✕(P)", "- **A** announce"} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
}

// TestCompliance runs the QUIC runner's compliance check on endpoints
// that do and do not answer an unknown test case with 127.
func TestCompliance(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	r := &Runner{H3M: "/nonexistent"}
	good := &Implementation{Name: "good", Role: RoleBoth, Sender: &Endpoint{Cmd: []string{"sh", "-c", `case "$TESTCASE" in push) exit 0;; *) exit 127;; esac`}}}
	if err := r.compliance(context.Background(), good, RoleSender); err != nil {
		t.Errorf("compliant endpoint: %v", err)
	}
	bad := &Implementation{Name: "bad", Role: RoleBoth, Sender: &Endpoint{Cmd: []string{"sh", "-c", "echo running; exit 0"}}}
	if err := r.compliance(context.Background(), bad, RoleSender); err == nil || !strings.Contains(err.Error(), "exit code 0") {
		t.Errorf("non-compliant endpoint: err = %v, want exit code 0 reported", err)
	}
}

func FuzzParseRegistry(f *testing.F) {
	f.Add([]byte(defaultRegistry))
	f.Add([]byte(`{"x": {"role": "sender", "sender": {"cmd": ["{h3m}", "{A}{B}"], "env": {"K": "{V}"}}}}`))
	f.Add([]byte(`{"x": {"role": "both", "sender": {"cmd": ["a"]}, "receiver": {"cmd": ["b"]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		reg, err := ParseRegistry(bytes.NewReader(b))
		if err != nil {
			return
		}
		vars := map[string]string{}
		for _, impl := range reg {
			for _, role := range []Role{RoleSender, RoleReceiver} {
				if ep := impl.Endpoint(role); ep != nil && (role == RoleSender && impl.CanSend() || role == RoleReceiver && impl.CanReceive()) {
					if len(ep.Cmd) == 0 {
						t.Fatalf("%s: accepted an empty command", impl.Name)
					}
					ep.Command(vars) // errors are fine; panics are not
				}
			}
		}
	})
}
