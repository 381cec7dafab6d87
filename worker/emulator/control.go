package emulator

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
	"google.golang.org/protobuf/encoding/protojson"
)

// DeviceInfo is one linked device in GET /control/devices.
type DeviceInfo struct {
	Phone     string `json:"phone"`
	JID       string `json:"jid"`
	Connected bool   `json:"connected"`
	// DeviceProps is what the device announced when it registered
	// (waCompanionReg.DeviceProps in protojson: its platform, and the
	// history sync it asks the phone for), absent if it sent none.
	DeviceProps json.RawMessage `json:"device_props,omitempty"`
}

// defaultBadMACSender is the peer whose messages /badmac corrupts when the
// request names none.
const defaultBadMACSender = "15550100000"

// maxBadMAC bounds one /badmac request; whatsmeow stops sending retry
// receipts after a few per message anyway, and tests need a handful.
const maxBadMAC = 100

func (s *Server) registerControl(mux *http.ServeMux) {
	mux.HandleFunc("/control/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no control endpoint %s", r.URL.Path))
	})
	mux.HandleFunc("/control/root-key", only(http.MethodGet, s.handleRootKey))
	mux.HandleFunc("/control/devices", only(http.MethodGet, s.handleDevices))
	mux.HandleFunc("/control/media-host", only(http.MethodGet, s.handleMediaHost))
	mux.HandleFunc("/control/media", s.handleMedia)
	mux.HandleFunc("/control/history", s.handleHistory)
	mux.HandleFunc("/control/unknown-iqs", only(http.MethodGet, s.handleUnknownIQs))
	mux.HandleFunc("/control/registrations", only(http.MethodGet, s.handleRegistrations))
	mux.HandleFunc("/control/scan", only(http.MethodPost, s.handleScan))
	mux.HandleFunc("/control/pair-code", only(http.MethodPost, s.handlePairCode))
	mux.HandleFunc("/control/devices/{phone}/message", only(http.MethodPost, s.handleMessage))
	mux.HandleFunc("/control/devices/{phone}/badmac", only(http.MethodPost, s.handleBadMAC))
	mux.HandleFunc("/control/devices/{phone}/logout", only(http.MethodPost, s.handleLogout))
	mux.HandleFunc("/control/devices/{phone}/replace", only(http.MethodPost, s.handleReplace))
	mux.HandleFunc("/control/devices/{phone}/reject-login", only(http.MethodPost, s.handleRejectLogin))
	mux.HandleFunc("/control/devices/{phone}/ban", only(http.MethodPost, s.handleBan))
	mux.HandleFunc("/control/devices/{phone}/sent", only(http.MethodGet, s.handleSent))
	mux.HandleFunc("/control/devices/{phone}/send-error", only(http.MethodPost, s.handleSendError))
	mux.HandleFunc("/control/devices/{phone}/receipts", only(http.MethodPost, s.handleReceipts))
	mux.HandleFunc("/control/directory/{phone}", only(http.MethodPut, s.handleDirectory))
}

// only answers other methods with a JSON 405, which ServeMux's method
// patterns would answer in plain text.
func only(method string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not supported; use %s", r.Method, r.URL.Path, method))
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON body: %v", err))
		return false
	}
	return true
}

// readOptionalJSON is readJSON for a body that may be left out entirely:
// then v keeps the defaults it was given.
func readOptionalJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid JSON body: %v", err))
		return false
	}
	return true
}

func (s *Server) handleRootKey(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"public_key": base64.StdEncoding.EncodeToString(s.root.Pub[:])})
}

func (s *Server) handleUnknownIQs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]string{"unknown_iqs": append([]string{}, s.UnknownIQs()...)})
}

func (s *Server) handleRegistrations(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]int{"offered": s.Registrations()})
}

func (s *Server) handleDevices(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Devices())
}

