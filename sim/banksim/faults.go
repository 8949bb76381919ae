package banksim

import "maps"

// Faults are injected misbehaviours of the simulated bank. The zero value
// is a well-behaved bank. Counters (TimeoutAfterApproveNext) apply to that
// many next operations and then wear off.
type Faults struct {
	// TimeoutAfterApproveNext: the next n new applications are decided
	// and stored, but the answer never comes (the handler waits until the
	// client gives up); GET /credit/applications/{id} shows the decision.
	TimeoutAfterApproveNext int `json:"timeout_after_approve_next,omitempty"`
	// DuplicateCallbacks: each delivered callback is sent this many extra
	// times (each a fresh signed request for the same event).
	DuplicateCallbacks int `json:"duplicate_callbacks,omitempty"`
	// DayDrop: these row ids (draw or repay ids) are left out of the
	// settlement-file reply.
	DayDrop []string `json:"day_drop,omitempty"`
	// DayExtra: this many made-up draw rows (ids EXTRA-1…, 1234 fen, the
	// first hospital the bank saw or H00000000000) are added to replies.
	DayExtra int `json:"day_extra,omitempty"`
	// DayAmountDelta: these row ids appear in replies with the amount
	// changed by the given fen.
	DayAmountDelta map[string]int64 `json:"day_amount_delta,omitempty"`
	// DeclineAll: every new application is declined (reason
	// declined_by_bank).
	DeclineAll bool `json:"decline_all,omitempty"`
}

func (f Faults) clone() Faults {
	f.DayDrop = append([]string(nil), f.DayDrop...)
	f.DayAmountDelta = maps.Clone(f.DayAmountDelta)
	return f
}

// SetFaults replaces the faults in force.
func (s *Sim) SetFaults(f Faults) {
	s.fmu.Lock()
	s.faults = f.clone()
	s.fmu.Unlock()
}

// Faults returns a copy of the faults in force.
func (s *Sim) Faults() Faults {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	return s.faults.clone()
}

// take consumes one use of a counted fault.
func (s *Sim) take(which func(*Faults) *int) bool {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	p := which(&s.faults)
	if *p > 0 {
		*p--
		return true
	}
	return false
}
