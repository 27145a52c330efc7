package rooms

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/nestbot/nestbot/nostrx"
)

// Record is a room's record as the Nests API server keeps it in Redis under
// "nest:<id>". Fields the bot does not know are kept verbatim in extra and
// written back, so a rewrite never loses what a newer server stored.
type Record struct {
	ID             string   `json:"id"`
	Host           string   `json:"host"`
	Speakers       []string `json:"speakers"`
	Admins         []string `json:"admins"`
	Relays         []string `json:"relays"`
	HLSStream      bool     `json:"hls_stream"`
	CreatedAt      int64    `json:"createdAt"`
	Status         string   `json:"status"`
	RestartedAt    int64    `json:"restartedAt,omitempty"`
	OriginalRoomID string   `json:"originalRoomId,omitempty"`
	IsRecreated    bool     `json:"isRecreated,omitempty"`

	extra map[string]json.RawMessage
}

// StatusActive is the only status the Nests API server writes.
const StatusActive = "active"

var knownRecordFields = []string{"id", "host", "speakers", "admins", "relays", "hls_stream", "createdAt", "status", "restartedAt", "originalRoomId", "isRecreated"}

type recordAlias Record

// UnmarshalJSON reads the known fields and keeps every other one.
func (r *Record) UnmarshalJSON(b []byte) error {
	var a recordAlias
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, k := range knownRecordFields {
		delete(all, k)
	}
	*r = Record(a)
	if len(all) > 0 {
		r.extra = all
	}
	return nil
}

// MarshalJSON writes the known fields and the kept unknown ones.
func (r Record) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(recordAlias(r))
	if err != nil || len(r.extra) == 0 {
		return b, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	for k, v := range r.extra {
		if _, known := all[k]; !known {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// RoleOf is the role the record gives a pubkey. Speakers may speak but not
// restart; only Host and Admin pass Authorize.
func (r *Record) RoleOf(pubkey string) nostrx.Role {
	switch {
	case pubkey == r.Host:
		return nostrx.RoleHost
	case slices.Contains(r.Admins, pubkey):
		return nostrx.RoleAdmin
	case slices.Contains(r.Speakers, pubkey):
		return nostrx.RoleSpeaker
	}
	return nostrx.RoleNone
}

func (r *Record) validate(id string) error {
	if r.ID != id {
		return fmt.Errorf("record for %s has id %q", id, r.ID)
	}
	return nil
}