// Devices lists the linked (not logged out) devices, sorted by JID.
func (s *Server) Devices() []DeviceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []DeviceInfo{}
	for _, ph := range s.phones {
		for _, dev := range ph.devices {
			if !dev.removed {
				info := DeviceInfo{Phone: ph.number, JID: dev.jid.String(), Connected: dev.conn != nil}
				if dev.props != nil {
					info.DeviceProps, _ = protojson.Marshal(dev.props) // a parsed message always marshals
				}
				out = append(out, info)
			}
		}
	}
	slices.SortFunc(out, func(a, b DeviceInfo) int { return strings.Compare(a.JID, b.JID) })
	return out
}

func (s *Server) handleScan(w http.ResponseWriter, r *http.Request) {
	var req struct {
		QRCode string `json:"qr_code"`
		Phone  string `json:"phone"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	number, err := numberOf(req.Phone)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	jid, err := s.scan(r.Context(), req.QRCode, number)
	writePairResult(w, jid, err)
}

// handlePairCode is the phone's user typing the code a linked device shows
// after Client.PairPhone named this phone's number.
func (s *Server) handlePairCode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Phone string `json:"phone"`
		Code  string `json:"code"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	number, err := numberOf(req.Phone)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	jid, err := s.pairCode(r.Context(), number, req.Code)
	if err != nil {
		s.log.Info("code pairing failed", "phone", number, "err", err)
	}
	writePairResult(w, jid, err)
}

func writePairResult(w http.ResponseWriter, jid types.JID, err error) {
	switch {
	case errors.Is(err, errBadRequest):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, errNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, err.Error())
	case err != nil:
		writeError(w, http.StatusConflict, fmt.Sprintf("pairing failed: %v", err))
	default:
		writeJSON(w, http.StatusOK, map[string]string{"jid": jid.String()})
	}
}

// currentDevice is the newest linked device of the phone in the path.
func (s *Server) currentDevice(w http.ResponseWriter, r *http.Request) *device {
	number, err := numberOf(r.PathValue("phone"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var newest *device
	if ph, ok := s.phones[number]; ok {
		for _, dev := range ph.devices {
			if !dev.removed && (newest == nil || dev.jid.Device > newest.jid.Device) {
				newest = dev
			}
		}
	}
	if newest == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("phone %s has no linked device", number))
	}
	return newest
}

func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) {
	var req struct {
		From string `json:"from"`
		Text string `json:"text"`
	}
	dev := s.currentDevice(w, r)
	if dev == nil || !readJSON(w, r, &req) {
		return
	}
	from, err := numberOf(req.From)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from: %v", err))
		return
	}
	if from == dev.phone.number {
		writeError(w, http.StatusBadRequest, "from must be another number than the device's own")
		return
	}
	id, err := s.deliver(r.Context(), dev, from, req.Text, false)
	if err != nil {
		s.writeDeliverError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id})
}

func (s *Server) handleBadMAC(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Count int    `json:"count"`
		From  string `json:"from"`
	}
	dev := s.currentDevice(w, r)
	if dev == nil || !readJSON(w, r, &req) {
		return
	}
	if req.Count < 1 || req.Count > maxBadMAC {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("count must be between 1 and %d", maxBadMAC))
		return
	}
	from := defaultBadMACSender
	if req.From != "" {
		var err error
		if from, err = numberOf(req.From); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("from: %v", err))
			return
		}
	}
	ids := make([]string, 0, req.Count)
	for i := range req.Count {
		id, err := s.deliver(r.Context(), dev, from, fmt.Sprintf("corrupted message %d", i+1), true)
		if err != nil {
			s.writeDeliverError(w, err)
			return
		}
		ids = append(ids, id)
	}
	writeJSON(w, http.StatusOK, map[string][]string{"ids": ids})
}

