package rooms

import (
	"testing"

	"github.com/nestbot/nestbot/nostrx"
)

func TestHosted(t *testing.T) {
	hosted := []string{"https://nests.example.com/api/v1/nests", "wss+livekit://lk.example.com"}
	for _, tt := range []struct {
		places []string
		want   bool
		where  string
	}{
		{[]string{"https://nests.example.com/api/v1/nests"}, true, ""},
		{[]string{"https://NESTS.example.com:443/api/v1/nests/"}, true, ""},
		{[]string{"https://nests.example.com/api/v1/nests/abc"}, true, ""},
		{[]string{"wss+livekit://lk.example.com"}, true, ""},
		{[]string{"wss://lk.example.com:443"}, true, ""},
		{[]string{"https://moq.nostrnests.com:4443", "https://moq-auth.nostrnests.com"}, false, "https://moq.nostrnests.com:4443"},
		{[]string{"https://nests.example.com/api/v1/nestsX"}, false, "https://nests.example.com"},
		{[]string{"https://nests.example.com/other"}, false, "https://nests.example.com"},
		{[]string{"ws+livekit://lk.example.com"}, false, "ws+livekit://lk.example.com"}, // port 80, not 443
		{[]string{"wss+livekit://lk.example.com.evil.org"}, false, "wss+livekit://lk.example.com.evil.org"},
		{nil, false, ""},
	} {
		ok, where := Hosted(&nostrx.RoomEvent{Places: tt.places}, hosted)
		if ok != tt.want || where != tt.where {
			t.Errorf("Hosted(%v) = %v %q, want %v %q", tt.places, ok, where, tt.want, tt.where)
		}
	}
}
