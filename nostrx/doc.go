// Package nostrx is nestbot's Nostr wire contract: the kinds it speaks, the
// restart request it accepts, the encrypted response it returns, the kind
// 30312 room event it reads and writes, and the room addresses users type.
//
// Everything here is pure: no relay, Redis or LiveKit I/O. The bot package
// moves events; this package decides what an event means and whether it may
// be trusted. docs/protocol.md is the same contract written for client
// authors, and the two must change together.
package nostrx
