package altsvc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/h3m-project/h3m/mquic"
	"github.com/h3m-project/h3m/mquic/manifest"
	"github.com/h3m-project/h3m/mquic/protect"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The draft's example advertisements (Appendix B.1.1 and B.1.3 of -07 and
// -09, as ref/draft-digest.md §2.2 reproduces them). The draft folds B.1.3
// over several lines for display; a field value is one line.
const (
	draftB11 = `h3m="232.0.0.1:2000"; source-address="192.0.2.1"; session-id=10; session-idle-timeout=60; max-concurrent-resources=10; peak-flow-rate=10000`
	draftB13 = `h3m="[ff3e::1234]:2000"; source-address="2001:db8::1"; ` +
		`session-id=10; session-idle-timeout=60; ` +
		`max-concurrent-resources=10; peak-flow-rate=10000; ` +
		`cipher-suite=1301; key=4adf1eab9c2a37fd; ` +
		`iv=4dbe593acb4d1577ad6ba7dc3189834e; ` +
		`digest-algorithm=SHA-256; signature-algorithm=rsa-sha256`
)

func parseOne(t *testing.T, v string) *Advertisement {
	t.Helper()
	ads, clear, err := Parse(v)
	if err != nil {
		t.Fatalf("Parse(%q): %v", v, err)
	}
	if clear || len(ads) != 1 {
		t.Fatalf("Parse(%q): clear %t, %d ads", v, clear, len(ads))
	}
	return &ads[0]
}

func TestDraftExampleB11(t *testing.T) {
	a := parseOne(t, draftB11)
	want := &Advertisement{
		ProtocolID: "h3m",
		Draft:      0,
		Session: mquic.Params{
			Group:                  netip.MustParseAddrPort("232.0.0.1:2000"),
			Source:                 netip.MustParseAddr("192.0.2.1"),
			SessionID:              []byte{0x10},
			IdleTimeout:            60 * time.Millisecond, // the ABNF's unit, not the prose's minute
			MaxConcurrentResources: 10,
			PeakFlowRate:           10000,
		},
		Params: []Param{
			{"source-address", "192.0.2.1"}, {"session-id", "10"}, {"session-idle-timeout", "60"},
			{"max-concurrent-resources", "10"}, {"peak-flow-rate", "10000"},
		},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got  %+v\nwant %+v", a, want)
	}
	if a.Session.CipherSuite != protect.SuiteNull {
		t.Error("absent cipher-suite is not the NULL suite")
	}
	if err := a.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestDraftExampleB13(t *testing.T) {
	a := parseOne(t, draftB13)
	want := &Advertisement{
		ProtocolID: "h3m",
		Session: mquic.Params{
			Group:                  netip.MustParseAddrPort("[ff3e::1234]:2000"),
			Source:                 netip.MustParseAddr("2001:db8::1"),
			SessionID:              []byte{0x10},
			CipherSuite:            protect.SuiteAES128GCM,
			Key:                    mustHex(t, "4adf1eab9c2a37fd"),
			IV:                     mustHex(t, "4dbe593acb4d1577ad6ba7dc3189834e"),
			IdleTimeout:            60 * time.Millisecond,
			MaxConcurrentResources: 10,
			PeakFlowRate:           10000,
		},
		DigestAlgorithms:    []string{"SHA-256"},
		SignatureAlgorithms: []string{"rsa-sha256"},
		Params: []Param{
			{"source-address", "2001:db8::1"}, {"session-id", "10"}, {"session-idle-timeout", "60"},
			{"max-concurrent-resources", "10"}, {"peak-flow-rate", "10000"}, {"cipher-suite", "1301"},
			{"key", "4adf1eab9c2a37fd"}, {"iv", "4dbe593acb4d1577ad6ba7dc3189834e"},
			{"digest-algorithm", "SHA-256"}, {"signature-algorithm", "rsa-sha256"},
		},
	}
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got  %+v\nwant %+v", a, want)
	}
	if a.HasMaxAge || a.Persist || a.HasExperiment(ExperimentDataOffset) {
		t.Error("unexpected ma, persist or experiment")
	}
	// The draft's key is 8 bytes, TLS_AES_128_GCM_SHA256 needs 16: the
	// example parses but does not validate.
	err := a.Validate()
	var pe *mquic.ParamError
	if !errors.As(err, &pe) || pe.Param != "key" {
		t.Errorf("Validate: %v, want a key error", err)
	}
	// Canonical rendering: tokens where allowed, the IPv6 source quoted.
	const canon = `h3m="[ff3e::1234]:2000"; source-address="2001:db8::1"; session-id=10; cipher-suite=1301; ` +
		`key=4adf1eab9c2a37fd; iv=4dbe593acb4d1577ad6ba7dc3189834e; session-idle-timeout=60; ` +
		`max-concurrent-resources=10; peak-flow-rate=10000; digest-algorithm=SHA-256; signature-algorithm=rsa-sha256`
	if s := a.String(); s != canon {
		t.Errorf("String() =\n%s\nwant\n%s", s, canon)
	}
}

