package main

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestPlanEndpoint: the runner's variables become the h3m command line of
// each role and test case.
func TestPlanEndpoint(t *testing.T) {
	base := map[string]string{"ROLE": "sender", "TESTCASE": "push", "WWW": "/w", "CERTS": "/c", "GROUP": "232.77.0.1",
		"PORT": "7700", "SOURCE": "10.77.0.1", "IFACE": "eth0", "SERVER": "10.77.0.1:4433", "RATE": "1000",
		"URL": "https://10.77.0.1:4433/", "DOWNLOADS": "/d", "GATEWAY": "127.0.0.1:8080"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	if _, err := planEndpoint(envOf(with("TESTCASE", "unsupported-xyz"))); !errors.Is(err, errUnsupportedCase) {
		t.Errorf("random test case: err = %v, want errUnsupportedCase", err)
	}
	if _, err := planEndpoint(envOf(with("TESTCASE", "integrity", "H3M_PROFILE", "h3m-07"))); !errors.Is(err, errUnsupportedCase) {
		t.Errorf("h3m-07 integrity: err = %v, want errUnsupportedCase (no packet protection)", err)
	}
	p, err := planEndpoint(envOf(with("H3M_PROFILE", "h3m-07", "H3M_SUITE", "none", "TESTCASE", "signature")))
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(p.Args, " ")
	for _, want := range []string{"serve ", "--profile h3m-07", "--suite none", "--interface eth0", "--source 10.77.0.1",
		"--group 232.77.0.1", "--port 7700", "--sign-key /c/sign-rsa.key", "--watch", "--ttl 1"} {
		if !strings.Contains(args, want) {
			t.Errorf("sender args %q lack %q", args, want)
		}
	}
	if p.Relay != nil {
		t.Error("unbroken sender has a relay")
	}
	p, err = planEndpoint(envOf(with("H3M_BROKEN", "flip")))
	if err != nil {
		t.Fatal(err)
	}
	if p.Relay == nil || !p.Relay.Flip || p.Relay.InInterface != "lo" || p.Relay.OutInterface != "eth0" ||
		!strings.Contains(strings.Join(p.Args, " "), "--interface lo") {
		t.Errorf("broken sender: relay %+v, args %q: want the sender on lo and a flipping relay lo → eth0", p.Relay, p.Args)
	}
	if _, err := planEndpoint(envOf(with("H3M_BROKEN", "flip", "IFACE", "lo"))); !errors.Is(err, errUnsupportedCase) {
		t.Errorf("broken on loopback: err = %v, want errUnsupportedCase", err)
	}
	p, err = planEndpoint(envOf(with("ROLE", "receiver", "TESTCASE", "dash")))
	if err != nil {
		t.Fatal(err)
	}
	if p.Args[0] != "gateway" || !slices.Contains(p.Args, "127.0.0.1:8080") {
		t.Errorf("dash receiver args = %q, want a gateway on GATEWAY", p.Args)
	}
	p, err = planEndpoint(envOf(with("ROLE", "receiver", "TESTCASE", "loss")))
	if err != nil {
		t.Fatal(err)
	}
	if p.Args[0] != "receive" || !slices.Contains(p.Args, "/d") || !slices.Contains(p.Args, "https://10.77.0.1:4433/") {
		t.Errorf("receiver args = %q", p.Args)
	}
	if slices.Contains(p.Args, "--breaker-sustain") {
		t.Errorf("loss receiver args = %q: the breaker's short timings are for the breaker case only", p.Args)
	}
	p, err = planEndpoint(envOf(with("ROLE", "receiver", "TESTCASE", "breaker")))
	if err != nil {
		t.Fatal(err)
	}
	if args := strings.Join(p.Args, " "); !strings.Contains(args, "--breaker-sustain 1s") || !strings.Contains(args, "--breaker-backoff 2s") {
		t.Errorf("breaker receiver args = %q, want the breaker's short sustain and back-off", args)
	}
	if _, err := planEndpoint(envOf(with("ROLE", "receiver", "URL", ""))); err == nil || errors.Is(err, errUnsupportedCase) {
		t.Errorf("missing URL: err = %v, want a plain error", err)
	}
}
