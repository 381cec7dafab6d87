package session

import (
	"sync"

	"go.mau.fi/whatsmeow"
	"go.mau.fi/whatsmeow/proto/waCompanionReg"
	"go.mau.fi/whatsmeow/store"
	waLog "go.mau.fi/whatsmeow/util/log"
	"google.golang.org/protobuf/proto"
)

// A sidecar that sends notifications has no use for chat history, which a
// newly linked device is otherwise sent by the phone and downloads and
// decodes: megabytes of memory and bandwidth on a real account. The worker
// asks for as little as the protocol lets it, and downloads none of what
// still comes.

var askNoHistoryOnce sync.Once

// askNoHistory sets the history sync request of whatsmeow's process-global
// device properties, which the registration payload carries to the phone
// (store/clientpayload.go). The quotas are 1 rather than 0, which the
// phone could read as "not set" and replace with its defaults. The
// inline payload is refused too: inlined, the initial bootstrap would come
// inside the message itself, which is always decrypted and parsed. The
// Support* capabilities stay whatsmeow's: they say what the client
// understands, not how much it wants.
func askNoHistory() {
	askNoHistoryOnce.Do(func() {
		store.DeviceProps.RequireFullSync = proto.Bool(false)
		cfg := proto.Clone(store.DeviceProps.GetHistorySyncConfig()).(*waCompanionReg.DeviceProps_HistorySyncConfig)
		if cfg == nil {
			cfg = &waCompanionReg.DeviceProps_HistorySyncConfig{}
		}
		cfg.FullSyncDaysLimit = proto.Uint32(1)
		cfg.FullSyncSizeMbLimit = proto.Uint32(1)
		cfg.StorageQuotaMb = proto.Uint32(1)
		cfg.RecentSyncDaysLimit = proto.Uint32(1)
		cfg.ThumbnailSyncDaysLimit = proto.Uint32(1)
		cfg.InlineInitialPayloadInE2EeMsg = proto.Bool(false)
		store.DeviceProps.HistorySyncConfig = cfg
	})
}

// newClient is whatsmeow.NewClient for a worker: history sync
// notifications are acknowledged to the phone (whatsmeow sends the
// hist_sync receipt either way) but their blobs are never downloaded.
func newClient(device *store.Device, log waLog.Logger) *whatsmeow.Client {
	cli := whatsmeow.NewClient(device, log)
	cli.ManualHistorySyncDownload = true
	return cli
}
