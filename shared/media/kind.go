// Package media names how WhatsApp shows a file, from its MIME type: the
// supervisor checks a message against it and the worker builds the
// matching WhatsApp message.
package media

import "strings"

// Kind is how a file is shown to its recipient.
type Kind string

const (
	Image    Kind = "image"
	Video    Kind = "video"
	Voice    Kind = "voice" // a voice note (push-to-talk audio)
	Document Kind = "document"
)

// KindOf follows DESIGN.md: image/jpeg, image/png, image/webp are images,
// video/mp4 a video, audio/ogg a voice note, anything else a document.
// Parameters (audio/ogg; codecs=opus) and case do not matter.
func KindOf(mime string) Kind {
	base, _, _ := strings.Cut(mime, ";")
	switch strings.ToLower(strings.TrimSpace(base)) {
	case "image/jpeg", "image/png", "image/webp":
		return Image
	case "video/mp4":
		return Video
	case "audio/ogg":
		return Voice
	}
	return Document
}

// MaxBytes is the largest file a media message may carry: WhatsApp's own
// ceiling for a document. media.max_bytes may not exceed it, and the
// contract's gRPC limit is set from it.
const MaxBytes = 100 << 20