func TestMixedFieldValue(t *testing.T) {
	secret := "9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b"
	v := `h3=":443"; ma=3600, h3m-11="232.1.2.3:5000"; source-address=192.0.2.10; session-id=BADBEEF; ` +
		`cipher-suite=1303; secret=` + secret + `; ma=600; persist=1, h2="alt.example.com:443", ` +
		`h3m-07-data-offset="[ff3e::42]:2001"; source-address="[2001:db8::2]"; extensions="0094,0d0d=f00"; persist=0`
	ads, clear, err := Parse(v)
	if err != nil || clear || len(ads) != 2 {
		t.Fatalf("Parse: %d ads, clear %t, %v", len(ads), clear, err)
	}
	a := &ads[0]
	if a.ProtocolID != "h3m-11" || a.Draft != 11 || a.Experiments != nil {
		t.Errorf("protocol: %q %d %q", a.ProtocolID, a.Draft, a.Experiments)
	}
	s := a.Session
	if s.Group != netip.MustParseAddrPort("232.1.2.3:5000") || s.Source != netip.MustParseAddr("192.0.2.10") {
		t.Errorf("group/source: %v %v", s.Group, s.Source)
	}
	if !bytes.Equal(s.SessionID, []byte{0x0b, 0xad, 0xbe, 0xef}) { // odd digit count: 0 nibble in front
		t.Errorf("session-id %x", s.SessionID)
	}
	if s.CipherSuite != protect.SuiteChaCha20Poly1305 || !bytes.Equal(s.Secret, mustHex(t, secret)) || s.Key != nil {
		t.Errorf("crypto: %v %x %x", s.CipherSuite, s.Secret, s.Key)
	}
	if !a.HasMaxAge || a.MaxAge != 600*time.Second || !a.Persist {
		t.Errorf("ma %v %t persist %t", a.MaxAge, a.HasMaxAge, a.Persist)
	}
	if err := a.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	b := &ads[1]
	if b.ProtocolID != "h3m-07-data-offset" || b.Draft != 7 || !reflect.DeepEqual(b.Experiments, []string{"data-offset"}) ||
		!b.HasExperiment(ExperimentDataOffset) || b.HasExperiment("data") {
		t.Errorf("protocol: %q %d %q", b.ProtocolID, b.Draft, b.Experiments)
	}
	if b.Session.Source != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("bracketed source %v", b.Session.Source)
	}
	wantExt := []mquic.Extension{{ID: 0x0094}, {ID: 0x0d0d, Value: []byte{0x0f, 0x00}}}
	if !reflect.DeepEqual(b.Session.Extensions, wantExt) {
		t.Errorf("extensions %+v", b.Session.Extensions)
	}
	if b.Persist || b.HasMaxAge {
		t.Errorf("persist=0 must be ignored (RFC 7838 §3.1): %t", b.Persist)
	}

	// Header renders both; the result parses to equal advertisements.
	h := Header(ads...)
	again, _, err := Parse(h)
	if err != nil || len(again) != 2 || !again[0].Equal(a) || !again[1].Equal(b) {
		t.Fatalf("Header round trip: %v\n%s", err, h)
	}
}

