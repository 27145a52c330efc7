package rooms

import (
	"net/url"
	"strings"

	"github.com/nestbot/nestbot/nostrx"
)

// Hosted decides whether a room event names this deployment (issue 12):
// one of its "service", "auth", "streaming" or "endpoint" URLs has the
// host and port of an entry of hosted (nests.hosted) and, when that entry
// has a path, lies under it. Schemes only pick the default port: wss,
// https and wss+livekit are 443; ws, http and ws+livekit are 80, so the
// LiveKit endpoint wss+livekit://lk.example.com matches
// wss://lk.example.com. It returns where the room lives otherwise (the
// first URL's scheme://host[:port], or "" when the event names none), for
// the NOT_FOUND message.
func Hosted(ev *nostrx.RoomEvent, hosted []string) (bool, string) {
	where := ""
	for _, p := range ev.Places {
		pu, ok := parsePlace(p)
		if !ok {
			continue
		}
		if where == "" {
			where = pu.Scheme + "://" + pu.Host
		}
		for _, h := range hosted {
			hu, ok := parsePlace(h)
			if ok && samePlace(pu, hu) {
				return true, ""
			}
		}
	}
	return false, where
}

func parsePlace(s string) (*url.URL, bool) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Hostname() == "" {
		return nil, false
	}
	return u, true
}

func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "wss", "https", "wss+livekit":
		return "443"
	case "ws", "http", "ws+livekit":
		return "80"
	}
	return ""
}

// samePlace: p (from a room event) is at or under h (a hosted entry).
func samePlace(p, h *url.URL) bool {
	if !strings.EqualFold(p.Hostname(), h.Hostname()) {
		return false
	}
	pp, hp := p.Port(), h.Port()
	if pp == "" {
		pp = defaultPort(p.Scheme)
	}
	if hp == "" {
		hp = defaultPort(h.Scheme)
	}
	if pp != hp {
		return false
	}
	prefix := strings.TrimSuffix(h.EscapedPath(), "/")
	path := p.EscapedPath()
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}
