package h3frame

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestRequestFields(t *testing.T) {
	r := &Request{
		Method: "GET", Scheme: "https", Authority: "example.org", Path: "/files/example.txt",
		Header: http.Header{
			"User-Agent": {"h3m"},
			"Range":      {"bytes=0-99"},
			"X-Multi":    {"1", "2"},
		},
	}
	want := []Field{
		{":method", "GET"}, {":scheme", "https"}, {":authority", "example.org"}, {":path", "/files/example.txt"},
		{"range", "bytes=0-99"}, {"user-agent", "h3m"}, {"x-multi", "1"}, {"x-multi", "2"},
	}
	got := RequestFields(r)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	// Deterministic: the same request always encodes to the same bytes.
	a, _ := AppendFieldSection(nil, got)
	for range 20 {
		b, _ := AppendFieldSection(nil, RequestFields(r))
		if string(a) != string(b) {
			t.Fatal("encoding differs between calls")
		}
	}
	back, err := ParseRequest(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, r) {
		t.Fatalf("ParseRequest = %+v, want %+v", back, r)
	}
	// :authority is left out when empty and optional on parse.
	noAuth := RequestFields(&Request{Method: "GET", Scheme: "https", Path: "/"})
	if len(noAuth) != 3 {
		t.Fatalf("fields without authority: %q", noAuth)
	}
	if r, err := ParseRequest(noAuth); err != nil || r.Authority != "" || len(r.Header) != 0 {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestParseRequestErrors(t *testing.T) {
	base := []Field{{":method", "GET"}, {":scheme", "https"}, {":path", "/"}}
	for _, tc := range []struct {
		fields []Field
		msg    string
	}{
		{base[1:], "without :method"},
		{[]Field{base[0], base[2]}, "without :scheme"},
		{base[:2], "without :path"},
		{append([]Field{{":method", ""}}, base[1:]...), "without :method"},
		{append(base[:3:3], Field{":method", "GET"}), ":method appears twice"},
		{append(base[:3:3], Field{":authority", "a"}, Field{":authority", "b"}), ":authority appears twice"},
		{append(base[:3:3], Field{":status", "200"}), `":status" is not allowed`},
		{append(base[:3:3], Field{":protocol", "websocket"}), `":protocol" is not allowed`},
	} {
		_, err := ParseRequest(tc.fields)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: err %v, want %q", tc.fields, err, tc.msg)
		}
	}
}

func TestResponseFields(t *testing.T) {
	r := &Response{Status: 206, Header: http.Header{
		"Content-Range":  {"bytes 0-99/1000"},
		"Content-Length": {"1000"},
		"Connection":     {"close"},
	}}
	want := []Field{
		{":status", "206"}, {"connection", "close"}, {"content-length", "1000"}, {"content-range", "bytes 0-99/1000"},
	}
	got := ResponseFields(r)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	back, err := ParseResponse(got)
	if err != nil || !reflect.DeepEqual(back, r) {
		t.Fatalf("ParseResponse = %+v, %v", back, err)
	}
	enc, err := AppendFieldSection(nil, got)
	if err != nil {
		t.Fatal(err)
	}
	if enc[2] != 0xff || enc[3] != 65-63 { // static 65 is ":status 206": 11 + 6-bit prefix int
		t.Errorf(":status 206 not encoded as static index: %x", enc)
	}
}

func TestParseResponseErrors(t *testing.T) {
	for _, tc := range []struct {
		fields []Field
		msg    string
	}{
		{nil, "without :status"},
		{[]Field{{"a", "b"}}, "without :status"},
		{[]Field{{":status", ""}}, "empty :status"},
		{[]Field{{":status", "20"}}, "not a three-digit code"},
		{[]Field{{":status", "2000"}}, "not a three-digit code"},
		{[]Field{{":status", "099"}}, "not a three-digit code"},
		{[]Field{{":status", "600"}}, "not a three-digit code"},
		{[]Field{{":status", "2x0"}}, "not a three-digit code"},
		{[]Field{{":status", "+20"}}, "not a three-digit code"},
		{[]Field{{":status", "200"}, {":status", "200"}}, ":status appears twice"},
		{[]Field{{":status", "200"}, {":path", "/"}}, `":path" is not allowed`},
	} {
		_, err := ParseResponse(tc.fields)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: err %v, want %q", tc.fields, err, tc.msg)
		}
	}
	for _, s := range []string{"100", "200", "599"} {
		if r, err := ParseResponse([]Field{{":status", s}}); err != nil || r.Status == 0 {
			t.Errorf(":status %s: %v", s, err)
		}
	}
}

func TestTrailers(t *testing.T) {
	h := http.Header{"Digest": {"sha-256=abc"}}
	f := HeaderFields(h)
	if !reflect.DeepEqual(f, []Field{{"digest", "sha-256=abc"}}) {
		t.Fatalf("%q", f)
	}
	back, err := ParseTrailers(f)
	if err != nil || !reflect.DeepEqual(back, h) {
		t.Fatalf("%v %v", back, err)
	}
	if _, err := ParseTrailers([]Field{{":status", "200"}}); err == nil || !strings.Contains(err.Error(), "in trailers") {
		t.Errorf("pseudo-header in trailers: %v", err)
	}
}

func TestMergeTrailer(t *testing.T) {
	header := http.Header{"Digest": {"SHA-256=old"}, "Content-Type": {"text/plain"}}
	trailer := http.Header{"Digest": {"SHA-256=new"}, "X-Late": {"a", "b"}}
	got := MergeTrailer(header, trailer)
	want := http.Header{"Digest": {"SHA-256=new"}, "Content-Type": {"text/plain"}, "X-Late": {"a", "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	got["X-Late"][0] = "changed"
	got["Content-Type"][0] = "changed"
	if trailer["X-Late"][0] != "a" || header["Content-Type"][0] != "text/plain" || header.Get("Digest") != "SHA-256=old" {
		t.Fatalf("the arguments changed: %v %v", header, trailer)
	}
	if m := MergeTrailer(nil, nil); m == nil || len(m) != 0 {
		t.Fatalf("nil, nil: %v", m)
	}
	if m := MergeTrailer(nil, trailer); !reflect.DeepEqual(m, trailer) {
		t.Fatalf("nil header: %v", m)
	}
}