func TestFirstInstanceWins(t *testing.T) {
	a := parseOne(t, `h3m-11="232.1.2.3:5000"; session-id=01; session-id=02; source-address=192.0.2.1; source-address=192.0.2.2; `+
		`peak-flow-rate=100; peak-flow-rate=not-a-number; cipher-suite=1301; cipher-suite=1302; key=00; key=zz; `+
		`max-concurrent-resources=4; max-concurrent-resources=5; session-idle-timeout=1000; session-idle-timeout=1; `+
		`ma=10; ma=20; iv=aa; iv=bb; secret=cc; secret=dd`)
	s := a.Session
	if !bytes.Equal(s.SessionID, []byte{1}) || s.Source != netip.MustParseAddr("192.0.2.1") || s.PeakFlowRate != 100 ||
		s.CipherSuite != protect.SuiteAES128GCM || !bytes.Equal(s.Key, []byte{0}) || s.MaxConcurrentResources != 4 ||
		s.IdleTimeout != time.Second || a.MaxAge != 10*time.Second || !bytes.Equal(s.IV, []byte{0xaa}) ||
		!bytes.Equal(s.Secret, []byte{0xcc}) {
		t.Errorf("later instances were used: %+v", a)
	}
	if len(a.Params) != 20 {
		t.Errorf("Params keeps %d of 20 instances", len(a.Params))
	}
	// Repeatable parameters accumulate; algorithm sets drop duplicates.
	a = parseOne(t, `h3m-11="232.1.2.3:5000"; digest-algorithm=SHA-256; digest-algorithm=sha-256; digest-algorithm="SHA-512"; `+
		`signature-algorithm=rsa-sha256; signature-algorithm=ed25519; extensions=0094; extension="0d0d=1"`)
	if !reflect.DeepEqual(a.DigestAlgorithms, []string{"SHA-256", "SHA-512"}) ||
		!reflect.DeepEqual(a.SignatureAlgorithms, []string{"rsa-sha256", "ed25519"}) {
		t.Errorf("algorithm sets: %q %q", a.DigestAlgorithms, a.SignatureAlgorithms)
	}
	if want := []mquic.Extension{{ID: 0x94}, {ID: 0xd0d, Value: []byte{1}}}; !reflect.DeepEqual(a.Session.Extensions, want) {
		t.Errorf("extensions %+v", a.Session.Extensions)
	}
}

func TestQuotedAndUnquotedForms(t *testing.T) {
	forms := []string{
		`h3m-11="232.1.2.3:5000"; source-address=192.0.2.1; cipher-suite=1301; key=000102030405060708090a0b0c0d0e0f; iv=000102030405060708090a0b; session-id=65`,
		`h3m-11="232.1.2.3:5000"; source-address="192.0.2.1"; cipher-suite="1301"; key="000102030405060708090A0B0C0D0E0F"; iv="000102030405060708090a0b"; session-id="65"`,
		// Escapes in quoted-strings, case-insensitive names, OWS.
		"h3m-11=\"232.1.2.3:5000\" ;\tSOURCE-ADDRESS=\"192.0.2\\.1\";Cipher-Suite=\"13\\01\" ; KEY=000102030405060708090a0b0c0d0e0f;Iv=000102030405060708090a0b ;session-ID=65",
		// The protocol-id percent-encoded (RFC 7838 §3).
		`h3m%2D11="232.1.2.3:5000"; source-address=192.0.2.1; cipher-suite=1301; key=000102030405060708090a0b0c0d0e0f; iv=000102030405060708090a0b; session-id=65`,
	}
	first := parseOne(t, forms[0])
	if err := first.Validate(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Session.SessionID, []byte{0x65}) { // draft: session-id=65 is session 101
		t.Errorf("session-id %x", first.Session.SessionID)
	}
	for _, f := range forms[1:] {
		if a := parseOne(t, f); !a.Equal(first) {
			t.Errorf("%s\nparses to %+v\nwant %+v", f, a, first)
		}
	}
}

