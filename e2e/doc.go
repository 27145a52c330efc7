// Package e2e drives nestbot end to end against the real local stack:
// Redis, LiveKit and a khatru relay started per test by internal/stack, and
// nostr-tools as an independent client. It has no code of its own beyond
// tests.
//
// These tests run without the race detector: go-nostr v0.52.3's Relay
// writes and reads its Connection field from two goroutines whenever a
// connection closes (Relay.close against the write loop), which the race
// detector reports on every disconnect. The packages with the bot's own
// concurrency are race-tested on their own (make unit).
//
// Files with the build tag web (make web-test) run the JavaScript client
// library's node tests (clients/js) and drive the restart page (web/) in
// headless Chromium, against the same stack.
package e2e
