package rooms

// Micro-benchmarks of the restart path's own CPU work in rooms (go test
// -run '^$' -bench . -benchmem ./rooms/). docs/performance.md has figures.

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nestbot/nestbot/nostrx"
)

// BenchmarkTokensMint is the LiveKit token every restart answer carries.
func BenchmarkTokensMint(b *testing.B) {
	tok := Tokens{APIKey: "devkey", APISecret: "a-secret-of-at-least-32-characters!!", TTL: 10 * time.Minute}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tok.Mint("3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b", hexKey(1), nostrx.RoleHost); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRecordRoundTrip reads and writes back a Nests record with an
// unknown field, as a restart in place does.
func BenchmarkRecordRoundTrip(b *testing.B) {
	in := []byte(`{"id":"3f2b9c1e-7a4d-4e8b-9f00-1c2d3e4f5a6b","host":"` + hexKey(1) + `","speakers":["` + hexKey(1) + `"],"admins":["` + hexKey(1) + `"],"relays":["wss://relay.example.com"],"hls_stream":false,"createdAt":1760000000000,"status":"active","theme":{"dark":true}}`)
	b.ReportAllocs()
	for b.Loop() {
		var rec Record
		if err := json.Unmarshal(in, &rec); err != nil {
			b.Fatal(err)
		}
		rec.RestartedAt = 1760000001000
		if _, err := json.Marshal(&rec); err != nil {
			b.Fatal(err)
		}
		_ = roomMetadata(&rec)
	}
}
