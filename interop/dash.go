package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// dashResult is what the dash case's client saw through the gateway.
type dashResult struct {
	files      int
	bytes      int64
	liveMPD    bool
	mismatches []string
	playerErr  error
	status     string
}

// dashDuration is the length of the live stream ffmpeg produces.
const dashDuration = 6

// driveDASH runs ffmpeg as a live DASH producer writing into WWW/live
// while the sender watches WWW, fetches the MPD through receiver 1's
// gateway while the stream is live, then every file of the stream, and
// finally plays the stream through the gateway with ffmpeg.
func driveDASH(c *caseRun) error {
	live := filepath.Join(c.www, "live")
	if err := os.MkdirAll(live, 0o755); err != nil {
		return err
	}
	gw := c.endpointVars(RoleReceiver, 0)["GATEWAY"]
	host := c.net.Receivers[0]
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return host.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
	}
	base := "http://" + gw
	// ffmpeg writes through a temporary name and renames only the
	// manifest; segments appear as they are written, which is what a live
	// origin looks like to a watching sender.
	argv := []string{"ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-t", fmt.Sprint(dashDuration),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-f", "dash", "-seg_duration", "1", "-use_template", "1", "-use_timeline", "0",
		"-window_size", "0", "-remove_at_exit", "0", "manifest.mpd"}
	prodDir := filepath.Join(c.dir, "producer")
	os.MkdirAll(prodDir, 0o755)
	c.logf("producer: %v", argv)
	prod, err := startProc(Host{Name: "producer"}, "producer", argv, []string{"PATH=" + os.Getenv("PATH")}, live, filepath.Join(prodDir, "output.txt"))
	if err != nil {
		return err
	}
	defer prod.stop(time.Second)
	// While live: the MPD must come through the gateway.
	deadline := time.Now().Add(dashDuration * time.Second)
	for time.Now().Before(deadline) && !c.dash.liveMPD {
		time.Sleep(500 * time.Millisecond)
		b, code, err := get(c.ctx, client, base+"/live/manifest.mpd")
		if err == nil && code == 200 && bytes.Contains(b, []byte("<MPD")) {
			c.dash.liveMPD = true
			c.logf("gateway served the live MPD (%d bytes)", len(b))
		}
	}
	if !prod.wait(c.ctx, 30*time.Second) {
		return errors.New("ffmpeg (producer) did not finish")
	}
	if _, code, _ := prod.result(); code != 0 {
		b, _ := os.ReadFile(filepath.Join(prodDir, "output.txt"))
		return fmt.Errorf("ffmpeg (producer) exited with %d: %s", code, lastLines(b, 3))
	}
	c.marks["producer-done"] = time.Now()
	entries, err := os.ReadDir(live)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.Type().IsRegular() && filepath.Ext(e.Name()) != ".tmp" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	// The gateway may need a moment for the last segment and the final
	// MPD; each file gets 10 s to match.
	for _, name := range names {
		want, err := os.ReadFile(filepath.Join(live, name))
		if err != nil {
			return err
		}
		c.dash.files++
		c.dash.bytes += int64(len(want))
		until := time.Now().Add(10 * time.Second)
		for {
			got, code, err := get(c.ctx, client, base+"/live/"+name)
			if err == nil && code == 200 && bytes.Equal(got, want) {
				break
			}
			if time.Now().After(until) || c.ctx.Err() != nil {
				msg := fmt.Sprintf("%s: status %d, %d bytes (want %d)", name, code, len(got), len(want))
				if err != nil {
					msg = fmt.Sprintf("%s: %v", name, err)
				}
				c.dash.mismatches = append(c.dash.mismatches, msg)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	c.logf("client: %d files (%d bytes) fetched through the gateway, %d wrong", c.dash.files, c.dash.bytes, len(c.dash.mismatches))
	c.marks["client-done"] = time.Now()
	if b, code, err := get(c.ctx, client, base+"/_h3m/status.json"); err == nil && code == 200 {
		c.dash.status = string(b)
		os.WriteFile(filepath.Join(c.dir, "receiver-1", "gateway-status.json"), b, 0o644)
	}
	// A real player: ffmpeg reads the MPD and every segment through the
	// gateway and decodes them.
	player := host.Command(c.ctx, "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
		"-i", base+"/live/manifest.mpd", "-f", "null", "-")
	out, perr := player.CombinedOutput()
	os.WriteFile(filepath.Join(c.dir, "player.txt"), out, 0o644)
	if perr != nil {
		c.dash.playerErr = fmt.Errorf("ffmpeg as a player through the gateway: %v: %s", perr, lastLines(out, 3))
	} else {
		c.logf("ffmpeg played the stream through the gateway")
	}
	return nil
}

func get(ctx context.Context, client *http.Client, url string) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return b, resp.StatusCode, err
}

func checkDASH(c *caseRun) error {
	var errs []error
	if !c.dash.liveMPD {
		errs = append(errs, errors.New("the gateway did not serve the MPD while the stream was live"))
	}
	if c.dash.files < 3 {
		errs = append(errs, fmt.Errorf("only %d files in the stream", c.dash.files))
	}
	if len(c.dash.mismatches) > 0 {
		errs = append(errs, fmt.Errorf("%d files wrong through the gateway: %v", len(c.dash.mismatches), c.dash.mismatches[:min(3, len(c.dash.mismatches))]))
	}
	if c.dash.playerErr != nil {
		errs = append(errs, c.dash.playerErr)
	}
	// The stream must have come over multicast: the gateway's unicast
	// bytes stay below half of the stream.
	errs = append(errs, c.checkUnicast(0, c.dash.bytes, 0, 0.5, time.Time{}, time.Time{}))
	return errors.Join(errs...)
}