func TestSessionIDDecision(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want []byte
	}{
		{"65", []byte{0x65}},
		{"BADBEEF", []byte{0x0b, 0xad, 0xbe, 0xef}},
		{"000A", []byte{0x00, 0x0a}}, // leading zero digits are kept
		{"0", []byte{0x00}},
		{`""`, nil},
		{"0102030405060708090a0b0c0d0e0f1011121314", mustHex(t, "0102030405060708090a0b0c0d0e0f1011121314")},
	} {
		a := parseOne(t, `h3m-11="239.1.2.3:5000"; session-id=`+tc.v)
		if !bytes.Equal(a.Session.SessionID, tc.want) || (tc.want == nil) != (a.Session.SessionID == nil) {
			t.Errorf("session-id=%s: %x, want %x", tc.v, a.Session.SessionID, tc.want)
		}
	}
}

func TestClearAndOthers(t *testing.T) {
	for _, v := range []string{"clear", "  clear\t"} {
		ads, clear, err := Parse(v)
		if err != nil || !clear || ads != nil {
			t.Errorf("Parse(%q) = %v %t %v", v, ads, clear, err)
		}
	}
	// Only h3m alternatives come back; others are skipped, not errors.
	ads, clear, err := Parse(`h3=":443"; ma=86400; persist=1, h2="[2001:db8::1]:443", quic=":443"; v="46,43", h3mx="232.1.2.3:1", hqm="232.1.2.3:1"`)
	if err != nil || clear || len(ads) != 0 {
		t.Errorf("non-h3m value: %v %t %v", ads, clear, err)
	}
	// Empty list elements are allowed (RFC 9110 §5.6.1).
	ads, _, err = Parse(` , ,h3m-11="232.1.2.3:5000",, `)
	if err != nil || len(ads) != 1 {
		t.Errorf("empty elements: %v %v", ads, err)
	}
	if ads, _, err := Parse(""); err != nil || ads != nil {
		t.Errorf("empty value: %v %v", ads, err)
	}
	// "clear" is case-sensitive and only valid alone.
	for _, v := range []string{"Clear", `clear, h3m-11="232.1.2.3:5000"`} {
		if _, clear, err := Parse(v); err == nil || clear {
			t.Errorf("Parse(%q): clear %t err %v", v, clear, err)
		}
	}
}

func TestProtocolIDs(t *testing.T) {
	for _, tc := range []struct {
		id    string
		draft int
		exps  []string
	}{
		{"h3m", 0, nil},
		{"h3m-07", 7, nil},
		{"h3m-11", 11, nil},
		{"h3m-11-data-offset", 11, []string{"data-offset"}},
		{"h3m-06-extension-foo", 6, []string{"extension-foo"}}, // the draft's example label
		{"h3m-11-data-offset-foo", 11, []string{"data-offset", "foo"}},
		{"h3m-11-foo-bar-data-offset", 11, []string{"foo-bar", "data-offset"}},
	} {
		a := parseOne(t, tc.id+`="239.1.2.3:5000"`)
		if a.ProtocolID != tc.id || a.Draft != tc.draft || !reflect.DeepEqual(a.Experiments, tc.exps) {
			t.Errorf("%s: %q %d %q", tc.id, a.ProtocolID, a.Draft, a.Experiments)
		}
	}
	if got := FormatProtocolID(7); got != "h3m-07" {
		t.Errorf("FormatProtocolID(7) = %q", got)
	}
	if got := FormatProtocolID(11, ExperimentDataOffset); got != "h3m-11-data-offset" {
		t.Errorf("FormatProtocolID(11, data-offset) = %q", got)
	}
	if got := FormatProtocolID(0); got != "h3m" {
		t.Errorf("FormatProtocolID(0) = %q", got)
	}
	// An advertisement without ProtocolID renders one from Draft and Experiments.
	a := Advertisement{Draft: 11, Experiments: []string{ExperimentDataOffset},
		Session: mquic.Params{Group: netip.MustParseAddrPort("239.1.1.1:9")}}
	if s := a.String(); s != `h3m-11-data-offset="239.1.1.1:9"` {
		t.Errorf("String() = %s", s)
	}
}

