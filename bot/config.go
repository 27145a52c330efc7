package bot

import "github.com/nestbot/nestbot/internal/config"

// The configuration lives in internal/config. These aliases keep bot's
// callers and tests unchanged while other code moves; new code should use
// package config directly.
type (
	Config        = config.Config
	ConfigError   = config.Error
	LogConfig     = config.Log
	ProfileConfig = config.Profile
)

// LoadConfig is config.Load.
func LoadConfig(path string) (Config, error) { return config.Load(path) }
