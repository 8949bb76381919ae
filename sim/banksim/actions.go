package banksim

import (
	"context"
	"fmt"
	"sort"
	"time"

	"yibao/credit/bankapi"
)

// SentCallback is the record of one event reported to the platform.
type SentCallback struct {
	Callback   bankapi.Callback `json:"callback"`
	Attempts   int              `json:"attempts"`   // until delivered or given up
	Duplicates int              `json:"duplicates"` // extra copies sent (DuplicateCallbacks)
	Delivered  bool             `json:"delivered"`
	Error      string           `json:"error,omitempty"`
}

// State is a snapshot of the simulated bank.
type State struct {
	BankCode     string                   `json:"bank_code"`
	Applications []bankapi.Decision       `json:"applications"`
	Agreements   []bankapi.AgreementState `json:"agreements"` // by bank_agreement_id
	Draws        []bankapi.DrawNotice     `json:"draws"`
	Repayments   []bankapi.Repayment      `json:"repayments"` // the platform's and the bank's own (channel counter)
	Reports      []bankapi.StatusReport   `json:"reports"`
	Days         []bankapi.DayFile        `json:"days"` // settlement files received
	Callbacks    []SentCallback           `json:"callbacks"`
	Faults       Faults                   `json:"faults"`
}

// State returns a snapshot of everything the bank holds.
func (s *Sim) State() State {
	f := s.Faults()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{BankCode: s.o.BankCode, Faults: f,
		Applications: []bankapi.Decision{}, Agreements: []bankapi.AgreementState{},
		Draws: append([]bankapi.DrawNotice{}, s.draws...), Repayments: []bankapi.Repayment{},
		Reports: append([]bankapi.StatusReport{}, s.reports...), Days: append([]bankapi.DayFile{}, s.days...),
		Callbacks: append([]SentCallback{}, s.callbacks...)}
	for _, id := range s.appOrder {
		st.Applications = append(st.Applications, s.apps[id].dec)
	}
	for _, ag := range s.agreements {
		st.Agreements = append(st.Agreements, ag.AgreementState)
	}
	sort.Slice(st.Agreements, func(i, j int) bool { return st.Agreements[i].BankAgreementID < st.Agreements[j].BankAgreementID })
	for _, p := range s.repays {
		st.Repayments = append(st.Repayments, p.Repayment)
	}
	return st
}

// Agreement returns the bank's view of the live (latest) agreement with
// the platform's agreement number.
func (s *Sim) Agreement(agreementNo string) (bankapi.AgreementState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ag := s.agreements[s.byNo[agreementNo]]
	if ag == nil {
		return bankapi.AgreementState{}, false
	}
	return ag.AgreementState, true
}

// change applies fn to the agreement under s.mu and returns the callback
// to send.
func (s *Sim) change(agreementNo string, fn func(ag *agreement) (bankapi.Callback, error)) (bankapi.Callback, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ag := s.agreements[s.byNo[agreementNo]]
	if ag == nil {
		return bankapi.Callback{}, fmt.Errorf("%w: %s", ErrUnknownAgreement, agreementNo)
	}
	cb, err := fn(ag)
	if err == nil {
		s.saveLocked()
	}
	cb.AgreementNo, cb.BankAgreementID, cb.At = ag.AgreementNo, ag.BankAgreementID, time.Now().UTC()
	if cb.EventID == "" {
		cb.EventID = newID("BKE")
	}
	return cb, err
}

// RepayAtCounter records a repayment the person made at the bank's own
// counter and reports it to the platform with a signed repayment callback
// (retried a few times). The repayment is booked even when the callback
// cannot be delivered; the delivery error (wrapping ErrNotDelivered) is
// returned with it.
func (s *Sim) RepayAtCounter(ctx context.Context, agreementNo string, amountFen int64) (*bankapi.Repayment, error) {
	if amountFen <= 0 {
		return nil, fmt.Errorf("banksim: a repayment must be positive, not %d fen", amountFen)
	}
	var rp bankapi.Repayment
	cb, err := s.change(agreementNo, func(ag *agreement) (bankapi.Callback, error) {
		rp = bankapi.Repayment{RepayID: newID("BKR"), AgreementNo: ag.AgreementNo, BankAgreementID: ag.BankAgreementID,
			Channel: bankapi.ChannelCounter, AmountFen: amountFen, PaidAt: time.Now().UTC()}
		ag.OutstandingFen -= amountFen
		s.repayIdx[rp.RepayID] = len(s.repays)
		s.repays = append(s.repays, repayment{Repayment: rp})
		return bankapi.Callback{Type: bankapi.CallbackRepayment, EventID: rp.RepayID, Repayment: &rp}, nil
	})
	if err != nil {
		return nil, err
	}
	return &rp, s.send(ctx, cb)
}

