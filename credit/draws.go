package credit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"yibao"
	"yibao/credit/bankapi"
	"yibao/money"
	"yibao/policy"
	"yibao/settlement"
	"yibao/sqlstore"
)

// Payment is what the payment service needs to pay a visit on credit.
type Payment struct {
	Agreement *Agreement
	Hold      *settlement.CreditHold
	Release   []string // the stay's guarantee holds, voided in the settlement's unit
}

// ForPayment prepares paying a visit's out-of-pocket part on the person's
// credit line: the active agreement for the visit's scene, the hold the
// settlement makes, and, at discharge, the stay's guarantee holds it
// releases (a mid-stay settlement holds its own part beside them).
func (s *Service) ForPayment(ctx context.Context, v *settlement.Visit) (*Payment, error) {
	scene := SceneOutpatient
	if v.Type == policy.Inpatient {
		scene = SceneInpatient
	}
	ag, err := s.ActiveAgreement(ctx, v.PsnNo, scene)
	if err != nil {
		return nil, err
	}
	p := &Payment{Agreement: ag, Hold: &settlement.CreditHold{Line: line(ag.AgreementNo), Channel: ag.BankCode}}
	g, err := s.guarantee(ctx, s.db, v.MdtrtID)
	switch {
	case err == nil && g.Status == GuaranteeOpen && v.Status == settlement.VisitDischarged:
		if g.AgreementNo != ag.AgreementNo {
			return nil, yibao.Errorf(yibao.CodePrecondition, "the stay's guarantee is on agreement %s, not %s", g.AgreementNo, ag.AgreementNo)
		}
		for i := 1; i <= g.Holds; i++ {
			p.Release = append(p.Release, guaranteeHoldID(v.MdtrtID, i))
		}
	case err != nil && !yibao.IsCode(err, yibao.CodeNotFound):
		return nil, err
	}
	return p, nil
}

// Draw is one use of a credit line.
type Draw struct {
	DrawID        string    `json:"draw_id"`
	AgreementNo   string    `json:"agreement_no"`
	PayOrdID      string    `json:"pay_ord_id"`
	SetlID        string    `json:"setl_id"`
	FixmedinsCode string    `json:"fixmedins_code"`
	Amount        money.Fen `json:"amount"`
	Status        string    `json:"status"`      // held | posted | voided
	BankStatus    string    `json:"bank_status"` // pending | accepted | refused
	Day           string    `json:"day,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
}

// Held records, inside the settlement's transaction, that settlement st
// holds its out-of-pocket part on the line under drawID, and closes the
// stay's guarantee if the settlement released it.
func (s *Service) Held(ctx context.Context, tx *sqlstore.Tx, p *Payment, st *settlement.Settlement, payOrdID, drawID string) error {
	now := s.now()
	if len(p.Release) > 0 {
		if _, err := tx.Exec(ctx, `UPDATE credit_guarantees SET status = 'settled', updated_at = ? WHERE mdtrt_id = ? AND status = 'open'`, micros(now), st.MdtrtID); err != nil {
			return err
		}
	}
	if st.PsnCashPay == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO credit_draws (draw_id, agreement_no, pay_ord_id, setl_id, fixmedins_code, amount, status, created_at)
		VALUES (?, ?, ?, ?, ?, ?, 'held', ?)`, drawID, p.Agreement.AgreementNo, payOrdID, st.SetlID, st.FixmedinsCode, int64(st.PsnCashPay), micros(now))
	return err
}

// Draw outcomes.
const (
	DrawAccepted = "accepted"
	DrawRefused  = "refused"
	DrawUnknown  = "unknown"
)

