package credit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"yibao"
	"yibao/credit/bankapi"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
)

// ConsentVersion is the version of the consent text an application must
// accept; a new text is a new version.
const ConsentVersion = "credit-consent-2026-12"

// ConsentText is what the patient reads and accepts before applying, in
// Chinese and English. Amounts and days are filled in per bank.
func ConsentText(bankName string, interestFreeDays int) map[string]string {
	return map[string]string{
		"version": ConsentVersion,
		"zh": fmt.Sprintf(`信用就医授权书（%[1]s）
1. 额度：%[1]s根据信用评估给出授信额度（通常 500–5,000 元），只用于支付医保结算后的个人自付部分；可能不批准。
2. 免息期：每次信用支付形成一张账单，自结算日起 %[2]d 天内免息，账单写明明细和到期日。
3. 还款：可在本应用通过已签约的钱包还款，也可到银行柜台或银行 App 还款；亲属可代为还款；还款后额度恢复。
4. 逾期：到期前一天和到期当天提醒；逾期后信用就医立即暂停、额度降为零，由银行按合同收取罚息并可报送征信。
5. 数据：平台只向银行提供您的匿名编号和信用支付金额、医院、日期，不提供病情和药品明细。
6. 您可随时在本应用关闭信用就医（需先还清欠款）。`, bankName, interestFreeDays),
		"en": fmt.Sprintf(`Credit payment consent (%[1]s)
1. Limit: %[1]s sets a credit limit from its credit assessment (usually ¥500–¥5,000), used only for the out-of-pocket part left after insurance; it may decline.
2. Interest-free period: every payment on credit becomes a statement, interest-free for %[2]d days from the settlement day; the statement lists the items and the due date.
3. Repayment: in this app through your signed wallet, or at the bank's counter or app; relatives may repay for you; repaying restores the limit.
4. Overdue: a reminder the day before and on the due date; once overdue, credit payment is suspended at once and the limit set to zero; the bank may charge penalty interest under its contract and report to the credit bureau.
5. Data: the bank receives only an anonymous reference for you and each payment's amount, hospital and date, never diagnoses or drug details.
6. You can close credit payment in this app at any time, once nothing is owed.`, bankName, interestFreeDays),
	}
}

// Agreement is a person's credit agreement with a bank.
type Agreement struct {
	AgreementNo      string     `json:"agreement_no"`
	PsnNo            string     `json:"psn_no"`
	BankCode         string     `json:"bank_code"`
	BankName         string     `json:"bank_name,omitempty"`
	BankAgreementID  string     `json:"bank_agreement_id,omitempty"`
	Status           string     `json:"status"`
	Scene            string     `json:"scene"`
	Limit            money.Fen  `json:"limit"`
	Requested        money.Fen  `json:"requested,omitempty"`
	Outstanding      money.Fen  `json:"outstanding"`
	Held             money.Fen  `json:"held"`      // pending holds: payments in flight and inpatient guarantees
	Available        money.Fen  `json:"available"` // what a new payment may use now
	InterestFreeDays int        `json:"interest_free_days"`
	ConsentVersion   string     `json:"consent_version"`
	ConsentAt        time.Time  `json:"consent_at"`
	Reason           string     `json:"reason,omitempty"`
	OverdueSince     *time.Time `json:"overdue_since,omitempty"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`

	applyID string
	version int64
}

const agreementCols = `agreement_no, psn_no, bank_code, bank_agreement_id, apply_id, status, scene, limit_fen, requested_fen, outstanding,
	interest_free_days, consent_version, consent_at, reason, overdue_since, version, created_at, updated_at`

func scanAgreement(sc interface{ Scan(...any) error }) (*Agreement, error) {
	var a Agreement
	var consent, overdue, c, u int64
	if err := sc.Scan(&a.AgreementNo, &a.PsnNo, &a.BankCode, &a.BankAgreementID, &a.applyID, &a.Status, &a.Scene, &a.Limit, &a.Requested,
		&a.Outstanding, &a.InterestFreeDays, &a.ConsentVersion, &consent, &a.Reason, &overdue, &a.version, &c, &u); err != nil {
		return nil, err
	}
	a.ConsentAt, a.CreatedAt, a.UpdatedAt = fromMicros(consent), fromMicros(c), fromMicros(u)
	if overdue != 0 {
		t := fromMicros(overdue)
		a.OverdueSince = &t
	}
	return &a, nil
}

