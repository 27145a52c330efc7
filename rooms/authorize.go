package rooms

import (
	"github.com/nestbot/nestbot/nostrx"
)

// AuthorizeByRecord decides a restart of a room whose record exists: only
// the record's host and admins may restart it. It returns the requester's
// role, which decides the token's name.
func AuthorizeByRecord(rec *Record, requester string) (nostrx.Role, error) {
	role := rec.RoleOf(requester)
	if role < nostrx.RoleAdmin {
		return role, nostrx.Refuse(nostrx.CodeUnauthorized, "only the room's host or an admin may restart room %s", rec.ID)
	}
	return role, nil
}

// AuthorizeByEvent decides a restart of a room whose record is gone, from
// the newest 30312 at the requested coordinate (nil when none was found).
// The design note let any requester become host of the recreated room;
// here the requester must be the event's author or hold a host or admin
// role in it, and with no event only the coordinate's author may proceed,
// so nobody can take a room over by asking for it.
func AuthorizeByEvent(room nostrx.Coordinate, ev *nostrx.RoomEvent, requester string) (nostrx.Role, error) {
	if ev == nil {
		if requester == room.Author {
			return nostrx.RoleHost, nil
		}
		return nostrx.RoleNone, nostrx.Refuse(nostrx.CodeUnauthorized, "room %s is gone and only its author may recreate it", room.D)
	}
	role := ev.RoleOf(requester)
	if role < nostrx.RoleAdmin {
		return role, nostrx.Refuse(nostrx.CodeUnauthorized, "only the room's host or an admin may restart room %s", room.D)
	}
	return role, nil
}