// TestParseErrors has one case per error; each error names its parameter.
func TestParseErrors(t *testing.T) {
	const alt = `h3m-11="232.1.2.3:5000"; `
	for _, tc := range []struct {
		name, v, param, msg string
	}{
		{"cipher-suite length", alt + "cipher-suite=13011", "cipher-suite", `alt-svc h3m-11: parameter "cipher-suite": "13011" is not 4 hex digits`},
		{"cipher-suite hex", alt + "cipher-suite=13g1", "cipher-suite", `"13g1" is not 4 hex digits`},
		{"key odd", alt + "key=4adf1", "key", `"4adf1" has an odd number of hex digits`},
		{"key not hex", alt + "key=4adx", "key", `"4adx" is not hex digits`},
		{"iv odd", alt + "iv=abc", "iv", "odd number of hex digits"},
		{"secret not hex", alt + `secret="00 11"`, "secret", "is not hex digits"},
		{"session-id not hex", alt + "session-id=xyz", "session-id", `"xyz" is not hex digits`},
		{"session-id too long", alt + "session-id=" + strings.Repeat("ab", 21), "session-id", "21 bytes, at most 20 allowed"},
		{"idle timeout not decimal", alt + "session-idle-timeout=60s", "session-idle-timeout", `"60s" is not a decimal number`},
		{"idle timeout empty", alt + `session-idle-timeout=""`, "session-idle-timeout", `"" is not a decimal number`},
		{"idle timeout too long", alt + "session-idle-timeout=9223372036854776", "session-idle-timeout", "too long"},
		{"max-concurrent-resources range", alt + "max-concurrent-resources=4294967296", "max-concurrent-resources", "does not fit in 32 bits"},
		{"max-concurrent-resources sign", alt + "max-concurrent-resources=-1", "max-concurrent-resources", "not a decimal number"},
		{"peak-flow-rate range", alt + "peak-flow-rate=18446744073709551616", "peak-flow-rate", "does not fit in 64 bits"},
		{"extensions id", alt + `extensions="94"`, "extensions", `transport parameter ID "94" is not 4 hex digits`},
		{"extensions value", alt + `extensions="0094=xy"`, "extensions", `value of 0094: "xy" is not hex digits`},
		{"extension alias", alt + `extension="0094,zz"`, "extension", `ID "zz"`},
		{"digest-algorithm", alt + `digest-algorithm="SHA 256"`, "digest-algorithm", `"SHA 256" is not a token`},
		{"signature-algorithm", alt + `signature-algorithm=""`, "signature-algorithm", `"" is not a token`},
		{"source-address name", alt + "source-address=sender.example.com", "source-address", "is not an IP address"},
		{"source-address zone", alt + `source-address="fe80::1%eth0"`, "source-address", "zones are not allowed"},
		{"source-address v4 brackets", alt + `source-address="[192.0.2.1]"`, "source-address", "brackets around an IPv4"},
		{"ma", alt + "ma=1h", "ma", `"1h" is not a decimal number`},
		{"group name", `h3m-11="group.example:5000"`, "alt-authority", "is not an IP address"},
		{"group no port", `h3m-11="232.1.2.3"`, "alt-authority", "port"},
		{"group empty", `h3m-11=":5000"`, "alt-authority", "no group address"},
		{"group v6 unbracketed", `h3m-11="ff3e::1:5000"`, "alt-authority", "must be in brackets"},
		{"group port range", `h3m-11="232.1.2.3:65536"`, "alt-authority", "does not fit in 16 bits"},
		{"draft number", `h3m-x="232.1.2.3:5000"`, "protocol-id", "no draft number"},
		{"draft number long", `h3m-12345="232.1.2.3:5000"`, "protocol-id", "out of range"},
		{"empty label", `h3m-11-="232.1.2.3:5000"`, "protocol-id", "empty or invalid experiment label"},
	} {
		ads, _, err := Parse(tc.v)
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Errorf("%s: err %v, want *ParseError", tc.name, err)
			continue
		}
		if pe.Param != tc.param || pe.ProtocolID == "" || !strings.Contains(err.Error(), tc.msg) ||
			!strings.Contains(err.Error(), tc.param) {
			t.Errorf("%s: %v (param %q), want param %q and %q", tc.name, err, pe.Param, tc.param, tc.msg)
		}
		if len(ads) != 0 {
			t.Errorf("%s: the invalid alternative was returned", tc.name)
		}
		if pe.Offset < 0 || pe.Offset >= len(tc.v) {
			t.Errorf("%s: offset %d outside the value", tc.name, pe.Offset)
		}
	}
}

