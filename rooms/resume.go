package rooms

import "sync"

// Marks are the recreation marks (see Engine.markRecreating) one request's
// runs made, kept in memory by the caller across the runs of that request
// (a restart resumed after a public change runs again). The mark in Redis
// is best effort: when Redis refuses it (the very failure that makes a
// restart resume), the resumed run would find no mark and recreate the
// room a second time, kicking everyone out again. With Marks in its Run
// (Engine.RestartRun), the engine also notes each mark there, and a run
// that finds none in Redis uses the one its earlier run noted. A process
// that dies loses them; the replica that takes the request over has only
// Redis's, as before.
type Marks struct {
	mu sync.Mutex
	m  map[string]Replaced // by room ID
}

// note remembers p as room's mark (nil m: nothing).
func (m *Marks) note(room string, p Replaced) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]Replaced{}
	}
	m.m[room] = p
}

// get returns the mark noted for room.
func (m *Marks) get(room string) (Replaced, bool) {
	if m == nil {
		return Replaced{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.m[room]
	return p, ok
}