func (s *Service) loadAgreement(ctx context.Context, q querier, no string) (*Agreement, error) {
	a, err := scanAgreement(q.QueryRow(ctx, `SELECT `+agreementCols+` FROM credit_agreements WHERE agreement_no = ?`, no))
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "credit agreement %s not found", no)
	}
	return a, err
}

// withLine fills the ledger figures of an agreement.
func (s *Service) withLine(ctx context.Context, a *Agreement) *Agreement {
	if acc, err := s.led.Account(ctx, line(a.AgreementNo).ID); err == nil {
		a.Held, a.Available = acc.DebitsPending, acc.Available()
	}
	if a.Status != StatusActive {
		a.Available = 0
	}
	if b, err := s.BankByCode(ctx, a.BankCode); err == nil {
		a.BankName = b.Name
	}
	return a
}

// Agreements lists a person's agreements, newest first.
func (s *Service) Agreements(ctx context.Context, psnNo string) ([]Agreement, error) {
	return s.agreements(ctx, `WHERE psn_no = ? ORDER BY created_at DESC`, psnNo)
}

func (s *Service) agreements(ctx context.Context, where string, args ...any) ([]Agreement, error) {
	rows, err := s.db.Query(ctx, `SELECT `+agreementCols+` FROM credit_agreements `+where, args...)
	if err != nil {
		return nil, err
	}
	var list []*Agreement
	for rows.Next() {
		a, err := scanAgreement(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		list = append(list, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	out := []Agreement{}
	for _, a := range list {
		out = append(out, *s.withLine(ctx, a))
	}
	return out, nil
}

// Agreement returns one of a person's agreements.
func (s *Service) Agreement(ctx context.Context, psnNo, no string) (*Agreement, error) {
	a, err := s.loadAgreement(ctx, s.db, no)
	if err != nil {
		return nil, err
	}
	if a.PsnNo != psnNo {
		return nil, yibao.Errorf(yibao.CodeNotFound, "credit agreement %s not found", no)
	}
	return s.withLine(ctx, a), nil
}

// AgreementByNo returns an agreement for the platform's own use.
func (s *Service) AgreementByNo(ctx context.Context, no string) (*Agreement, error) {
	return s.loadAgreement(ctx, s.db, no)
}

// ActiveAgreement is the person's usable agreement for a scene.
func (s *Service) ActiveAgreement(ctx context.Context, psnNo, scene string) (*Agreement, error) {
	list, err := s.Agreements(ctx, psnNo)
	if err != nil {
		return nil, err
	}
	var suspended *Agreement
	for i := range list {
		a := &list[i]
		if a.Scene != SceneAll && a.Scene != scene {
			continue
		}
		switch a.Status {
		case StatusActive:
			return a, nil
		case StatusSuspended:
			suspended = a
		}
	}
	if suspended != nil {
		return nil, yibao.Errorf(yibao.CodePrecondition, "credit_suspended: the credit agreement %s is suspended (%s); pay another way", suspended.AgreementNo, suspended.Reason)
	}
	return nil, yibao.Errorf(yibao.CodePrecondition, "no_credit_agreement: this person has no active credit agreement for %s care", scene)
}

// ApplyRequest is a patient's application.
type ApplyRequest struct {
	BankCode       string    `json:"bank_code"`
	RequestedLimit money.Fen `json:"requested_limit,omitempty"` // 0: what the bank grants
	Scene          string    `json:"scene,omitempty"`           // all (default), outpatient, inpatient
	ConsentVersion string    `json:"consent_version"`           // must be ConsentVersion: the text the patient read
	Accept         bool      `json:"accept"`                    // the explicit consent
}

// Apply sends a person's application to the bank and returns the
// agreement: active with the bank's limit, declined with its reason, or
// still applying when the bank's answer did not arrive (the service asks
// again until it does).
func (s *Service) Apply(ctx context.Context, psnNo string, r ApplyRequest) (*Agreement, error) {
	if !r.Accept {
		return nil, yibao.FieldError("accept", "read the consent text and accept it to apply")
	}
	if r.ConsentVersion != ConsentVersion {
		return nil, yibao.FieldError("consent_version", "the consent text changed; read version %s", ConsentVersion)
	}
	if r.Scene == "" {
		r.Scene = SceneAll
	}
	if r.Scene != SceneAll && r.Scene != SceneOutpatient && r.Scene != SceneInpatient {
		return nil, yibao.FieldError("scene", "want all, outpatient or inpatient")
	}
	if r.RequestedLimit < 0 || r.RequestedLimit > 5_000_000 {
		return nil, yibao.FieldError("requested_limit", "0 (what the bank grants) up to ¥50,000")
	}
	b, err := s.BankByCode(ctx, r.BankCode)
	if err != nil {
		return nil, err
	}
	if b.Status != "active" {
		return nil, yibao.Errorf(yibao.CodePrecondition, "bank %s takes no applications", b.BankCode)
	}
	now := s.now()
	a := &Agreement{AgreementNo: newID("CA"), PsnNo: psnNo, BankCode: b.BankCode, Status: StatusApplying, Scene: r.Scene, Requested: r.RequestedLimit,
		InterestFreeDays: b.InterestFreeDays, ConsentVersion: ConsentVersion, ConsentAt: now.UTC(), CreatedAt: now.UTC(), UpdatedAt: now.UTC(), applyID: newID("AP")}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO credit_agreements (`+agreementCols+`) VALUES (?, ?, ?, '', ?, ?, ?, 0, ?, 0, ?, ?, ?, '', 0, 0, ?, ?)`,
			a.AgreementNo, psnNo, a.BankCode, a.applyID, a.Status, a.Scene, int64(a.Requested), a.InterestFreeDays, a.ConsentVersion,
			micros(now), micros(now), micros(now))
		if sqlstore.IsUniqueViolation(err) {
			return yibao.Errorf(yibao.CodeConflict, "you already have a credit agreement with %s (applying, active or suspended)", b.Name)
		}
		if err != nil {
			return err
		}
		return s.record(ctx, tx, a.AgreementNo+":consent", a.AgreementNo, map[string]any{"event": "consent", "agreement_no": a.AgreementNo,
			"person": s.Audit.Person(psnNo), "bank_code": a.BankCode, "consent_version": ConsentVersion, "scene": a.Scene, "requested": a.Requested.String()})
	})
	if err != nil {
		return nil, err
	}
	s.ask(ctx, a, true)
	return s.Agreement(ctx, psnNo, a.AgreementNo)
}

// ask sends an application, or for one whose answer was lost
// (recovery), asks for the decision first and sends it again only if the
// bank never received it: the bank answers one apply id with one decision.
func (s *Service) ask(ctx context.Context, a *Agreement, fresh bool) {
	bk, err := s.bank(a.BankCode)
	if err != nil {
		s.log.Warn("credit application waits for its bank", "agreement", a.AgreementNo, "err", err)
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BankTimeout)
	defer cancel()
	var d *bankapi.Decision
	var be *bankapi.Error
	if !fresh {
		d, err = bk.Application(cctx, a.applyID)
	}
	if fresh || errors.As(err, &be) && be.Status == 404 {
		d, err = bk.Apply(cctx, bankapi.ApplyRequest{ApplyID: a.applyID, AgreementNo: a.AgreementNo, BankCode: a.BankCode,
			PsnRef: s.PsnRef(a.BankCode, a.PsnNo), RequestedLimitFen: int64(a.Requested), Scene: a.Scene, ConsentVersion: a.ConsentVersion, ConsentAt: a.ConsentAt})
	}
	if err != nil && errors.As(err, &be) && !bankapi.Unknown(err) {
		d = &bankapi.Decision{ApplyID: a.applyID, Status: "declined", Reason: "bank_refused: " + be.Code + ": " + be.Message}
		err = nil
	}
	if err != nil || d == nil {
		s.log.Info("credit application outcome unknown; will ask again", "agreement", a.AgreementNo, "err", err)
		return
	}
	if err := s.decide(ctx, a.AgreementNo, d); err != nil {
		s.log.Error("recording a credit decision", "agreement", a.AgreementNo, "err", err)
	}
}

// decide applies the bank's decision to an applying agreement, once.
func (s *Service) decide(ctx context.Context, no string, d *bankapi.Decision) error {
	a, err := s.loadAgreement(ctx, s.db, no)
	if err != nil {
		return err
	}
	if a.Status != StatusApplying {
		return nil
	}
	now := s.now()
	if d.Status != "approved" || d.LimitFen <= 0 {
		return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
			res, err := tx.Exec(ctx, `UPDATE credit_agreements SET status = 'declined', reason = ?, version = version + 1, updated_at = ? WHERE agreement_no = ? AND status = 'applying'`,
				d.Reason, micros(now), no)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return nil
			}
			if err := notice(ctx, tx, no, "declined", "银行未批准信用就医申请 / the bank declined the application: "+d.Reason, now); err != nil {
				return err
			}
			return s.record(ctx, tx, no+":declined", no, map[string]any{"event": "declined", "agreement_no": no, "reason": d.Reason, "score": d.Score})
		})
	}
	limit := money.Fen(d.LimitFen)
	days := d.InterestFreeDays
	if days <= 0 {
		days = a.InterestFreeDays
	}
	unit := engine.Unit{
		Accounts:  []ledger.Account{line(no), ledger.CreditLimits(a.BankCode)},
		Transfers: []ledger.Transfer{limitTransfer(no, a.BankCode, 1, limit)},
	}
	unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE credit_agreements SET status = 'active', bank_agreement_id = ?, limit_fen = ?, interest_free_days = ?,
			version = version + 1, updated_at = ? WHERE agreement_no = ? AND status = 'applying' AND version = ?`,
			d.BankAgreementID, int64(limit), days, micros(now), no, a.version)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "agreement %s changed meanwhile", no)
		}
		if err := notice(ctx, tx, no, "approved", fmt.Sprintf("信用就医已开通，额度 %s 元，免息 %d 天 / credit payment is on: limit ¥%s, %d days interest-free", limit, days, limit, days), now); err != nil {
			return err
		}
		return s.record(ctx, tx, no+":approved", no, map[string]any{"event": "approved", "agreement_no": no, "bank_agreement_id": d.BankAgreementID,
			"limit": limit.String(), "interest_free_days": days, "score": d.Score})
	}
	_, err = s.led.Submit(ctx, unit)
	if yibao.IsCode(err, yibao.CodeConflict) {
		return nil // decided meanwhile by another path
	}
	return err
}

