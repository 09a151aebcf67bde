package wellknown

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// A session advertisement in the draft's parameter syntax (RFC 7838), with
// the secret form of keys: it is what a well-known document carries.
const testAltSvc = `h3m-11="232.1.2.3:5000"; source-address="192.0.2.1"; session-id=0a0b; cipher-suite=1301; secret=9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b; session-idle-timeout=60000; max-concurrent-resources=8; peak-flow-rate=1000000`

const testDescription = `{
  "version": 1,
  "sessions": [
    {"id": "0A0B", "state": "active", "alt_svc": "h3m-11=\"232.1.2.3:5000\"; source-address=\"192.0.2.1\"; session-id=0a0b; cipher-suite=1301; secret=9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b; session-idle-timeout=60000",
     "successor": "0c0d", "started": "2026-11-28T08:00:00Z", "future-member": [1, 2]},
    {"id": "0c0d", "state": "announced", "alt_svc": "h3m-11=\"232.1.2.4:5000\"; source-address=\"192.0.2.1\"; session-id=0c0d; cipher-suite=1301; secret=9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b", "predecessor": "0a0b"}
  ],
  "resources": [
    {"path": "/live/seg-1.m4s", "size": 1024, "content_type": "video/mp4", "etag": "\"abc\"",
     "content_digest": "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
     "digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
     "pushed": "2026-11-28T08:00:01.5Z", "session": "0a0b", "push_id": 7}
  ]
}`

func TestParse(t *testing.T) {
	d, err := Parse([]byte(testDescription))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Sessions) != 2 || len(d.Resources) != 1 {
		t.Fatalf("%d sessions, %d resources", len(d.Sessions), len(d.Resources))
	}
	s := d.Sessions[0]
	if s.ID != "0a0b" || s.State != StateActive || s.Successor != "0c0d" {
		t.Errorf("session 0: %+v", s)
	}
	if s.Advertisement.Session.Group.String() != "232.1.2.3:5000" || s.Advertisement.Session.IdleTimeout != time.Minute {
		t.Errorf("session 0 advertisement: %+v", s.Advertisement.Session)
	}
	if !s.Started.Equal(time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)) {
		t.Errorf("started %v", s.Started)
	}
	r := d.Resources[0]
	if r.Path != "/live/seg-1.m4s" || r.Size != 1024 || r.PushID != 7 || r.Session != "0a0b" || r.ETag != `"abc"` {
		t.Errorf("resource: %+v", r)
	}
}

