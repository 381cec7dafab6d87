// Package fingerprint is the whatsmeow side of the device fingerprint that
// shared/fingerprint chooses: whatsmeow keeps its device properties in
// process globals and names a browser differently for a QR registration and
// for pairing by phone code, and the two must agree, or one organization
// shows WhatsApp two different devices.
package fingerprint

import (
	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"

	"github.com/wa-sidecar/wa-sidecar/shared/fingerprint"
)

type client struct {
	platform waCompanionReg.DeviceProps_PlatformType
	pair     whatsmeow.PairClientType
}

// clients has every browser shared/fingerprint knows; one missing here
// would register as UNKNOWN, which no real browser does.
var clients = map[string]client{
	fingerprint.Chrome:  {waCompanionReg.DeviceProps_CHROME, whatsmeow.PairClientChrome},
	fingerprint.Edge:    {waCompanionReg.DeviceProps_EDGE, whatsmeow.PairClientEdge},
	fingerprint.Firefox: {waCompanionReg.DeviceProps_FIREFOX, whatsmeow.PairClientFirefox},
	fingerprint.Opera:   {waCompanionReg.DeviceProps_OPERA, whatsmeow.PairClientOpera},
	fingerprint.Safari:  {waCompanionReg.DeviceProps_SAFARI, whatsmeow.PairClientSafari},
}

// Apply writes f into whatsmeow's process-global device properties. Call it
// before whatsmeow.NewClient, because the registration payload is built from
// them; it is per organization only because each organization has its own
// process.
func Apply(f fingerprint.Fingerprint) {
	store.SetOSInfo(f.OS, f.Version)
	store.DeviceProps.PlatformType = Platform(f).Enum()
}

// Platform is f's browser as the QR registration announces it.
func Platform(f fingerprint.Fingerprint) waCompanionReg.DeviceProps_PlatformType {
	return clients[f.Browser].platform
}

// PairClient is f's browser as Client.PairPhone announces it: the same
// browser Apply registers, so that both ways of linking show one device.
func PairClient(f fingerprint.Fingerprint) whatsmeow.PairClientType {
	return clients[f.Browser].pair
}
