package check

import (
	"fmt"

	"github.com/wa-sidecar/wa-sidecar/soak/rig"
)

// Emulator fails the run when the emulator met iqs it does not
// understand: a whatsmeow query answered wrongly makes any other finding
// about the product doubtful.
func Emulator(r *rig.Rig) []string {
	if iqs := r.UnknownIQs(); len(iqs) > 0 {
		return []string{fmt.Sprintf("emulator: it did not understand these iqs: %v", iqs)}
	}
	return nil
}
