package banksim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"yibao/credit/bankapi"
	"yibao/gmcrypto"
)

// reply is what an API handler answers; api encodes and signs it.
type reply struct {
	status int
	body   any
	hang   bool // the answer never comes
}

func ok(v any) reply { return reply{status: http.StatusOK, body: v} }

func fail(status int, code, format string, args ...any) reply {
	return reply{status: status, body: &bankapi.Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}}
}

func invalid(format string, args ...any) reply {
	return fail(http.StatusBadRequest, bankapi.CodeInvalidRequest, format, args...)
}

func (s *Sim) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /credit/applications", s.api(s.apply))
	m.HandleFunc("GET /credit/applications/{apply_id}", s.api(s.application))
	m.HandleFunc("POST /credit/draws", s.api(s.draw))
	m.HandleFunc("POST /credit/repayments", s.api(s.repaid))
	m.HandleFunc("POST /credit/status", s.api(s.status))
	m.HandleFunc("GET /credit/agreements/{id}", s.api(s.agreementState))
	m.HandleFunc("POST /credit/settlement-files", s.api(s.settlementFile))
	m.HandleFunc("GET /{$}", s.about)
	m.HandleFunc("GET /sim/state", s.admin(s.getState))
	m.HandleFunc("GET /sim/faults", s.admin(s.getFaults))
	m.HandleFunc("POST /sim/faults", s.admin(s.setFaults))
	m.HandleFunc("POST /sim/scores/{psn_ref}", s.admin(s.setScore))
	m.HandleFunc("POST /sim/agreements/{agreement_no}/{action}", s.admin(s.action))
	m.HandleFunc("/credit/", s.api(func(*http.Request, []byte) reply {
		return fail(http.StatusNotFound, bankapi.CodeNotFound, "no such endpoint")
	}))
	s.mux = m
}

// api wraps an API handler: it reads the body, verifies the request's
// signature, and encodes and signs the answer.
func (s *Sim) api(h func(r *http.Request, body []byte) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, bankapi.MaxBody+1))
		var rep reply
		switch {
		case err != nil || len(body) > bankapi.MaxBody:
			rep = invalid("cannot read the request body")
		default:
			if err := bankapi.VerifyRequest(r, body, s.o.PlatformKeyID, s.o.PlatformKey, time.Now(), &s.nonces); err != nil {
				e := bankapi.Refusal(err)
				rep = reply{status: e.Status, body: e}
			} else {
				rep = h(r, body)
			}
		}
		if rep.hang {
			select {
			case <-r.Context().Done():
			case <-s.done:
			case <-time.After(2 * time.Minute):
			}
			panic(http.ErrAbortHandler) // drop the connection: no answer at all
		}
		bankapi.WriteJSON(w, r, rep.status, rep.body, s.o.BankKeyID, s.o.Key)
	}
}

func decode(body []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the JSON object")
	}
	return nil
}

