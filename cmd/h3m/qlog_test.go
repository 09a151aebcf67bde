package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

// readQlog parses a whole JSON-SEQ qlog file: every record must be
// complete (the trace was closed cleanly). It returns the trace header's
// vantage point and group ID, and the events.
func readQlog(t *testing.T, file string) (vantage, group string, events []qlogEvent) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) == 0 || b[0] != 0x1e || b[len(b)-1] != '\n' {
		t.Fatalf("%s: not a complete JSON-SEQ file (%d bytes)", file, len(b))
	}
	for i, rec := range bytes.Split(b[1:], []byte{0x1e}) {
		var e qlogEvent
		if err := json.Unmarshal(rec, &e); err != nil {
			t.Fatalf("%s: record %d: %v", file, i, err)
		}
		if i == 0 {
			vantage, group = e.Trace.VantagePoint.Type, e.Trace.CommonFields.GroupID
			continue
		}
		events = append(events, e)
	}
	return vantage, group, events
}

type qlogEvent struct {
	Trace struct {
		VantagePoint struct {
			Type string `json:"type"`
		} `json:"vantage_point"`
		CommonFields struct {
			GroupID string `json:"group_id"`
		} `json:"common_fields"`
	} `json:"trace"`
	Name string `json:"name"`
	Data struct {
		Header struct {
			PacketNumber *uint64 `json:"packet_number"`
		} `json:"header"`
		Frames []struct {
			FrameType string `json:"frame_type"`
		} `json:"frames"`
	} `json:"data"`
}

// TestServeReceiveQlog: serve with --qlog-dir and receive with QLOGDIR in
// its environment each write the multicast session's trace and quic-go's
// traces of their unicast connections, complete when they exit; every
// packet the receiver got is one the sender sent.
func TestServeReceiveQlog(t *testing.T) {
	src, out := makeFolder(t), t.TempDir()
	sdir, rdir := t.TempDir(), t.TempDir()
	listen := "127.0.0.1:24439"
	srv, cert := startServer(t, nil, "--dir", src, "--once", "--wait", "2s", "--linger", "3s",
		"--group", "232.255.7.9", "--port", "5709", "--listen", listen, "--rate", "200000000", "--qlog-dir", sdir)
	m := regexp.MustCompile(`session ([0-9a-f]+) `).FindStringSubmatch(srv.output())
	if m == nil {
		t.Fatalf("no session ID in the output:\n%s", srv.output())
	}
	sid := m[1]
	rcv := start(t, nil, "env", "QLOGDIR="+rdir, h3mBinary, "receive", "--url", "https://"+listen+"/", "--ca", cert, "--out", out)
	if err := rcv.wait(t, 60*time.Second); err != nil {
		t.Fatalf("receive: %v\n%s", err, rcv.output())
	}
	sameTree(t, src, out)
	if err := srv.wait(t, 20*time.Second); err != nil {
		t.Fatalf("serve --once: %v", err)
	}

	sent := map[uint64]bool{}
	vp, group, events := readQlog(t, filepath.Join(sdir, sid+"_mcast_sender.sqlog"))
	if vp != "server" || group != sid {
		t.Errorf("sender trace: vantage point %q, group %q", vp, group)
	}
	streams := 0
	for _, e := range events {
		if e.Name != "transport:packet_sent" || e.Data.Header.PacketNumber == nil {
			t.Fatalf("sender trace: unexpected event %+v", e)
		}
		sent[*e.Data.Header.PacketNumber] = true
		for _, f := range e.Data.Frames {
			if f.FrameType == "stream" {
				streams++
			}
		}
	}
	vp, group, events = readQlog(t, filepath.Join(rdir, sid+"_mcast_receiver.sqlog"))
	if vp != "client" || group != sid {
		t.Errorf("receiver trace: vantage point %q, group %q", vp, group)
	}
	received := 0
	for _, e := range events {
		if e.Name == "transport:packet_received" {
			received++
			if !sent[*e.Data.Header.PacketNumber] {
				t.Errorf("received packet %d was never sent", *e.Data.Header.PacketNumber)
			}
		}
	}
	t.Logf("sender: %d packets (%d STREAM frames); receiver: %d packets of %d events", len(sent), streams, received, len(events))
	if streams == 0 || received == 0 {
		t.Fatal("no stream data in the traces")
	}
	for dir, side := range map[string]string{sdir: "server", rdir: "client"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*_"+side+".sqlog"))
		if len(files) == 0 {
			t.Errorf("no quic-go %s trace in %s", side, dir)
		}
		for _, f := range files {
			if vp, _, ev := readQlog(t, f); vp != side || len(ev) == 0 {
				t.Errorf("%s: vantage point %q, %d events", f, vp, len(ev))
			}
		}
	}
}
