package session

import (
	"testing"

	"go.mau.fi/whatsmeow/types"
	"go.mau.fi/whatsmeow/types/events"
)

// BenchmarkTranslateMessage is the worker's side of the event fan-in: one
// received message turned into the event the supervisor's runner gets.
func BenchmarkTranslateMessage(b *testing.B) {
	tr, _ := newTranslator()
	peer := types.NewJID("573001112222", types.DefaultUserServer)
	ev := &events.Message{Info: types.MessageInfo{ID: "3EB0A1", MessageSource: types.MessageSource{Sender: peer, Chat: peer}}}
	for b.Loop() {
		tr.translate(ev)
	}
}