// limitTransfer moves limit into a line (amount > 0) or out of it
// (amount < 0), under the agreement's version n so it happens once.
func limitTransfer(no, bankCode string, n int64, amount money.Fen) ledger.Transfer {
	t := ledger.Transfer{ID: fmt.Sprintf("CL:%s:%d", no, n), DebitAccountID: ledger.CreditLimits(bankCode).ID, CreditAccountID: line(no).ID,
		Amount: amount, Ledger: ledger.CNY, Code: "credit_limit", UserData: no}
	if amount < 0 {
		t.DebitAccountID, t.CreditAccountID, t.Amount = t.CreditAccountID, t.DebitAccountID, -amount
	}
	return t
}

// setLimit changes an agreement's state and limit in one ledger unit: the
// line's available amount becomes limit − outstanding − held (never below
// zero; a suspended or closed line is emptied). extra runs in the same
// transaction.
func (s *Service) setLimit(ctx context.Context, no, status string, limit money.Fen, reason string, extra func(ctx context.Context, tx *sqlstore.Tx, a *Agreement) error) error {
	for attempt := 0; ; attempt++ {
		a, err := s.loadAgreement(ctx, s.db, no)
		if err != nil {
			return err
		}
		acc, err := s.led.Account(ctx, line(no).ID)
		if err != nil {
			return err
		}
		target := limit - a.Outstanding - acc.DebitsPending
		if status != StatusActive || target < 0 {
			target = 0
		}
		delta := target - acc.Available()
		now := s.now()
		unit := engine.Unit{Accounts: []ledger.Account{line(no), ledger.CreditLimits(a.BankCode)}}
		if delta != 0 {
			unit.Transfers = []ledger.Transfer{limitTransfer(no, a.BankCode, a.version+1, delta)}
		}
		unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
			overdue := "overdue_since"
			if status == StatusActive {
				overdue = "0"
			}
			res, err := tx.Exec(ctx, `UPDATE credit_agreements SET status = ?, limit_fen = ?, reason = ?, overdue_since = `+overdue+`,
				version = version + 1, updated_at = ? WHERE agreement_no = ? AND version = ?`, status, int64(limit), reason, micros(now), no, a.version)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return errRetry
			}
			a.Status, a.Limit, a.Reason = status, limit, reason
			if extra != nil {
				if err := extra(ctx, tx, a); err != nil {
					return err
				}
			}
			return s.record(ctx, tx, fmt.Sprintf("%s:v%d", no, a.version+1), no, map[string]any{"event": "limit", "agreement_no": no,
				"status": status, "limit": limit.String(), "moved": delta.String(), "reason": reason})
		}
		_, err = s.led.Submit(ctx, unit)
		if err == nil {
			return nil
		}
		// The line moved between reading and writing (a payment held or
		// released): read again.
		if (err == errRetry || ledger.ReasonOf(err) == ledger.ReasonExceedsCredits || ledger.ReasonOf(err) == ledger.ReasonExistsDifferent) && attempt < 20 {
			time.Sleep(time.Duration(attempt+1) * time.Millisecond)
			continue
		}
		return err
	}
}