// same reports whether two messages are equal as JSON.
func same(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func validDate(d string) bool {
	_, err := time.Parse(time.DateOnly, d)
	return err == nil
}

// apply: POST /credit/applications.
func (s *Sim) apply(_ *http.Request, body []byte) reply {
	var a bankapi.ApplyRequest
	if err := decode(body, &a); err != nil {
		return invalid("the body must be an ApplyRequest: %v", err)
	}
	a.ConsentAt = a.ConsentAt.UTC()
	switch {
	case a.ApplyID == "" || a.AgreementNo == "" || a.PsnRef == "":
		return invalid("apply_id, agreement_no and psn_ref are required")
	case a.BankCode != "" && a.BankCode != s.o.BankCode:
		return invalid("this is bank %s, not %s", s.o.BankCode, a.BankCode)
	case a.Scene != bankapi.SceneOutpatient && a.Scene != bankapi.SceneInpatient && a.Scene != bankapi.SceneAll:
		return invalid("scene must be outpatient, inpatient or all")
	case a.RequestedLimitFen < 0:
		return invalid("requested_limit_fen must not be negative")
	case a.ConsentVersion == "" || a.ConsentAt.IsZero():
		return invalid("the person's consent (consent_version, consent_at) is required")
	}
	f := s.Faults()
	s.mu.Lock()
	if prev := s.apps[a.ApplyID]; prev != nil {
		s.mu.Unlock()
		if !same(prev.req, a) {
			return fail(http.StatusConflict, bankapi.CodeDuplicateApplyID, "application %s was made with another body", a.ApplyID)
		}
		return ok(prev.dec)
	}
	score := s.scoreLocked(a.PsnRef)
	d := bankapi.Decision{ApplyID: a.ApplyID, Status: bankapi.DecisionDeclined, Score: score, DecidedAt: time.Now().UTC()}
	existing := s.agreements[s.byNo[a.AgreementNo]]
	switch {
	case f.DeclineAll:
		d.Reason = "declined_by_bank"
	case score < 600:
		d.Reason = "score_below_threshold"
	case existing != nil && existing.Status == bankapi.StatusSuspended:
		d.Reason = "agreement_suspended"
	case existing != nil && existing.Status != bankapi.StatusClosed:
		// One live agreement per agreement number: a second application
		// is answered with it, unchanged.
		d.Status, d.BankAgreementID, d.LimitFen, d.InterestFreeDays = bankapi.DecisionApproved, existing.BankAgreementID, existing.LimitFen, s.o.InterestFreeDays
	default:
		limit := BandLimit(score)
		if a.RequestedLimitFen > 0 && a.RequestedLimitFen < limit {
			limit = a.RequestedLimitFen
		}
		id := s.agreementID(a.ApplyID)
		s.agreements[id] = &agreement{AgreementState: bankapi.AgreementState{BankAgreementID: id, AgreementNo: a.AgreementNo,
			Status: bankapi.StatusActive, LimitFen: limit}, PsnRef: a.PsnRef, ApplyID: a.ApplyID}
		s.byNo[a.AgreementNo] = id
		d.Status, d.BankAgreementID, d.LimitFen, d.InterestFreeDays = bankapi.DecisionApproved, id, limit, s.o.InterestFreeDays
	}
	s.apps[a.ApplyID] = &application{req: a, dec: d}
	s.appOrder = append(s.appOrder, a.ApplyID)
	s.saveLocked()
	s.mu.Unlock()
	rep := ok(d)
	rep.hang = s.take(func(f *Faults) *int { return &f.TimeoutAfterApproveNext })
	return rep
}

// application: GET /credit/applications/{apply_id}.
func (s *Sim) application(r *http.Request, _ []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.apps[r.PathValue("apply_id")]
	if a == nil {
		return fail(http.StatusNotFound, bankapi.CodeNotFound, "no application %s", r.PathValue("apply_id"))
	}
	return ok(a.dec)
}

// namedAgreement finds the agreement a notice names by both its ids, or
// nil. Callers hold s.mu.
func (s *Sim) namedAgreement(bankAgreementID, agreementNo string) *agreement {
	ag := s.agreements[bankAgreementID]
	if ag == nil || ag.AgreementNo != agreementNo {
		return nil
	}
	return ag
}

// draw: POST /credit/draws.
func (s *Sim) draw(_ *http.Request, body []byte) reply {
	var d bankapi.DrawNotice
	if err := decode(body, &d); err != nil {
		return invalid("the body must be a DrawNotice: %v", err)
	}
	d.At = d.At.UTC()
	switch {
	case d.DrawID == "" || d.AgreementNo == "" || d.BankAgreementID == "" || d.FixmedinsCode == "":
		return invalid("draw_id, agreement_no, bank_agreement_id and fixmedins_code are required")
	case d.AmountFen <= 0:
		return invalid("amount_fen must be positive")
	case d.At.IsZero():
		return invalid("at is required")
	case d.DueDate != "" && !validDate(d.DueDate):
		return invalid("due_date must be YYYY-MM-DD")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, seen := s.drawIdx[d.DrawID]; seen {
		if !same(s.draws[i], d) {
			return fail(http.StatusConflict, bankapi.CodeDuplicateDrawID, "draw %s was notified with another body", d.DrawID)
		}
		return ok(bankapi.Accepted{DrawID: d.DrawID, Status: "accepted"})
	}
	ag := s.namedAgreement(d.BankAgreementID, d.AgreementNo)
	if ag == nil || ag.Status != bankapi.StatusActive {
		return fail(http.StatusUnprocessableEntity, bankapi.CodeAgreementNotActive, "agreement %s/%s is not active at this bank", d.AgreementNo, d.BankAgreementID)
	}
	if ag.OutstandingFen+d.AmountFen > ag.LimitFen {
		return fail(http.StatusUnprocessableEntity, bankapi.CodeLimitExceeded, "%d fen outstanding plus %d exceeds the limit of %d", ag.OutstandingFen, d.AmountFen, ag.LimitFen)
	}
	ag.OutstandingFen += d.AmountFen
	s.drawIdx[d.DrawID] = len(s.draws)
	s.draws = append(s.draws, d)
	if s.firstHospital == "" {
		s.firstHospital = d.FixmedinsCode
	}
	s.saveLocked()
	return ok(bankapi.Accepted{DrawID: d.DrawID, Status: "accepted"})
}

// repaid: POST /credit/repayments (collected by the platform).
func (s *Sim) repaid(_ *http.Request, body []byte) reply {
	var p bankapi.Repayment
	if err := decode(body, &p); err != nil {
		return invalid("the body must be a Repayment: %v", err)
	}
	p.PaidAt = p.PaidAt.UTC()
	switch {
	case p.RepayID == "" || p.AgreementNo == "" || p.BankAgreementID == "":
		return invalid("repay_id, agreement_no and bank_agreement_id are required")
	case !slices.Contains([]string{bankapi.ChannelWechat, bankapi.ChannelAlipay, bankapi.ChannelCounter, bankapi.ChannelBankApp}, p.Channel):
		return invalid("channel must be wechat, alipay, counter or bank_app")
	case p.AmountFen <= 0:
		return invalid("amount_fen must be positive")
	case p.PaidAt.IsZero():
		return invalid("paid_at is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, seen := s.repayIdx[p.RepayID]; seen {
		if !s.repays[i].platform || !same(s.repays[i].Repayment, p) {
			return fail(http.StatusConflict, bankapi.CodeDuplicateRepayID, "repayment %s was notified with another body", p.RepayID)
		}
		return ok(bankapi.Accepted{RepayID: p.RepayID, Status: "accepted"})
	}
	ag := s.namedAgreement(p.BankAgreementID, p.AgreementNo)
	if ag == nil {
		return fail(http.StatusNotFound, bankapi.CodeNotFound, "no agreement %s/%s at this bank", p.AgreementNo, p.BankAgreementID)
	}
	// Recorded even beyond the outstanding amount: the platform detects
	// an overpayment, the bank just books it.
	ag.OutstandingFen -= p.AmountFen
	s.repayIdx[p.RepayID] = len(s.repays)
	s.repays = append(s.repays, repayment{Repayment: p, platform: true})
	s.saveLocked()
	return ok(bankapi.Accepted{RepayID: p.RepayID, Status: "accepted"})
}

// status: POST /credit/status.
func (s *Sim) status(_ *http.Request, body []byte) reply {
	var st bankapi.StatusReport
	if err := decode(body, &st); err != nil {
		return invalid("the body must be a StatusReport: %v", err)
	}
	st.At = st.At.UTC()
	if !slices.Contains([]string{bankapi.StatusActive, bankapi.StatusOverdue, bankapi.StatusSuspended, bankapi.StatusClosed}, st.Status) {
		return invalid("status must be active, overdue, suspended or closed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.namedAgreement(st.BankAgreementID, st.AgreementNo) == nil {
		return fail(http.StatusNotFound, bankapi.CodeNotFound, "no agreement %s/%s at this bank", st.AgreementNo, st.BankAgreementID)
	}
	s.reports = append(s.reports, st)
	s.saveLocked()
	return ok(bankapi.Accepted{Status: "recorded"})
}

// agreementState: GET /credit/agreements/{bank_agreement_id}.
func (s *Sim) agreementState(r *http.Request, _ []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	ag := s.agreements[r.PathValue("id")]
	if ag == nil {
		return fail(http.StatusNotFound, bankapi.CodeNotFound, "no agreement %s", r.PathValue("id"))
	}
	return ok(ag.AgreementState)
}

// settlementFile: POST /credit/settlement-files. The bank answers with
// its own records of the day, whatever the platform's file says.
func (s *Sim) settlementFile(_ *http.Request, body []byte) reply {
	var f bankapi.DayFile
	if err := decode(body, &f); err != nil {
		return invalid("the body must be a DayFile: %v", err)
	}
	switch {
	case !validDate(f.Date):
		return invalid("date must be YYYY-MM-DD")
	case f.BankCode != "" && f.BankCode != s.o.BankCode:
		return invalid("this is bank %s, not %s", s.o.BankCode, f.BankCode)
	}
	faults := s.Faults()
	s.mu.Lock()
	s.days = append(s.days, f)
	s.saveLocked()
	rows := []bankapi.DayRow{}
	for _, d := range s.draws {
		if d.At.In(chinaTime).Format(time.DateOnly) == f.Date {
			rows = append(rows, bankapi.DayRow{Kind: bankapi.RowDraw, ID: d.DrawID, AgreementNo: d.AgreementNo, FixmedinsCode: d.FixmedinsCode, AmountFen: d.AmountFen})
		}
	}
	for _, p := range s.repays {
		if p.platform && p.PaidAt.In(chinaTime).Format(time.DateOnly) == f.Date {
			rows = append(rows, bankapi.DayRow{Kind: bankapi.RowRepayment, ID: p.RepayID, AgreementNo: p.AgreementNo, AmountFen: p.AmountFen})
		}
	}
	extraHospital := s.firstHospital
	s.mu.Unlock()
	return ok(s.dayReply(f.Date, rows, faults, extraHospital))
}

// dayReply applies the faults to the bank's rows and adds up payouts and
// the net.
func (s *Sim) dayReply(date string, rows []bankapi.DayRow, f Faults, extraHospital string) bankapi.DayReply {
	rows = slices.DeleteFunc(rows, func(r bankapi.DayRow) bool { return slices.Contains(f.DayDrop, r.ID) })
	for i := range rows {
		rows[i].AmountFen += f.DayAmountDelta[rows[i].ID]
	}
	if extraHospital == "" {
		extraHospital = "H00000000000"
	}
	for n := 1; n <= f.DayExtra; n++ {
		rows = append(rows, bankapi.DayRow{Kind: bankapi.RowDraw, ID: fmt.Sprintf("EXTRA-%d", n), FixmedinsCode: extraHospital, AmountFen: 1234})
	}
	rep := bankapi.DayReply{Date: date, Rows: rows, Payouts: []bankapi.Payout{}}
	perHospital := map[string]int64{}
	for _, r := range rows {
		switch r.Kind {
		case bankapi.RowDraw:
			rep.NetFen += r.AmountFen
			perHospital[r.FixmedinsCode] += r.AmountFen
		case bankapi.RowRepayment:
			rep.NetFen -= r.AmountFen
		}
	}
	codes := make([]string, 0, len(perHospital))
	for c := range perHospital {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	for _, c := range codes {
		if perHospital[c] == 0 {
			continue
		}
		rep.Payouts = append(rep.Payouts, bankapi.Payout{PayoutID: s.payoutID(date, c), FixmedinsCode: c, AmountFen: perHospital[c]})
	}
	return rep
}

// payoutID is deterministic per bank, date and hospital, so a resubmitted
// day gets the same payout ids.
func (s *Sim) payoutID(date, fixmedinsCode string) string {
	h := gmcrypto.SM3([]byte(s.o.BankCode + "|" + date + "|" + fixmedinsCode))
	return "PO" + strings.ReplaceAll(date, "-", "") + strings.ToUpper(fmt.Sprintf("%x", h[:6]))
}
