package bot

import "context"

// background lists the service's long-running tasks besides the relay
// listeners and workers (HTTP endpoints, identity, room lifecycle). Each
// runs until ctx ends; Run waits for all of them before returning.
func (s *Service) background() []func(context.Context) { return nil }
