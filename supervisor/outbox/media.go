package outbox

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/wa-sidecar/wa-sidecar/shared/contract/pb"
)

// MediaFile is a stored file as a send needs it.
type MediaFile struct {
	Data     []byte
	MIME     string
	Filename string
}

// Media reads a stored file at send time; *mediastore.Library implements it.
type Media interface {
	Load(ctx context.Context, id string) (MediaFile, error)
}

// ErrMediaMissing: the file a message names is no longer stored whole. The
// message fails with ReasonMediaMissing rather than going out without it.
var ErrMediaMissing = errors.New("media file is missing")

// ReasonMediaMissing is the failure reason of a message whose file is gone.
const ReasonMediaMissing = "media_missing"

var mediaID = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// checkContent accepts a text, or a file with an optional caption.
func (o *Outbox) checkContent(text, media string) error {
	if media == "" {
		return checkText(text)
	}
	if o.media == nil {
		return &InputError{Field: "media", Msg: "this supervisor stores no media"}
	}
	if !mediaID.MatchString(media) {
		return &InputError{Field: "media", Msg: "must be a media_id as POST /v1/orgs/{id}/media returns it (\"sha256:\" and 64 lower-case hex digits)"}
	}
	if text == "" {
		return nil
	}
	return checkText(text)
}

// deliver hands one message to the worker: a text as SendText, a file as
// SendMedia with its bytes read now, so that the worker uploads them on
// every attempt and the message keeps its WhatsApp ID across resends.
func (s *sender) deliver(ctx context.Context, w Worker, m Message, typing time.Duration) (*pb.SendTextResponse, error) {
	if m.Media == "" {
		return w.SendText(ctx, &pb.SendTextRequest{To: m.To, Text: m.Text, Id: m.WAID, TypingMs: typing.Milliseconds()})
	}
	if s.o.media == nil {
		return nil, fmt.Errorf("message %s: %w (this supervisor stores no media)", m.ID, ErrMediaMissing)
	}
	f, err := s.o.media.Load(ctx, m.Media)
	if err != nil {
		return nil, err
	}
	return w.SendMedia(ctx, &pb.SendMediaRequest{To: m.To, Id: m.WAID, Data: f.Data, Mime: f.MIME,
		Filename: f.Filename, Caption: m.Text, TypingMs: typing.Milliseconds()})
}
