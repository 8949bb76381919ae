package banksim

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"yibao/credit/bankapi"
)

// ErrBadStateFile: Options.StateFile exists but cannot be used (not JSON,
// another version or bank, inconsistent).
var ErrBadStateFile = errors.New("banksim: unusable state file")

// stateVersion is the version of the state file's format.
const stateVersion = 1

// savedState is the state file: everything the bank holds except the
// faults, the replay cache and the log of callbacks sent.
type savedState struct {
	Version       int                    `json:"version"`
	BankCode      string                 `json:"bank_code"`
	Scores        map[string]int         `json:"scores"`
	Applications  []savedApplication     `json:"applications"` // in the order received
	Agreements    []savedAgreement       `json:"agreements"`
	ByNo          map[string]string      `json:"by_agreement_no"` // agreement_no → latest bank_agreement_id
	Draws         []bankapi.DrawNotice   `json:"draws"`
	Repayments    []savedRepayment       `json:"repayments"`
	Reports       []bankapi.StatusReport `json:"reports"`
	Days          []bankapi.DayFile      `json:"days"`
	FirstHospital string                 `json:"first_hospital,omitempty"`
}

type savedApplication struct {
	Request  bankapi.ApplyRequest `json:"request"`
	Decision bankapi.Decision     `json:"decision"`
}

type savedAgreement struct {
	State   bankapi.AgreementState `json:"state"`
	PsnRef  string                 `json:"psn_ref"`
	ApplyID string                 `json:"apply_id"`
}

type savedRepayment struct {
	Repayment bankapi.Repayment `json:"repayment"`
	Platform  bool              `json:"platform"` // reported by the platform, not the bank's own
}

// NewWithState is New, but an unusable Options.StateFile is an error
// (wrapping ErrBadStateFile) rather than a logged warning. A missing file
// is not an error: the bank starts empty and creates it at its first
// change.
func NewWithState(o Options) (*Sim, error) {
	s := newSim(o)
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load restores the state from s.o.StateFile, if set and present. On
// error s is left empty.
func (s *Sim) load() error {
	path := s.o.StateFile
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("banksim: reading the state file: %w", err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s (move it away to start an empty bank)", ErrBadStateFile, path, fmt.Sprintf(format, args...))
	}
	var st savedState
	if err := decode(b, &st); err != nil {
		return bad("not a state file: %v", err)
	}
	switch {
	case st.Version != stateVersion:
		return bad("version %d, want %d", st.Version, stateVersion)
	case st.BankCode != s.o.BankCode:
		return bad("it is bank %q's, this is bank %q", st.BankCode, s.o.BankCode)
	}
	scores := map[string]int{}
	for ref, sc := range st.Scores {
		scores[ref] = sc
	}
	apps := map[string]*application{}
	var order []string
	for _, a := range st.Applications {
		id := a.Request.ApplyID
		if id == "" || a.Decision.ApplyID != id || apps[id] != nil {
			return bad("application %q is missing, mismatched or repeated", id)
		}
		apps[id] = &application{req: a.Request, dec: a.Decision}
		order = append(order, id)
	}
	agreements := map[string]*agreement{}
	for _, a := range st.Agreements {
		id := a.State.BankAgreementID
		if id == "" || a.State.AgreementNo == "" || agreements[id] != nil {
			return bad("agreement %q is missing an id or repeated", id)
		}
		agreements[id] = &agreement{AgreementState: a.State, PsnRef: a.PsnRef, ApplyID: a.ApplyID}
	}
	byNo := map[string]string{}
	for no, id := range st.ByNo {
		if ag := agreements[id]; ag == nil || ag.AgreementNo != no {
			return bad("agreement number %q names agreement %q, which is not its", no, id)
		}
		byNo[no] = id
	}
	drawIdx := map[string]int{}
	for i, d := range st.Draws {
		if _, dup := drawIdx[d.DrawID]; d.DrawID == "" || dup {
			return bad("draw %q is missing an id or repeated", d.DrawID)
		}
		drawIdx[d.DrawID] = i
	}
	repays := make([]repayment, 0, len(st.Repayments))
	repayIdx := map[string]int{}
	for i, p := range st.Repayments {
		if _, dup := repayIdx[p.Repayment.RepayID]; p.Repayment.RepayID == "" || dup {
			return bad("repayment %q is missing an id or repeated", p.Repayment.RepayID)
		}
		repayIdx[p.Repayment.RepayID] = i
		repays = append(repays, repayment{Repayment: p.Repayment, platform: p.Platform})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.scores, s.apps, s.appOrder, s.agreements, s.byNo = scores, apps, order, agreements, byNo
	s.draws, s.drawIdx, s.repays, s.repayIdx = st.Draws, drawIdx, repays, repayIdx
	s.reports, s.days, s.firstHospital = st.Reports, st.Days, st.FirstHospital
	return nil
}

// savedLocked is the state to save. Callers hold s.mu.
func (s *Sim) savedLocked() savedState {
	st := savedState{Version: stateVersion, BankCode: s.o.BankCode, Scores: s.scores, ByNo: s.byNo,
		Applications: make([]savedApplication, 0, len(s.appOrder)), Agreements: make([]savedAgreement, 0, len(s.agreements)),
		Draws: s.draws, Repayments: make([]savedRepayment, 0, len(s.repays)), Reports: s.reports, Days: s.days,
		FirstHospital: s.firstHospital}
	for _, id := range s.appOrder {
		st.Applications = append(st.Applications, savedApplication{Request: s.apps[id].req, Decision: s.apps[id].dec})
	}
	for _, ag := range s.agreements {
		st.Agreements = append(st.Agreements, savedAgreement{State: ag.AgreementState, PsnRef: ag.PsnRef, ApplyID: ag.ApplyID})
	}
	for _, p := range s.repays {
		st.Repayments = append(st.Repayments, savedRepayment{Repayment: p.Repayment, Platform: p.platform})
	}
	return st
}

// saveLocked writes the state to s.o.StateFile, if set, after a change.
// A failure is logged: the change stands in memory. Callers hold s.mu,
// which keeps the writes in order.
func (s *Sim) saveLocked() {
	if s.o.StateFile == "" {
		return
	}
	if err := writeState(s.o.StateFile, s.savedLocked()); err != nil {
		log.Printf("banksim: saving the state: %v", err)
	}
}

// writeState replaces path with st atomically: a temporary file (mode
// 0600) in the same folder, synced, then renamed over path.
func writeState(path string, st savedState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
