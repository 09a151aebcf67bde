package mediatype

import "testing"

func TestByName(t *testing.T) {
	for _, c := range []struct {
		name, want string
		known      bool
	}{
		{"/live/manifest.mpd", "application/dash+xml", true},
		{"/live/chunk-stream0-00001.m4s", "video/iso.segment", true},
		{"/live/init.MP4", "video/mp4", true},
		{"/v.m4v", "video/mp4", true},
		{"/a.m4a", "audio/mp4", true},
		{"/hls/index.m3u8", "application/vnd.apple.mpegurl", true},
		{"/hls/seg-1.ts", "video/mp2t", true}, // not text/vnd.trolltech.linguist
		{"/subs/en.vtt", "text/vtt; charset=utf-8", true},
		{"/cmaf/v.cmfv", "video/mp4", true},
		{"/cmaf/a.cmfa", "audio/mp4", true},
		{"/README", "", false},
		{"/x.unknown", "", false},
	} {
		got, ok := ByName(c.name)
		if got != c.want || ok != c.known {
			t.Errorf("ByName(%q) = %q, %v; want %q, %v", c.name, got, ok, c.want, c.known)
		}
	}
	if !IsManifest("/a/b.MPD") || !IsManifest("x.m3u8") || IsManifest("x.m4s") {
		t.Error("IsManifest")
	}
}