func TestInvalidAlternativeKeepsOthers(t *testing.T) {
	v := `h3m-11="232.1.2.3:5000"; cipher-suite=zz, h3m-11="232.1.2.4:5000"; peak-flow-rate=5`
	ads, _, err := Parse(v)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Alternative != 0 || pe.Param != "cipher-suite" {
		t.Fatalf("err %v", err)
	}
	if pe.Offset != strings.Index(v, "cipher-suite") {
		t.Errorf("offset %d", pe.Offset)
	}
	if len(ads) != 1 || ads[0].Session.PeakFlowRate != 5 {
		t.Fatalf("valid alternative lost: %+v", ads)
	}
}

func TestSyntaxErrors(t *testing.T) {
	for _, tc := range []struct{ v, msg string }{
		{`h3m-11`, `expected "=" after protocol-id`},
		{`h3m-11=232.1.2.3:5000`, "alt-authority: expected quoted-string"},
		{`h3m-11="232.1.2.3:5000`, "unterminated quoted-string"},
		{`h3m-11="232.1.2.3:5000"; key`, `expected "=" after parameter "key"`},
		{`h3m-11="232.1.2.3:5000"; key=`, "expected token or quoted-string"},
		{`h3m-11="232.1.2.3:5000"; =1`, "expected parameter name"},
		{`h3m-11="232.1.2.3:5000" x`, `expected "," or ";"`},
		{`h3="x\`, "bad escape"},
		{"h3m-11=\"232.1.2.3:5000\"; a=\"\x01\"", "control character"},
		{`="x"`, "expected protocol-id"},
	} {
		_, _, err := Parse(tc.v)
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Param != "" || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), "offset") {
			t.Errorf("Parse(%q): %v, want syntax error %q", tc.v, err, tc.msg)
		}
	}
}

func TestMaxAge(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want time.Duration
	}{
		{"0", 0},
		{"86400", 24 * time.Hour},
		{"2147483648", MaxAgeLimit},
		{"99999999999999999999999", MaxAgeLimit}, // RFC 9111 §1.2.2: treat as 2^31
	} {
		a := parseOne(t, `h3m-11="239.1.2.3:5000"; ma=`+tc.v)
		if !a.HasMaxAge || a.MaxAge != tc.want {
			t.Errorf("ma=%s: %v %t", tc.v, a.MaxAge, a.HasMaxAge)
		}
	}
}

func TestUnknownParams(t *testing.T) {
	a := parseOne(t, `h3m-11="239.1.2.3:5000"; future=1; Note="a \"quoted\" value, with; separators"; packet-number-length=4`)
	want := []Param{{"future", "1"}, {"Note", `a "quoted" value, with; separators`}, {"packet-number-length", "4"}}
	if !reflect.DeepEqual(a.Params, want) {
		t.Fatalf("Params %q", a.Params)
	}
	s := a.String()
	if want := `h3m-11="239.1.2.3:5000"; future=1; Note="a \"quoted\" value, with; separators"; packet-number-length=4`; s != want {
		t.Errorf("String() = %s", s)
	}
	if b := parseOne(t, s); !b.Equal(a) {
		t.Errorf("round trip lost unknown params: %q", b.Params)
	}
}

func TestStringRoundTrip(t *testing.T) {
	full := Advertisement{
		Draft:       11,
		Experiments: []string{ExperimentDataOffset},
		Session: mquic.Params{
			Group:                  netip.MustParseAddrPort("[ff35::beef]:443"),
			Source:                 netip.MustParseAddr("2001:db8::7"),
			SessionID:              []byte{0, 0, 1},
			CipherSuite:            protect.SuiteAES256GCM,
			Secret:                 bytes.Repeat([]byte{0x5a}, 48),
			IdleTimeout:            1500 * time.Microsecond, // rendered as 2 ms
			MaxConcurrentResources: 1 << 31,
			PeakFlowRate:           1 << 40,
			Extensions:             []mquic.Extension{{ID: 0xff3e, Value: []byte{0, 1}}, {ID: 1}},
		},
		DigestAlgorithms:    []string{"sha-256", "sha-512"},
		SignatureAlgorithms: []string{"ed25519"},
		MaxAge:              time.Hour,
		HasMaxAge:           true,
		Persist:             true,
		Params:              []Param{{"x-extra", "v w"}, {"cipher-suite", "ignored: known parameters come from the fields"}},
	}
	s := full.String()
	const want = `h3m-11-data-offset="[ff35::beef]:443"; source-address="2001:db8::7"; session-id=000001; ` +
		`cipher-suite=1302; secret=5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a; ` +
		`session-idle-timeout=2; max-concurrent-resources=2147483648; peak-flow-rate=1099511627776; ` +
		`extensions="ff3e=0001,0001"; digest-algorithm=sha-256; digest-algorithm=sha-512; signature-algorithm=ed25519; ` +
		`ma=3600; persist=1; x-extra="v w"`
	if s != want {
		t.Fatalf("String() =\n%s\nwant\n%s", s, want)
	}
	b := parseOne(t, s)
	full.Session.IdleTimeout = 2 * time.Millisecond
	if !b.Equal(&full) {
		t.Fatalf("round trip:\n%+v\n%+v", b, full)
	}
	if err := b.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	for _, v := range []string{draftB11, draftB13} {
		a := parseOne(t, v)
		if b := parseOne(t, a.String()); !b.Equal(a) {
			t.Errorf("%s: round trip differs", v)
		}
	}
}

func TestEqual(t *testing.T) {
	base := parseOne(t, draftB13)
	for _, v := range []string{
		strings.Replace(draftB13, "session-id=10", "session-id=11", 1),
		strings.Replace(draftB13, "rsa-sha256", "ed25519", 1),
		strings.Replace(draftB13, `h3m=`, `h3m-11=`, 1),
		draftB13 + "; ma=1",
		draftB13 + "; unknown=1",
	} {
		if a := parseOne(t, v); a.Equal(base) {
			t.Errorf("%s: Equal to the original", v)
		}
	}
	// Order and case of the algorithm sets do not matter.
	a := parseOne(t, `h3m="[ff3e::1234]:2000"; digest-algorithm=a; digest-algorithm=B`)
	b := parseOne(t, `h3m="[ff3e::1234]:2000"; digest-algorithm=b; digest-algorithm=A`)
	if !a.Equal(b) {
		t.Error("sets compared by order")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ v, msg string }{
		{`h3m-11="232.1.2.3:5000"`, `source-address: missing, but group 232.1.2.3 is a source-specific`},
		{`h3m-11="[ff3e::1]:5000"`, "source-address: missing"},
		{`h3m-11="192.0.2.1:5000"`, "not a multicast address"},
		{`h3m-11="232.1.2.3:0"; source-address=192.0.2.1`, "UDP port 0"},
		{`h3m-11="232.1.2.3:5000"; source-address="2001:db8::1"`, "different address families"},
		{`h3m-11="232.1.2.3:5000"; source-address=192.0.2.1; cipher-suite=1304`, "cipher-suite"},
		{`h3m-11="232.1.2.3:5000"; source-address=192.0.2.1; cipher-suite=1301; secret=00`, "secret"},
		{`h3m-11="232.1.2.3:5000"; source-address=192.0.2.1; extensions="0001,0001"`, "listed twice"},
	} {
		err := parseOne(t, tc.v).Validate()
		if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "alt-svc h3m-11: ") {
			t.Errorf("%s: Validate() = %v, want %q", tc.v, err, tc.msg)
		}
	}
	// Any-source multicast needs no source.
	if err := parseOne(t, `h3m-11="239.1.2.3:5000"`).Validate(); err != nil {
		t.Errorf("ASM: %v", err)
	}
}

// TestValidateProfile: h3m-07 (nghq's profile) cannot carry asymmetric
// packet authentication nor DATA_WITH_OFFSET: Validate refuses them with
// ErrProfile. (Before, h3m-07 with asymmetric authentication validated, and
// nghq receivers met an unknown frame type in every packet with a
// manifest.)
func TestValidateProfile(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	prof, err := manifest.NewProfile(priv.Public(), 7)
	if err != nil {
		t.Fatal(err)
	}
	asym := mquic.Extension{ID: manifest.ExtensionID, Value: prof.Value()}
	base := parseOne(t, `h3m-07="232.1.2.3:5000"; source-address=192.0.2.1`)
	if err := base.Validate(); err != nil {
		t.Fatalf("plain h3m-07: %v", err)
	}
	withAsym := base
	withAsym.Session = base.Session.Clone()
	withAsym.Session.Extensions = []mquic.Extension{asym}
	if err := withAsym.Validate(); !errors.Is(err, ErrProfile) || !strings.Contains(err.Error(), "MANIFEST") {
		t.Errorf("h3m-07 with asymmetric authentication: %v", err)
	}
	offset := parseOne(t, `h3m-07-data-offset="232.1.2.3:5000"; source-address=192.0.2.1`)
	if err := offset.Validate(); !errors.Is(err, ErrProfile) {
		t.Errorf("h3m-07-data-offset: %v", err)
	}
	eleven := parseOne(t, `h3m-11-data-offset="232.1.2.3:5000"; source-address=192.0.2.1`)
	eleven.Session.Extensions = []mquic.Extension{asym}
	if err := eleven.Validate(); err != nil {
		t.Errorf("h3m-11-data-offset with asymmetric authentication: %v", err)
	}
}

func TestIsSSM(t *testing.T) {
	for _, tc := range []struct {
		a   string
		ssm bool
	}{
		{"232.0.0.1", true}, {"232.255.255.255", true}, {"239.1.1.1", false}, {"231.1.1.1", false},
		{"ff3e::1234", true}, {"ff33::1", true}, {"ff3e:0:1::1", true}, {"ff3e:1::1", false},
		{"ff0e::1", false}, {"ff2e::1", false}, {"::ffff:232.1.1.1", true}, {"2001:db8::1", false},
	} {
		if got := IsSSM(netip.MustParseAddr(tc.a)); got != tc.ssm {
			t.Errorf("IsSSM(%s) = %t", tc.a, got)
		}
	}
	if IsSSM(netip.Addr{}) {
		t.Error("invalid address is SSM")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(draftB11)
	f.Add(draftB13)
	f.Add(`h3=":443"; ma=3600, h3m-11="232.1.2.3:5000"; source-address=192.0.2.10; session-id=BADBEEF; cipher-suite=1303; ma=600; persist=1`)
	f.Add(`h3m-07-data-offset="[ff3e::42]:2001"; source-address="[2001:db8::2]"; extensions="0094,0d0d=f00"; x="a\"b"`)
	f.Add("clear")
	f.Add(`h3m%2d11="232.1.2.3:5000";;ma=99999999999999999999`)
	f.Fuzz(func(t *testing.T, v string) {
		ads, _, err := Parse(v)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		for i := range ads {
			s := ads[i].String()
			again, clear, err := Parse(s)
			if err != nil || clear || len(again) != 1 {
				t.Fatalf("String() %q of %q does not re-parse: %v", s, v, err)
			}
			if !again[0].Equal(&ads[i]) {
				t.Fatalf("%q re-parses differently:\n%+v\n%+v", s, again[0], ads[i])
			}
		}
	})
}