func TestParseErrors(t *testing.T) {
	good := testAltSvc
	goodSession := func(mod string) string {
		return `{"version":1,"sessions":[{"id":"0a0b","state":"active","alt_svc":` + jsonString(good) + mod + `}],"resources":[]}`
	}
	resource := func(r string) string {
		return `{"version":1,"sessions":[],"resources":[` + r + `]}`
	}
	for _, c := range []struct {
		name, doc, field string
	}{
		{"not JSON", `{"version":1,`, ""},
		{"trailing data", `{"version":1,"sessions":[],"resources":[]} {}`, ""},
		{"array", `[]`, ""},
		{"version", `{"version":2,"sessions":[],"resources":[]}`, "version"},
		{"no version", `{"sessions":[],"resources":[]}`, "version"},
		{"odd id", strings.Replace(goodSession(""), `"id":"0a0b"`, `"id":"a0b"`, 1), "sessions[0].id"},
		{"non-hex id", strings.Replace(goodSession(""), `"id":"0a0b"`, `"id":"zz"`, 1), "sessions[0].id"},
		{"long id", strings.Replace(goodSession(""), `"id":"0a0b"`, `"id":"`+strings.Repeat("00", 21)+`"`, 1), "sessions[0].id"},
		{"state", strings.Replace(goodSession(""), `"active"`, `"running"`, 1), "sessions[0].state"},
		{"successor", goodSession(`,"successor":"xyz"`), "sessions[0].successor"},
		{"self successor", goodSession(`,"successor":"0A0B"`), "sessions[0].successor"},
		{"predecessor", goodSession(`,"predecessor":"1"`), "sessions[0].predecessor"},
		{"id mismatch", strings.Replace(goodSession(""), `"id":"0a0b"`, `"id":"0a0c"`, 1), "sessions[0].alt_svc"},
		{"alt-svc syntax", strings.Replace(goodSession(""), `h3m-11=`, `h3m-11 = `, 1), "sessions[0].alt_svc"},
		{"alt-svc clear", `{"version":1,"sessions":[{"id":"","state":"active","alt_svc":"clear"}]}`, "sessions[0].alt_svc"},
		{"alt-svc none", `{"version":1,"sessions":[{"id":"","state":"active","alt_svc":"h3=\":443\""}]}`, "sessions[0].alt_svc"},
		{"alt-svc two", `{"version":1,"sessions":[{"id":"0a0b","state":"active","alt_svc":` + jsonString(good+", "+good) + `}]}`, "sessions[0].alt_svc"},
		{"alt-svc invalid key", `{"version":1,"sessions":[{"id":"0a0b","state":"active","alt_svc":` + jsonString(strings.Replace(good, "secret=9ac3", "secret=9a", 1)) + `}]}`, "sessions[0].alt_svc"},
		{"duplicate session", `{"version":1,"sessions":[{"id":"0a0b","state":"active","alt_svc":` + jsonString(good) + `},{"id":"0A0B","state":"ended","alt_svc":` + jsonString(good) + `}]}`, "sessions[1].id"},
		{"relative path", resource(`{"path":"a","size":1,"session":""}`), "resources[0].path"},
		{"empty path", resource(`{"path":"","size":1,"session":""}`), "resources[0].path"},
		{"space in path", resource(`{"path":"/a b","size":1,"session":""}`), "resources[0].path"},
		{"fragment", resource(`{"path":"/a#b","size":1,"session":""}`), "resources[0].path"},
		{"control in path", resource(`{"path":"/a\u0001","size":1,"session":""}`), "resources[0].path"},
		{"negative size", resource(`{"path":"/a","size":-1,"session":""}`), "resources[0].size"},
		{"huge size", resource(`{"path":"/a","size":1e30,"session":""}`), ""},
		{"etag unquoted", resource(`{"path":"/a","size":1,"etag":"abc","session":""}`), "resources[0].etag"},
		{"etag inner quote", resource(`{"path":"/a","size":1,"etag":"\"a\"b\"","session":""}`), "resources[0].etag"},
		{"content digest", resource(`{"path":"/a","size":1,"content_digest":"sha-256=abc","session":""}`), "resources[0].content_digest"},
		{"digest", resource(`{"path":"/a","size":1,"digest":"SHA-256=!!","session":""}`), "resources[0].digest"},
		{"session", resource(`{"path":"/a","size":1,"session":"q"}`), "resources[0].session"},
		{"push id", resource(`{"path":"/a","size":1,"session":"","push_id":-1}`), ""},
		{"channel relative", goodSession(`,"channel":"r0/"`), "sessions[0].channel"},
		{"channel without /", goodSession(`,"channel":"/r0"`), "sessions[0].channel"},
		{"channel query", goodSession(`,"channel":"/r0/?a=b"`), "sessions[0].channel"},
		{"channel dot segment", goodSession(`,"channel":"/a/../r0/"`), "sessions[0].channel"},
		{"channel slashes", goodSession(`,"channel":"//r0/"`), "sessions[0].channel"},
		{"channel space", goodSession(`,"channel":"/r 0/"`), "sessions[0].channel"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			var de *ParseError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want a ParseError", err)
			}
			if de.Field != c.field {
				t.Errorf("field %q, want %q (%v)", de.Field, c.field, err)
			}
		})
	}
	if _, err := Parse(make([]byte, MaxSize+1)); err == nil {
		t.Error("oversized document accepted")
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// FuzzParse: the well-known document comes from the network.
// Whatever it holds, parsing returns a description or a ParseError,
// and an accepted description survives a round trip through JSON.
func FuzzParse(f *testing.F) {
	f.Add([]byte(testDescription))
	f.Add([]byte(`{"version":1,"sessions":[],"resources":[]}`))
	f.Add([]byte(`{"version":1,"sessions":[{"id":"","state":"ended","alt_svc":"h3m-11=\"232.0.0.1:1\"; source-address=10.0.0.1"}]}`))
	f.Add([]byte(`{"version":1,"resources":[{"path":"/a?b=c","size":0,"etag":"W/\"x\"","session":"ff","push_id":18446744073709551615}]}`))
	f.Add([]byte(`{"version":1,"sessions":null,"resources":null}`))
	f.Add([]byte(`{"version":1.5}`))
	f.Add([]byte(`null`))
	f.Add([]byte(testDescriptionKeys))
	f.Add([]byte(testDescriptionChannels))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Parse(b)
		if err != nil {
			var de *ParseError
			if !errors.As(err, &de) {
				t.Fatalf("error %v is not a ParseError", err)
			}
			return
		}
		if d.Version != Version {
			t.Fatalf("version %d accepted", d.Version)
		}
		for _, s := range d.Sessions {
			if SessionID(&s.Advertisement) != s.ID {
				t.Fatalf("session %q with advertisement of %q", s.ID, SessionID(&s.Advertisement))
			}
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !slices.Equal(d2.RepairURLs, d.RepairURLs) {
			t.Fatalf("round trip changed the repair URLs %q to %q", d.RepairURLs, d2.RepairURLs)
		}
		for i := range d2.Sessions {
			if i < len(d.Sessions) && d2.Sessions[i].Channel != d.Sessions[i].Channel {
				t.Fatalf("round trip changed channel %q to %q", d.Sessions[i].Channel, d2.Sessions[i].Channel)
			}
		}
		if len(d2.Sessions) != len(d.Sessions) || len(d2.Resources) != len(d.Resources) {
			t.Fatalf("round trip changed the document: %s", out)
		}
	})
}

