package e2e

import (
	"testing"

	"github.com/google/uuid"

	"github.com/nestbot/nestbot/bot"
)

// histogram returns the sample count and sum of each series of a histogram
// family, keyed by the value of label.
func histogram(t *testing.T, svc *bot.Service, name, label string) (count map[string]uint64, sum map[string]float64) {
	t.Helper()
	fams, err := svc.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	count, sum = map[string]uint64{}, map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					key = lp.GetValue()
				}
			}
			count[key] += m.GetHistogram().GetSampleCount()
			sum[key] += m.GetHistogram().GetSampleSum()
		}
	}
	return count, sum
}

// TestRequestStages: a real restart in place (real relays, Redis and
// LiveKit) is observed once in each step of nestbot_request_stage_seconds
// (queue, claim, work, build, store, send: docs/operations.md), each with
// a time of its own, and the steps, which follow one another, add up to no
// more than the request's whole time (nestbot_request_duration_seconds,
// observed after the last step ended).
func TestRequestStages(t *testing.T) {
	w := newWorld(t, 2)
	r := w.run(false)
	r.waitRelays(t, 2)
	host := newUser(t)
	id := uuid.NewString()
	w.nestsRecord(id, host.pk, nil, nil)
	w.createLiveRoom(id)
	if res := restartResult(t, w.ask(host, coord(host.pk, id), "restart").Payload); res.RoomID != id || res.IsNewRoom {
		t.Fatalf("result %+v", res)
	}
	requestsDone(t, r.svc, 1) // its duration is observed after the answer and the stages

	count, sum := histogram(t, r.svc, "nestbot_request_stage_seconds", "stage")
	var total float64
	for _, stage := range []string{"queue", "claim", "work", "build", "store", "send"} {
		if count[stage] != 1 || sum[stage] <= 0 {
			t.Errorf("stage %s: %d observations, %g s; want 1 and a time", stage, count[stage], sum[stage])
		}
		total += sum[stage]
	}
	if len(count) != 6 {
		t.Errorf("stages observed: %v, want exactly the six", count)
	}
	_, whole := histogram(t, r.svc, "nestbot_request_duration_seconds", "action")
	if total > whole["restart"] {
		t.Errorf("the stages add up to %g s, more than the request's %g s", total, whole["restart"])
	}
}
