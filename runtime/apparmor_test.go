package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAppArmorRefusal(t *testing.T) {
	old := appArmorParam
	defer func() { appArmorParam = old }()
	dir := t.TempDir()
	for content, want := range map[string]string{
		"":     "Cannot enforce AppArmor: AppArmor is not enabled on the host", // no module
		"N\n":  "Cannot enforce AppArmor: AppArmor is not enabled on the host",
		"Y\n":  "Cannot enforce AppArmor: podrun does not apply AppArmor profiles",
		"Yes!": "Cannot enforce AppArmor: podrun does not apply AppArmor profiles",
	} {
		appArmorParam = filepath.Join(dir, "missing")
		if content != "" {
			appArmorParam = filepath.Join(dir, "enabled")
			if err := os.WriteFile(appArmorParam, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if got := AppArmorRefusal(); got != want {
			t.Errorf("%q: %q, want %q", content, got, want)
		}
	}
}