// testDescriptionKeys has an asymmetric session with its manifests path and
// two published keys.
const testDescriptionKeys = `{"version":1,
 "sessions":[{"id":"0a0b","state":"active","manifests":"/.well-known/h3m/manifests/0a0b",
   "alt_svc":"h3m-11=\"232.1.2.3:5000\"; source-address=\"192.0.2.1\"; session-id=0a0b; cipher-suite=1301; secret=9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b; extensions=\"ff3e=01080768336d31d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a\""}],
 "resources":[],
 "keys":[{"id":"h3m-zkloIX6tVnrX6A8U","alg":"ed25519"},{"id":"sender.pem"}]}`

func TestParseKeysAndManifests(t *testing.T) {
	d, err := Parse([]byte(testDescriptionKeys))
	if err != nil {
		t.Fatal(err)
	}
	if d.Sessions[0].Manifests != ManifestPath("0a0b") || len(d.Keys) != 2 || d.Keys[0].Alg != "ed25519" || d.Keys[1].ID != "sender.pem" {
		t.Fatalf("%+v", d)
	}
	if !d.Sessions[0].Advertisement.Session.HasExtension(0xff3e) {
		t.Fatal("the asymmetric session lost its extension")
	}
	for _, bad := range []struct{ from, to, field string }{
		{`"manifests":"/.well-known/h3m/manifests/0a0b"`, `"manifests":"no-slash"`, "sessions[0].manifests"},
		{`{"id":"sender.pem"}`, `{"id":"h3m-zkloIX6tVnrX6A8U"}`, "keys[1].id"},
		{`{"id":"sender.pem"}`, `{"id":"a b"}`, "keys[1].id"},
		{`{"id":"sender.pem"}`, `{"id":""}`, "keys[1].id"},
	} {
		_, err := Parse([]byte(strings.Replace(testDescriptionKeys, bad.from, bad.to, 1)))
		var de *ParseError
		if !errors.As(err, &de) || de.Field != bad.field {
			t.Errorf("%s: %v, want an error in %s", bad.to, err, bad.field)
		}
	}
}

// testDescriptionChannels has a session for everything (no channel) and one
// per rendition of a DASH ladder.
const testDescriptionChannels = `{"version":1,"resources":[],
 "sessions":[
  {"id":"0a0b","state":"active","alt_svc":"h3m-11=\"232.1.2.3:5000\"; source-address=\"192.0.2.1\"; session-id=0a0b"},
  {"id":"0a0c","state":"active","channel":"/live/r0/","alt_svc":"h3m-11=\"232.1.2.4:5000\"; source-address=\"192.0.2.1\"; session-id=0a0c"},
  {"id":"0a0d","state":"announced","channel":"/live/r%201/","alt_svc":"h3m-11=\"232.1.2.5:5000\"; source-address=\"192.0.2.1\"; session-id=0a0d"}]}`

func TestParseChannels(t *testing.T) {
	d, err := Parse([]byte(testDescriptionChannels))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range d.Sessions {
		got = append(got, s.Channel)
	}
	if want := []string{"", "/live/r0/", "/live/r%201/"}; !slices.Equal(got, want) {
		t.Fatalf("channels %q, want %q", got, want)
	}
	r1, err := ParseChannel(d.Sessions[2].Channel)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"/live/r 1/seg-1.m4s": true, "/live/r 1/": true, "/live/r 10/seg-1.m4s": false,
		"/live/r%201/seg-1.m4s": false, "/live/manifest.mpd": false, "/": false,
	} {
		if InChannel(r1, p) != want {
			t.Errorf("InChannel(%q, %q) = %v, want %v", r1.Path, p, !want, want)
		}
	}
	if InChannel(Target{}, "/a") {
		t.Error("the zero Target is a channel")
	}
}
