package emulator

import (
	"fmt"
	"net/http"
	"time"

	waBinary "go.mau.fi/whatsmeow/binary"
	"go.mau.fi/whatsmeow/types"
)

// refusal is a send error armed by the control API: the next count sends
// (to one recipient, or to anyone) are acked with that error code instead
// of being delivered, as WhatsApp refuses a restricted or banned sender.
type refusal struct {
	code  int
	to    string // a recipient's number; "" for any
	count int
}

// refuse takes one armed refusal for a send from ph to recipient; the
// caller holds no lock.
func (s *Server) refuse(ph *phone, recipient string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range ph.refusals {
		rf := &ph.refusals[i]
		if rf.count > 0 && (rf.to == "" || rf.to == recipient) {
			rf.count--
			return rf.code, true
		}
	}
	return 0, false
}

// phoneOf finds the phone named in the path; it writes the error itself.
func (s *Server) phoneOf(w http.ResponseWriter, r *http.Request) *phone {
	number, err := numberOf(r.PathValue("phone"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil
	}
	s.mu.Lock()
	ph := s.phones[number]
	s.mu.Unlock()
	if ph == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("phone %s never linked a device", number))
	}
	return ph
}

// handleSent lists what the phone's devices sent, as recipients decrypted
// it: each message ID once, as it first arrived (what a recipient's phone
// shows, deduplicating by ID), or with ?raw=1 every delivery, resends of
// one ID included.
func (s *Server) handleSent(w http.ResponseWriter, r *http.Request) {
	ph := s.phoneOf(w, r)
	if ph == nil {
		return
	}
	raw := r.URL.Query().Get("raw") == "1"
	s.mu.Lock()
	out := make([]Delivery, 0, len(ph.deliveries))
	seen := map[[2]string]bool{}
	for _, d := range ph.deliveries {
		key := [2]string{d.To, d.ID}
		if !raw && seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, d)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

// maxRefusals bounds one send-error request.
const maxRefusals = 1000

// handleSendError arms {"code", "count", "to"}: the next count sends (to
// "to" only, when given) are acked with error code and not delivered.
func (s *Server) handleSendError(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code  int    `json:"code"`
		Count int    `json:"count"`
		To    string `json:"to"`
	}
	ph := s.phoneOf(w, r)
	if ph == nil || !readJSON(w, r, &req) {
		return
	}
	if req.Code < 400 || req.Code > 599 {
		writeError(w, http.StatusBadRequest, "code must be an error code between 400 and 599 (463, 479, ...)")
		return
	}
	if req.Count == 0 {
		req.Count = 1
	}
	if req.Count < 1 || req.Count > maxRefusals {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("count must be between 1 and %d", maxRefusals))
		return
	}
	to := ""
	if req.To != "" {
		var err error
		if to, err = numberOf(req.To); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("to: %v", err))
			return
		}
	}
	s.mu.Lock()
	ph.refusals = append(ph.refusals, refusal{code: req.Code, to: to, count: req.Count})
	s.mu.Unlock()
	s.log.Info("send errors armed", "phone", ph.number, "code", req.Code, "count", req.Count, "to", to)
	writeJSON(w, http.StatusOK, map[string]any{"code": req.Code, "count": req.Count, "to": to})
}

// handleReceipts plays the recipient of message {"id"}: it sends the
// sending device a receipt of {"type"}: "read", "played", or "" / "delivered".
func (s *Server) handleReceipts(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	ph := s.phoneOf(w, r)
	if ph == nil || !readJSON(w, r, &req) {
		return
	}
	attrs := waBinary.Attrs{"id": req.ID, "t": fmt.Sprint(time.Now().Unix())}
	switch req.Type {
	case "", "delivered":
	case "read", "played":
		attrs["type"] = req.Type
	default:
		writeError(w, http.StatusBadRequest, `type must be "delivered", "read" or "played"`)
		return
	}
	s.mu.Lock()
	recipient := ""
	for _, d := range ph.deliveries {
		if d.ID == req.ID {
			recipient = d.To
		}
	}
	var c *conn
	for _, dev := range ph.devices {
		if dev.conn != nil && !dev.removed {
			c = dev.conn
		}
	}
	s.mu.Unlock()
	switch {
	case recipient == "":
		writeError(w, http.StatusNotFound, fmt.Sprintf("phone %s delivered no message %q", ph.number, req.ID))
		return
	case c == nil:
		writeError(w, http.StatusConflict, fmt.Sprintf("phone %s has no connected device to receive the receipt", ph.number))
		return
	}
	attrs["from"] = types.NewJID(recipient, types.DefaultUserServer)
	if err := c.send(waBinary.Node{Tag: "receipt", Attrs: attrs}); err != nil {
		writeError(w, http.StatusBadGateway, fmt.Sprintf("send receipt: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": req.ID, "from": recipient, "type": req.Type})
}
