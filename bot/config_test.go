package bot

import (
	"os"
	"strings"
	"testing"

	"github.com/nestbot/nestbot/internal/config"
)

// clearEnv unsets every NESTBOT_* variable the configuration reads for the
// rest of the test (an empty variable counts as set), restoring them
// afterwards. The configuration's own tests are in internal/config.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range config.Keys() {
		name := config.EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(k.Name, ".", "_"))
		t.Setenv(name, "")
		os.Unsetenv(name)
	}
}
