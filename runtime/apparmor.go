package runtime

import (
	"bytes"
	"os"
)

// appArmorParam is where the kernel says whether AppArmor is enabled.
var appArmorParam = "/sys/module/apparmor/parameters/enabled"

// AppArmorEnabled reports whether the host runs AppArmor, as the kubelet
// and runc decide it: the apparmor module's "enabled" parameter is "Y".
func AppArmorEnabled() bool {
	b, err := os.ReadFile(appArmorParam)
	return err == nil && bytes.HasPrefix(b, []byte("Y"))
}

// AppArmorReason is the reason of a pod refused for its AppArmor profile.
const AppArmorReason = "AppArmor"

// AppArmorRefusal is the message with which a pod whose pod or container
// securityContext.appArmorProfile (or deprecated annotation) asks for a
// profile other than Unconfined must be refused at admission: phase
// Failed, reason AppArmorReason. Without AppArmor on the host it is the
// kubelet's message. podrun applies no AppArmor profile, so on a host that
// has AppArmor it refuses such a pod too rather than run it unconfined.
func AppArmorRefusal() string {
	if !AppArmorEnabled() {
		return "Cannot enforce AppArmor: AppArmor is not enabled on the host"
	}
	return "Cannot enforce AppArmor: podrun does not apply AppArmor profiles"
}
