package media

import "testing"

func TestKindOf(t *testing.T) {
	for mime, want := range map[string]Kind{
		"image/jpeg":               Image,
		"IMAGE/PNG":                Image,
		"image/webp":               Image,
		"image/gif":                Document,
		"video/mp4":                Video,
		"video/webm":               Document,
		"audio/ogg; codecs=opus":   Voice,
		"audio/mpeg":               Document,
		"application/pdf":          Document,
		"application/octet-stream": Document,
	} {
		if got := KindOf(mime); got != want {
			t.Errorf("KindOf(%q) = %s, want %s", mime, got, want)
		}
	}
}