var errRetry = yibao.Errorf(yibao.CodeConflict, "credit agreement changed meanwhile; try again")

// Close ends a person's agreement: nothing may be owed or held.
func (s *Service) Close(ctx context.Context, psnNo, no string) (*Agreement, error) {
	a, err := s.Agreement(ctx, psnNo, no)
	if err != nil {
		return nil, err
	}
	switch {
	case a.Status == StatusClosed || a.Status == StatusDeclined:
		return a, nil
	case a.Status == StatusApplying:
		return nil, yibao.Errorf(yibao.CodePrecondition, "the bank has not decided yet; close it once it has")
	case a.Outstanding > 0 || a.Held > 0:
		return nil, yibao.Errorf(yibao.CodePrecondition, "credit_outstanding: %s yuan is owed and %s yuan held; repay and finish every stay first", a.Outstanding, a.Held)
	}
	err = s.setLimit(ctx, no, StatusClosed, 0, "closed by the patient", func(ctx context.Context, tx *sqlstore.Tx, a *Agreement) error {
		return notice(ctx, tx, no, "closed", "信用就医已关闭 / credit payment closed", s.now())
	})
	if err != nil {
		return nil, err
	}
	s.report(ctx, no)
	return s.Agreement(ctx, psnNo, no)
}

// report tells the bank an agreement's state (best effort: the daily
// cycle reports again).
func (s *Service) report(ctx context.Context, no string) {
	a, err := s.loadAgreement(ctx, s.db, no)
	if err != nil || a.BankAgreementID == "" {
		return
	}
	bk, err := s.bank(a.BankCode)
	if err != nil {
		return
	}
	st := a.Status
	var overdueFen int64
	days := 0
	if a.OverdueSince != nil {
		st = "overdue"
		days = int(s.now().Sub(*a.OverdueSince).Hours()/24) + 1
		overdueFen = int64(s.overdueAmount(ctx, no))
	}
	if a.Status == StatusClosed {
		st = StatusClosed
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BankTimeout)
	defer cancel()
	if err := bk.Report(cctx, bankapi.StatusReport{AgreementNo: no, BankAgreementID: a.BankAgreementID, Status: st, OutstandingFen: int64(a.Outstanding),
		OverdueFen: overdueFen, DaysOverdue: days, At: s.now().UTC()}); err != nil {
		s.log.Warn("reporting a credit agreement's state to its bank", "agreement", no, "err", err)
	}
}

func (s *Service) overdueAmount(ctx context.Context, no string) money.Fen {
	var v int64
	s.db.QueryRow(ctx, `SELECT COALESCE(SUM(amount - repaid), 0) FROM credit_statements WHERE agreement_no = ? AND status = 'overdue'`, no).Scan(&v)
	return money.Fen(v)
}

// RecoverApplications asks the banks again about applications whose
// answer was lost. It returns how many it asked about.
func (s *Service) RecoverApplications(ctx context.Context) (int, error) {
	list, err := s.agreements(ctx, `WHERE status = 'applying' AND updated_at <= ? ORDER BY created_at LIMIT 100`, micros(s.now().Add(-2*time.Second)))
	if err != nil {
		return 0, err
	}
	for i := range list {
		s.ask(ctx, &list[i], false)
	}
	return len(list), nil
}
