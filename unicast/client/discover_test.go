package client

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/h3m-project/h3m/unicast/wellknown"
)

// testAltSvc is a session advertisement in the draft's parameter syntax
// (RFC 7838), with the secret form of keys.
const testAltSvc = `h3m-11="232.1.2.3:5000"; source-address="192.0.2.1"; session-id=0a0b; cipher-suite=1301; secret=9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b; session-idle-timeout=60000; max-concurrent-resources=8; peak-flow-rate=1000000`

func TestDescribeAltSvc(t *testing.T) {
	d, err := describeAltSvc([]string{`h3=":443"`, testAltSvc})
	if err != nil {
		t.Fatal(err)
	}
	if !d.FromAltSvc || len(d.Sessions) != 1 || d.Sessions[0].ID != "0a0b" || d.Sessions[0].State != wellknown.StateActive {
		t.Errorf("%+v", d)
	}
	if d, err := describeAltSvc([]string{"clear"}); err != nil || len(d.Sessions) != 0 {
		t.Errorf("clear: %+v, %v", d, err)
	}
	for _, bad := range [][]string{nil, {`h3=":443"`}, {`h3m-11="232.1.2.3:5000"; key`}, {`h3m-11="232.1.2.3:5000"; cipher-suite=1301; key=00`}} {
		if _, err := describeAltSvc(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestLoadCertPool(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadCertPool(filepath.Join(dir, "none")); err == nil {
		t.Error("missing CA file accepted")
	}
	os.WriteFile(filepath.Join(dir, "junk"), []byte("junk"), 0o644)
	if _, err := LoadCertPool(filepath.Join(dir, "junk")); err == nil {
		t.Error("CA file without a certificate accepted")
	}
}