func (s *Server) writeDeliverError(w http.ResponseWriter, err error) {
	if errors.Is(err, errOffline) {
		writeError(w, http.StatusConflict, "the device is not connected")
		return
	}
	s.log.Error("delivering a message failed", "err", err)
	writeError(w, http.StatusInternalServerError, fmt.Sprintf("delivering the message failed: %v", err))
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	dev := s.currentDevice(w, r)
	if dev == nil {
		return
	}
	s.mu.Lock()
	dev.removed = true
	c := dev.conn
	s.mu.Unlock()
	s.log.Info("removing device", "jid", dev.jid.String(), "connected", c != nil)
	if c != nil {
		err := c.terminate(waBinary.Node{Tag: "stream:error", Attrs: waBinary.Attrs{"code": "401"}, Content: []waBinary.Node{
			{Tag: "conflict", Attrs: waBinary.Attrs{"type": "device_removed"}},
		}})
		if err != nil {
			s.log.Warn("could not tell the device it was removed", "jid", dev.jid.String(), "err", err)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"jid": dev.jid.String(), "connected": c != nil})
}

func (s *Server) handleReplace(w http.ResponseWriter, r *http.Request) {
	dev := s.currentDevice(w, r)
	if dev == nil {
		return
	}
	s.mu.Lock()
	c := dev.conn
	s.mu.Unlock()
	if c == nil {
		writeError(w, http.StatusConflict, "the device is not connected")
		return
	}
	s.log.Info("replacing device connection", "jid", dev.jid.String())
	err := c.terminate(waBinary.Node{Tag: "stream:error", Content: []waBinary.Node{
		{Tag: "conflict", Attrs: waBinary.Attrs{"type": "replaced"}},
	}})
	if err != nil {
		writeError(w, http.StatusConflict, fmt.Sprintf("could not replace the connection: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"jid": dev.jid.String()})
}

// handleRejectLogin makes the device's next login fail with 401. A connected
// device is disconnected at once, so that its automatic reconnect is that
// next login.
func (s *Server) handleRejectLogin(w http.ResponseWriter, r *http.Request) {
	dev := s.currentDevice(w, r)
	if dev == nil {
		return
	}
	s.mu.Lock()
	dev.rejectLogin = true
	c := dev.conn
	s.mu.Unlock()
	s.log.Info("next login will be rejected", "jid", dev.jid.String(), "connected", c != nil)
	if c != nil {
		c.close()
	}
	writeJSON(w, http.StatusOK, map[string]any{"jid": dev.jid.String(), "connected": c != nil})
}

// Defaults and bounds of POST /control/devices/{phone}/ban. Code 101 is
// events.TempBanSentToTooManyPeople, the commonest ban for a bulk sender.
const (
	defaultBanSeconds = 60
	maxBanSeconds     = 7 * 24 * 60 * 60
	defaultBanCode    = int(events.TempBanSentToTooManyPeople)
)

// handleBan bans the device temporarily, as WhatsApp does a number that
// sent too much: its next login, and every login for the following
// seconds, fails with <failure reason=402 code expire>; later logins
// succeed, the device stays linked. The body { "seconds", "code" } is
// optional. A connected device is disconnected at once (like reject-login),
// so that its automatic reconnect is that next login.
func (s *Server) handleBan(w http.ResponseWriter, r *http.Request) {
	req := struct {
		Seconds int `json:"seconds"`
		Code    int `json:"code"`
	}{Seconds: defaultBanSeconds, Code: defaultBanCode}
	dev := s.currentDevice(w, r)
	if dev == nil || !readOptionalJSON(w, r, &req) {
		return
	}
	if req.Seconds < 1 || req.Seconds > maxBanSeconds {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("seconds must be between 1 and %d", maxBanSeconds))
		return
	}
	if req.Code < 1 {
		writeError(w, http.StatusBadRequest, "code must be a positive ban reason (101 to 106 are the known ones)")
		return
	}
	s.mu.Lock()
	dev.ban = &tempBan{code: req.Code, duration: time.Duration(req.Seconds) * time.Second}
	c := dev.conn
	s.mu.Unlock()
	s.log.Info("device temporarily banned from its next login", "jid", dev.jid.String(),
		"seconds", req.Seconds, "code", req.Code, "connected", c != nil)
	if c != nil {
		c.close()
	}
	writeJSON(w, http.StatusOK, map[string]any{"jid": dev.jid.String(), "connected": c != nil,
		"seconds": req.Seconds, "code": req.Code})
}