// ChangeLimit sets an agreement's credit limit and reports it.
func (s *Sim) ChangeLimit(ctx context.Context, agreementNo string, newLimitFen int64) error {
	if newLimitFen < 0 {
		return fmt.Errorf("banksim: a limit cannot be negative")
	}
	cb, err := s.change(agreementNo, func(ag *agreement) (bankapi.Callback, error) {
		if ag.Status == bankapi.StatusClosed {
			return bankapi.Callback{}, ErrAgreementClosed
		}
		ag.LimitFen = newLimitFen
		return bankapi.Callback{Type: bankapi.CallbackLimitChanged, LimitFen: newLimitFen}, nil
	})
	if err != nil {
		return err
	}
	return s.send(ctx, cb)
}

// Suspend suspends an agreement (no more draws) and reports it.
func (s *Sim) Suspend(ctx context.Context, agreementNo, reason string) error {
	return s.setStatus(ctx, agreementNo, bankapi.StatusSuspended, bankapi.CallbackSuspended, reason)
}

// Reinstate makes a suspended agreement active again and reports it.
func (s *Sim) Reinstate(ctx context.Context, agreementNo string) error {
	return s.setStatus(ctx, agreementNo, bankapi.StatusActive, bankapi.CallbackReinstated, "")
}

// CloseAgreement closes an agreement for good and reports it.
func (s *Sim) CloseAgreement(ctx context.Context, agreementNo, reason string) error {
	return s.setStatus(ctx, agreementNo, bankapi.StatusClosed, bankapi.CallbackClosed, reason)
}

func (s *Sim) setStatus(ctx context.Context, agreementNo, status, event, reason string) error {
	cb, err := s.change(agreementNo, func(ag *agreement) (bankapi.Callback, error) {
		if ag.Status == bankapi.StatusClosed {
			return bankapi.Callback{}, ErrAgreementClosed
		}
		ag.Status = status
		return bankapi.Callback{Type: event, Reason: reason}, nil
	})
	if err != nil {
		return err
	}
	return s.send(ctx, cb)
}

// send delivers cb to the platform, retrying with a short backoff, then
// sends the duplicates the faults ask for, and records the outcome. Its
// errors wrap ErrNotDelivered.
func (s *Sim) send(ctx context.Context, cb bankapi.Callback) error {
	rec := SentCallback{Callback: cb}
	var err error
	s.mu.Lock()
	url := s.o.CallbackURL
	s.mu.Unlock()
	if url == "" {
		err = fmt.Errorf("%w: callback %s %s: %w", ErrNotDelivered, cb.Type, cb.EventID, ErrNoCallbackURL)
	} else {
		for i := 0; ; i++ {
			rec.Attempts++
			err = bankapi.SendCallback(ctx, s.client, url, cb, s.o.BankKeyID, s.o.Key)
			if err == nil || i == len(retryBackoff) {
				break
			}
			select {
			case <-time.After(retryBackoff[i]):
				continue
			case <-ctx.Done():
				err = fmt.Errorf("%w (after: %v)", ctx.Err(), err)
			case <-s.done:
			}
			break
		}
		if err == nil {
			rec.Delivered = true
			for range s.Faults().DuplicateCallbacks {
				if bankapi.SendCallback(ctx, s.client, url, cb, s.o.BankKeyID, s.o.Key) == nil {
					rec.Duplicates++
				}
			}
		} else {
			err = fmt.Errorf("%w: callback %s %s, %d attempts: %w", ErrNotDelivered, cb.Type, cb.EventID, rec.Attempts, err)
		}
	}
	if err != nil {
		rec.Error = err.Error()
	}
	s.mu.Lock()
	s.callbacks = append(s.callbacks, rec)
	s.mu.Unlock()
	return err
}
