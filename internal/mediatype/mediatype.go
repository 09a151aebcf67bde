// Package mediatype maps file names to the media types that players and
// browsers expect, from a table built into h3m.
//
// The host's MIME database (mime.TypeByExtension) differs from machine to
// machine and gets streaming formats wrong: on a Debian host with Qt
// installed, ".ts" is text/vnd.trolltech.linguist, and ".m4s" is unknown.
// A gateway that serves live video to players must say the same on every
// machine, so the types come from this table only.
package mediatype

import (
	"path"
	"strings"
)

// Default is the media type of a name the table does not know.
const Default = "application/octet-stream"

// byExt is the table, by lower-case extension.
var byExt = map[string]string{
	// DASH (ISO/IEC 23009-1 Annex C; RFC 8216 for HLS) and CMAF
	// (CTA-5004) manifests and segments.
	".mpd":  "application/dash+xml",
	".m4s":  "video/iso.segment",
	".mp4":  "video/mp4",
	".m4v":  "video/mp4",
	".m4a":  "audio/mp4",
	".cmfv": "video/mp4",
	".cmfa": "audio/mp4",
	".cmft": "application/mp4",
	".cmfm": "application/mp4",
	".m3u8": "application/vnd.apple.mpegurl",
	".m3u":  "application/vnd.apple.mpegurl",
	".ts":   "video/mp2t",
	".aac":  "audio/aac",
	".ac3":  "audio/ac3",
	".ec3":  "audio/eac3",
	".mp3":  "audio/mpeg",
	".webm": "video/webm",
	".weba": "audio/webm",
	".vtt":  "text/vtt; charset=utf-8",
	".ttml": "application/ttml+xml",
	".dfxp": "application/ttml+xml",
	".key":  "application/octet-stream",
	// Pages and what they load (a player page next to the stream).
	".html": "text/html; charset=utf-8",
	".htm":  "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8",
	".json": "application/json",
	".xml":  "application/xml",
	".txt":  "text/plain; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".gif":  "image/gif",
	".webp": "image/webp",
	".ico":  "image/vnd.microsoft.icon",
	".wasm": "application/wasm",
	// Files that updates are made of.
	".bin": "application/octet-stream",
	".zip": "application/zip",
	".gz":  "application/gzip",
	".tar": "application/x-tar",
	".pdf": "application/pdf",
}

// ByName returns the media type of a file or URL path by its extension,
// and whether the table knows it.
func ByName(name string) (string, bool) {
	t, ok := byExt[strings.ToLower(path.Ext(name))]
	return t, ok
}

// IsManifest reports whether name is a streaming manifest (DASH MPD or HLS
// playlist): a live one changes in place under the same name.
func IsManifest(name string) bool {
	switch strings.ToLower(path.Ext(name)) {
	case ".mpd", ".m3u8", ".m3u":
		return true
	}
	return false
}
