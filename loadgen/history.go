package loadgen

import (
	"bufio"
	"encoding/json"
	"io"
	"slices"
	"sort"
	"time"
)

// Step is one step of an outpatient transaction.
type Step uint8

// The steps of a one-code outpatient transaction, in order. StepCode is
// the code minted on the phone (no HTTP); the others are API calls.
const (
	StepCode Step = iota
	StepResolve
	StepVisit
	StepLines
	StepPay
	NumSteps
)

var stepNames = [NumSteps]string{"code", "resolve", "visit", "fee-lines", "pay"}

func (s Step) String() string { return stepNames[s] }

// Type is how a call ended (Jepsen's history model): ok is a definite
// success, fail a definite no-effect, info an unknown outcome (timeout,
// connection refused or reset, a 5xx, a key still marked in flight).
type Type uint8

// Outcome types.
const (
	Ok Type = iota
	Fail
	Info
)

var typeNames = [...]string{"ok", "fail", "info"}

func (t Type) String() string { return typeNames[t] }

// MarshalText writes the type's name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// Op is one call: its invocation (Start) and its completion (End, Type).
// Times are nanoseconds since the run started.
type Op struct {
	Client  int    `json:"client"`
	Tx      int64  `json:"tx"`
	Step    Step   `json:"-"`
	Attempt int    `json:"attempt"`
	Type    Type   `json:"type"`
	Start   int64  `json:"start_ns"`
	End     int64  `json:"end_ns"`
	Status  int    `json:"status,omitempty"` // HTTP status, 0 if none
	Code    string `json:"code,omitempty"`   // error code, or the transport error
	Key     string `json:"key"`              // the idempotency key
	Ref     string `json:"ref,omitempty"`    // mdtrt_id (visit, lines, pay), setl_id of an ok pay
	Channel string `json:"channel,omitempty"`
}

// Tx is one transaction's outcome as its client saw it.
type Tx struct {
	ID       int64
	Client   int
	Psn      string
	Hospital string
	EcToken  string
	MdtrtID  string
	SetlID   string // from the ok pay
	PayOrdID string
	Channel  string // counter | credit (the channel of the ok pay)
	Fallback bool   // credit was refused, then paid at the counter
	Outcome  Type
	FailStep Step   // the step that did not end ok
	Code     string // its error code
	Start    time.Time
	Total    time.Duration
	Steps    [NumSteps]time.Duration
	// PayKeys are the idempotency keys of every pay call and PayInfo
	// whether one of them ended unknown: a settlement may exist even if
	// the transaction is not ok.
	PayKeys  []string
	PayInfo  bool
	PayFails int // definite failures of pay calls (credit refusals included)
	AcctPaid bool
}

// History is every op of a run, per client (appended without locks).
type History struct {
	start   time.Time
	clients [][]Op
}

func newHistory(start time.Time, clients int) *History {
	return &History{start: start, clients: make([][]Op, clients)}
}

// Ops returns every op in invocation order.
func (h *History) Ops() []Op {
	var n int
	for _, c := range h.clients {
		n += len(c)
	}
	out := make([]Op, 0, n)
	for _, c := range h.clients {
		out = append(out, c...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// Counts returns how many ops ended ok, fail and info.
func (h *History) Counts() (ok, fail, info int) {
	for _, c := range h.clients {
		for _, o := range c {
			switch o.Type {
			case Ok:
				ok++
			case Fail:
				fail++
			default:
				info++
			}
		}
	}
	return
}

// WriteJSONL writes the history as JSON lines, two per op: the invoke
// and its completion (ok, fail or info), in time order — the form Jepsen
// tools (elle-cli) read after a small conversion.
func (h *History) WriteJSONL(w io.Writer) error {
	type ev struct {
		Type    string `json:"type"`
		Process int    `json:"process"`
		F       string `json:"f"`
		Time    int64  `json:"time"`
		Op
	}
	ops := h.Ops()
	evs := make([]ev, 0, 2*len(ops))
	for _, o := range ops {
		evs = append(evs, ev{Type: "invoke", Process: o.Client, F: o.Step.String(), Time: o.Start, Op: o})
		evs = append(evs, ev{Type: o.Type.String(), Process: o.Client, F: o.Step.String(), Time: o.End, Op: o})
	}
	slices.SortStableFunc(evs, func(a, b ev) int { return int(a.Time - b.Time) })
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, e := range evs {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// Percentile returns the q-quantile of xs (sorting a copy).
func Percentile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*q)]
}