// NotifyDraw tells the bank of a held draw (idempotent at the bank by
// draw id) and returns accepted, refused (with the bank's reason) or
// unknown (ask again later).
func (s *Service) NotifyDraw(ctx context.Context, drawID string) (string, string) {
	d, ag, err := s.loadDraw(ctx, drawID)
	if err != nil {
		return DrawUnknown, err.Error()
	}
	if d.BankStatus == DrawAccepted || d.BankStatus == DrawRefused {
		return d.BankStatus, ""
	}
	bk, err := s.bank(ag.BankCode)
	if err != nil {
		return DrawUnknown, err.Error()
	}
	due := s.dueDate(s.now(), ag.InterestFreeDays)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BankTimeout)
	err = bk.Draw(cctx, bankapi.DrawNotice{DrawID: drawID, AgreementNo: ag.AgreementNo, BankAgreementID: ag.BankAgreementID,
		FixmedinsCode: d.FixmedinsCode, SetlID: d.SetlID, AmountFen: int64(d.Amount), At: d.CreatedAt, DueDate: due})
	cancel()
	var be *bankapi.Error
	switch {
	case err == nil:
		_, err = s.db.Exec(ctx, `UPDATE credit_draws SET bank_status = 'accepted' WHERE draw_id = ? AND bank_status = 'pending'`, drawID)
		if err != nil {
			return DrawUnknown, err.Error()
		}
		return DrawAccepted, ""
	case errors.As(err, &be) && !bankapi.Unknown(err):
		reason := be.Code + ": " + be.Message
		if _, err := s.db.Exec(ctx, `UPDATE credit_draws SET bank_status = 'refused' WHERE draw_id = ? AND bank_status = 'pending'`, drawID); err != nil {
			return DrawUnknown, err.Error()
		}
		return DrawRefused, reason
	}
	return DrawUnknown, err.Error()
}

func (s *Service) loadDraw(ctx context.Context, drawID string) (*Draw, *Agreement, error) {
	var d Draw
	var c int64
	err := s.db.QueryRow(ctx, `SELECT draw_id, agreement_no, pay_ord_id, setl_id, fixmedins_code, amount, status, bank_status, day, created_at
		FROM credit_draws WHERE draw_id = ?`, drawID).Scan(&d.DrawID, &d.AgreementNo, &d.PayOrdID, &d.SetlID, &d.FixmedinsCode, &d.Amount, &d.Status,
		&d.BankStatus, &d.Day, &c)
	if notFound(err) {
		return nil, nil, yibao.Errorf(yibao.CodeNotFound, "credit draw %s not found", drawID)
	}
	if err != nil {
		return nil, nil, err
	}
	d.CreatedAt = fromMicros(c)
	ag, err := s.loadAgreement(ctx, s.db, d.AgreementNo)
	return &d, ag, err
}

// dueDate is the last day of the interest-free period of a draw made at t.
func (s *Service) dueDate(t time.Time, days int) string {
	return yibao.DateOf(t.In(yibao.ChinaTime).AddDate(0, 0, days))
}

