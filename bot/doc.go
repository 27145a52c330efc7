// Package bot is the long-running service: it listens on every configured
// relay for restart requests, screens and verifies them, claims each one
// exactly once in Redis, hands it to the rooms engine, and publishes the
// encrypted answer.
//
// The pipeline runs cheapest check first so that junk costs almost nothing:
// structure, already seen, freshness, id and signature (in the relay's own
// goroutine), then claim, authorization and work on a bounded worker pool.
package bot
