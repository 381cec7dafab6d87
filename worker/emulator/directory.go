package emulator

import (
	"net/http"
)

// handleDirectory sets whether a number has a WhatsApp account: usync
// contact queries answer "out" for a number marked off, and every number
// never marked is on WhatsApp.
func (s *Server) handleDirectory(w http.ResponseWriter, r *http.Request) {
	number, err := numberOf(r.PathValue("phone"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var req struct {
		OnWhatsApp *bool `json:"on_whatsapp"`
	}
	if !readJSON(w, r, &req) {
		return
	}
	if req.OnWhatsApp == nil {
		writeError(w, http.StatusBadRequest, `on_whatsapp is required: {"on_whatsapp": false}`)
		return
	}
	s.mu.Lock()
	if s.offWhatsApp == nil {
		s.offWhatsApp = make(map[string]bool)
	}
	if *req.OnWhatsApp {
		delete(s.offWhatsApp, number)
	} else {
		s.offWhatsApp[number] = true
	}
	s.mu.Unlock()
	s.log.Info("directory entry set", "phone", number, "on_whatsapp", *req.OnWhatsApp)
	writeJSON(w, http.StatusOK, map[string]any{"phone": number, "on_whatsapp": *req.OnWhatsApp})
}

// onWhatsApp reports whether number has an account in the directory.
func (s *Server) onWhatsApp(number string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.offWhatsApp[number]
}
