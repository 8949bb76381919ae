// Package sim holds what the wallet simulators share: the faults a test or
// the demo can inject. The simulators (sim/wechatsim, sim/alipaysim) are
// stand-ins for the providers' servers, which this project cannot reach;
// they implement the server side of each documented, signed protocol so
// that the real adapters run against them unchanged. They are named as
// simulators everywhere they appear.
package sim

import "sync"

// Faults are injected misbehaviours. The zero value is a well-behaved
// wallet. Counters (the ...Next fields) apply to that many next
// operations and then wear off.
type Faults struct {
	// TimeoutNext: the next n charges/refunds are carried out, but the
	// answer never comes (the handler waits until the client gives up).
	TimeoutNext int `json:"timeout_next,omitempty"`
	// DeclineNext: the next n charges are refused with DeclineCode.
	DeclineNext int    `json:"decline_next,omitempty"`
	DeclineCode string `json:"decline_code,omitempty"`
	// PayingNext: the next n charges answer USERPAYING and succeed
	// only when queried afterwards.
	PayingNext int `json:"paying_next,omitempty"`
	// NotifyDuplicates: every callback is sent this many extra times.
	NotifyDuplicates int `json:"notify_duplicates,omitempty"`
	// NotifyWrongAmount: callbacks report the amount plus one fen.
	NotifyWrongAmount bool `json:"notify_wrong_amount,omitempty"`
	// NotifyEarly: the callback is sent before the charge is answered.
	NotifyEarly bool `json:"notify_early,omitempty"`
	// NotifyDrop: no callbacks are sent at all.
	NotifyDrop bool `json:"notify_drop,omitempty"`
	// BillDrop: these order numbers are left out of bill files.
	BillDrop []string `json:"bill_drop,omitempty"`
	// BillExtra: this many made-up payment rows are added to bill files.
	BillExtra int `json:"bill_extra,omitempty"`
	// BillAmountDelta: these order numbers appear in bill files with the
	// amount changed by the given fen.
	BillAmountDelta map[string]int64 `json:"bill_amount_delta,omitempty"`
}

// FaultBox holds a simulator's current faults, safe for concurrent use.
type FaultBox struct {
	mu sync.Mutex
	f  Faults
}

// Set replaces the faults.
func (b *FaultBox) Set(f Faults) {
	b.mu.Lock()
	b.f = f
	b.mu.Unlock()
}

// Get returns a copy of the faults.
func (b *FaultBox) Get() Faults {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.f
}

// Take consumes one use of a counted fault: which is a pointer into the
// box's Faults chosen by the caller, e.g. func(f *Faults) *int { return &f.TimeoutNext }.
func (b *FaultBox) Take(which func(*Faults) *int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := which(&b.f)
	if *p > 0 {
		*p--
		return true
	}
	return false
}