// Posted returns what runs inside the settlement's completion: the draw
// is posted, the debt grows and the patient's statement is issued with
// its items and due date.
func (s *Service) Posted(drawID string) func(ctx context.Context, tx *sqlstore.Tx, st *settlement.Settlement) error {
	return func(ctx context.Context, tx *sqlstore.Tx, st *settlement.Settlement) error {
		var agNo string
		var amount int64
		if err := tx.QueryRow(ctx, `SELECT agreement_no, amount FROM credit_draws WHERE draw_id = ?`, drawID).Scan(&agNo, &amount); err != nil {
			return err
		}
		now := s.now()
		day := yibao.DateOf(now)
		res, err := tx.Exec(ctx, `UPDATE credit_draws SET status = 'posted', posted_at = ?, day = ? WHERE draw_id = ? AND status = 'held'`, micros(now), day, drawID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return yibao.Errorf(yibao.CodeConflict, "credit draw %s is not held", drawID)
		}
		a, err := s.loadAgreement(ctx, tx, agNo)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE credit_agreements SET outstanding = outstanding + ?, version = version + 1, updated_at = ? WHERE agreement_no = ?`,
			amount, micros(now), agNo); err != nil {
			return err
		}
		items, err := statementItems(ctx, tx, st)
		if err != nil {
			return err
		}
		itemsJSON, _ := json.Marshal(items)
		due := s.dueDate(now, a.InterestFreeDays)
		no := "CS" + drawID
		if _, err := tx.Exec(ctx, `INSERT INTO credit_statements (statement_no, agreement_no, psn_no, draw_id, setl_id, fixmedins_code, amount, due_date,
			status, items, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?, ?)`, no, agNo, a.PsnNo, drawID, st.SetlID, st.FixmedinsCode, amount, due,
			string(itemsJSON), micros(now)); err != nil {
			return err
		}
		msg := fmt.Sprintf("信用就医账单 %s 元，请于 %s 前还款 / statement of ¥%s, due %s", money.Fen(amount), due, money.Fen(amount), due)
		if err := notice(ctx, tx, agNo, "statement", msg, now); err != nil {
			return err
		}
		return s.record(ctx, tx, "draw:"+drawID, agNo, map[string]any{"event": "draw_posted", "agreement_no": agNo, "draw_id": drawID,
			"setl_id": st.SetlID, "fixmedins_code": st.FixmedinsCode, "amount": money.Fen(amount).String(), "statement_no": no, "due_date": due})
	}
}

// Voided records, after the settlement was voided, that the draw never
// happened (the hold went with the settlement).
func (s *Service) Voided(ctx context.Context, drawID string) error {
	_, err := s.db.Exec(ctx, `UPDATE credit_draws SET status = 'voided' WHERE draw_id = ? AND status = 'held'`, drawID)
	return err
}

// StatementItems is what a statement lists: the bill's lines and how
// the bill was split.
type StatementItems struct {
	Lines        []StatementItem `json:"lines"`
	MedfeeSumamt money.Fen       `json:"medfee_sumamt"`
	FundPay      money.Fen       `json:"fund_pay"`
	AcctPay      money.Fen       `json:"acct_pay"`
	PsnCashPay   money.Fen       `json:"psn_cash_pay"` // the statement's amount
}

// StatementItem is one fee line: its total and the part of it insurance
// left to the patient outright (not covered, over the price cap, the B
// class share); the deductible and coinsurance are bill-wide.
type StatementItem struct {
	Name       string    `json:"name"`
	Class      string    `json:"class,omitempty"`
	Amount     money.Fen `json:"amount"`
	OwnPayLine money.Fen `json:"own_pay_line"`
}

// statementItems reads the settlement's lines and split inside tx (the
// completion sees the settlement without them).
func statementItems(ctx context.Context, tx *sqlstore.Tx, st *settlement.Settlement) (StatementItems, error) {
	out := StatementItems{Lines: []StatementItem{}, MedfeeSumamt: st.MedfeeSumamt, FundPay: st.FundPaySumamt, AcctPay: st.AcctPay, PsnCashPay: st.PsnCashPay}
	var resJSON string
	if err := tx.QueryRow(ctx, `SELECT result FROM settlements WHERE setl_id = ?`, st.SetlID).Scan(&resJSON); err != nil {
		return out, err
	}
	var res policy.Result
	if err := json.Unmarshal([]byte(resJSON), &res); err != nil {
		return out, fmt.Errorf("settlement %s result: %w", st.SetlID, err)
	}
	type line struct{ name, class string }
	lines := map[string]line{}
	rows, err := tx.Query(ctx, `SELECT feedetl_sn, name, class FROM fee_lines WHERE setl_id = ?`, st.SetlID)
	if err != nil {
		return out, err
	}
	for rows.Next() {
		var sn string
		var l line
		if err := rows.Scan(&sn, &l.name, &l.class); err != nil {
			rows.Close()
			return out, err
		}
		lines[sn] = l
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, err
	}
	for _, r := range res.Lines {
		l := lines[r.ID]
		name := l.name
		if name == "" {
			name = r.ID
		}
		out.Lines = append(out.Lines, StatementItem{Name: name, Class: l.class, Amount: r.Amount, OwnPayLine: r.FulamtOwnpayAmt + r.OverlmtAmt + r.PreselfpayAmt})
	}
	return out, nil
}
