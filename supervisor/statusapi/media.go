package statusapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/wa-sidecar/wa-sidecar/supervisor/mediastore"
)

// Media stores an uploaded file; *mediastore.Library implements it.
type Media interface {
	Put(ctx context.Context, data []byte, mime, filename string, now time.Time) (mediastore.Info, error)
}

// MediaRequest is the body of POST /v1/orgs/{id}/media.
type MediaRequest struct {
	Data     string `json:"data"` // standard base64
	MIME     string `json:"mime"`
	Filename string `json:"filename"`
}

// MediaBody is a stored file as the API shows it.
type MediaBody struct {
	MediaID  string `json:"media_id"`
	MIME     string `json:"mime"`
	Size     int64  `json:"size"`
	Filename string `json:"filename,omitempty"`
}

// mediaBodyLimit lets the base64 of a max-size file through, with room for
// the JSON around it; a larger decoded file is then refused by its size.
func mediaBodyLimit(maxBytes int64) int64 {
	return (maxBytes+2)/3*4 + 64<<10
}

func badMedia(msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "bad_body", msg: msg}
}

// uploadMedia answers 201 with the stored file's id: the same bytes again
// give the same id.
func (s *server) uploadMedia(r *http.Request, id string) (int, any, error) {
	var req MediaRequest
	if err := decode(r, &req, true); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusRequestEntityTooLarge {
			return 0, nil, &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large",
				msg: fmt.Sprintf("data: the file is larger than media.max_bytes (%d bytes)", s.mediaMax)}
		}
		return 0, nil, err
	}
	if err := s.registered(id); err != nil {
		return 0, nil, err
	}
	mt, err := checkMIME(req.MIME)
	if err != nil {
		return 0, nil, err
	}
	if err := checkFilename(req.Filename); err != nil {
		return 0, nil, err
	}
	if req.Data == "" {
		return 0, nil, badMedia("data is missing: the file's bytes in standard base64")
	}
	if n := int64(base64.StdEncoding.DecodedLen(len(req.Data))); n > s.mediaMax+2 {
		return 0, nil, tooLargeFile(n, s.mediaMax)
	}
	data, err := base64.StdEncoding.DecodeString(req.Data)
	if err != nil {
		return 0, nil, badMedia("data is not standard base64: " + err.Error())
	}
	if int64(len(data)) > s.mediaMax {
		return 0, nil, tooLargeFile(int64(len(data)), s.mediaMax)
	}
	if len(data) == 0 {
		return 0, nil, badMedia("data is empty")
	}
	info, err := s.media.Put(r.Context(), data, mt, req.Filename, time.Now())
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, MediaBody{MediaID: info.ID, MIME: info.MIME, Size: info.Size, Filename: info.Filename}, nil
}

func tooLargeFile(n, max int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, code: "too_large",
		msg: fmt.Sprintf("data: the file is %d bytes; media.max_bytes allows %d", n, max)}
}

// checkMIME requires a type/subtype and returns it as sent, parameters
// included (audio/ogg; codecs=opus), which WhatsApp shows as given.
func checkMIME(m string) (string, error) {
	if strings.TrimSpace(m) == "" {
		return "", badMedia("mime is missing: the file's MIME type, such as application/pdf or image/jpeg")
	}
	mt, _, err := mime.ParseMediaType(m)
	if err != nil || !strings.Contains(mt, "/") || len(m) > 255 {
		return "", badMedia(fmt.Sprintf("mime %q is not a MIME type such as application/pdf", truncate(m)))
	}
	return strings.TrimSpace(m), nil
}

// checkFilename takes a plain name a recipient's phone can show and save.
func checkFilename(name string) error {
	switch {
	case name == "":
		return nil
	case !utf8.ValidString(name) || len(name) > 255:
		return badMedia("filename must be valid UTF-8 of at most 255 bytes")
	case strings.ContainsAny(name, `/\`) || strings.ContainsFunc(name, unicode.IsControl) || name == "." || name == "..":
		return badMedia(fmt.Sprintf("filename %q must be a plain file name, without a path or control characters", truncate(name)))
	}
	return nil
}
