package gateway

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/h3m-project/h3m/unicast/client"
)

// DefaultDashJSURL is where the player page loads dash.js from by default:
// the dash.js project's CDN, as its README documents. A browser without
// internet access needs Config.DashJSURL (h3m gateway --dashjs-url) to
// point at a copy it can reach.
const DefaultDashJSURL = "https://cdn.dashjs.org/latest/modern/umd/dash.all.min.js"

//go:embed pages/*.html
var pageFiles embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"bytes":    humanBytes,
	"bits":     humanBits,
	"percent":  func(f float64) string { return fmt.Sprintf("%.1f %%", 100*f) },
	"duration": humanDuration,
	"seconds":  func(s float64) string { return humanDuration(time.Duration(s * float64(time.Second))) },
	"via":      func(m map[string]uint64, k string) uint64 { return m[k] },
	"vias": func() []string {
		return []string{client.ViaMulticast, client.ViaRepair, client.ViaFallback, ViaUnicast}
	},
	"isDASH": func(p string) bool { return strings.HasSuffix(strings.ToLower(p), ".mpd") },
	"uptime": func(s int64) string { return humanDuration(time.Duration(s) * time.Second) },
	"total": func(m map[string]uint64) (n uint64) {
		for _, v := range m {
			n += v
		}
		return n
	},
}).ParseFS(pageFiles, "pages/*.html"))

// PlayerConfig is what the player page plays and where it asks.
type PlayerConfig struct {
	// DashJS is the URL of dash.js (dash.all.min.js, version 5).
	DashJS string `json:"dashjs"`
	// Manifest is the URL of the MPD to play; "" makes the page play the
	// first DASH manifest the gateway's status lists, once there is one.
	Manifest string `json:"manifest"`
	// Status and Time are the URLs of the gateway's StatusJSONPath and
	// TimePath: the page shows the gateway's figures and gives dash.js the
	// gateway's clock as its default UTCTiming source.
	Status string `json:"status"`
	Time   string `json:"time"`
}

// WritePlayer writes the player page: dash.js plays the stream and the
// page shows, for every segment it loaded, how the gateway got it
// (multicast, repair, fallback or unicast, from the X-H3m-Via field), with
// the gateway's own figures. A page on another origin than the gateway's
// works when the gateway allows that origin (Config.CORSOrigins). The page
// keeps what it saw in window.h3m, for tests.
func WritePlayer(w io.Writer, cfg PlayerConfig) error {
	return pages.ExecuteTemplate(w, "player.html", cfg)
}

// servePage serves the gateway's own paths.
func (g *Gateway) servePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	var err error
	switch r.URL.Path {
	case strings.TrimSuffix(Prefix, "/"):
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	case TimePath:
		g.serveTime(w, r)
		return
	case StatusJSONPath:
		h.Set("Content-Type", "application/json")
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(g.Status())
	case StatusPath:
		h.Set("Content-Type", "text/html; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		err = pages.ExecuteTemplate(w, "status.html", g.Status())
	case IndexPath:
		h.Set("Content-Type", "text/html; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		err = pages.ExecuteTemplate(w, "index.html", g.Status())
	case PlayerPath:
		src := r.URL.Query().Get("src")
		if src != "" && (!strings.HasPrefix(src, "/") || strings.HasPrefix(src, "//")) {
			http.Error(w, "h3m gateway: src must be a path on this gateway, e.g. /live/manifest.mpd", http.StatusBadRequest)
			return
		}
		h.Set("Content-Type", "text/html; charset=utf-8")
		if r.Method == http.MethodHead {
			return
		}
		err = WritePlayer(w, PlayerConfig{DashJS: g.cfg.DashJSURL, Manifest: src, Status: StatusJSONPath, Time: TimePath})
	default:
		http.Error(w, "h3m gateway: no such page; see "+IndexPath, http.StatusNotFound)
		return
	}
	if err != nil {
		g.log.Debug("writing a page failed", "path", r.URL.Path, "err", err)
	}
}

// humanBytes writes a byte count in SI units: 999 B, 1.2 kB, 3.4 MB.
func humanBytes(n any) string {
	var f float64
	switch v := n.(type) {
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	case uint64:
		f = float64(v)
	case float64:
		f = v
	}
	return humanUnits(f, "B")
}

// humanBits writes a rate in bit/s in SI units: 12.3 Mbit/s.
func humanBits(bps uint64) string { return humanUnits(float64(bps), "bit/s") }

func humanUnits(f float64, unit string) string {
	if f < 1000 {
		return fmt.Sprintf("%.0f %s", f, unit)
	}
	for _, p := range []string{"k", "M", "G", "T"} {
		f /= 1000
		if f < 1000 || p == "T" {
			if f < 10 {
				return fmt.Sprintf("%.2f %s%s", f, p, unit)
			}
			return fmt.Sprintf("%.1f %s%s", f, p, unit)
		}
	}
	return ""
}

// humanDuration writes a duration to the second: 45 s, 3 min 05 s,
// 2 h 03 min.
func humanDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %02d s", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%d h %02d min", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%d d %02d h", s/86400, s%86400/3600)
}
