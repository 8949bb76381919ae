package credit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"yibao"
	"yibao/credit/bankapi"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/sqlstore"
)

// CycleResult counts what one pass of the daily cycle did.
type CycleResult struct {
	Reminded  int `json:"reminded"`
	Overdue   int `json:"overdue"`
	Suspended int `json:"suspended"`
}

// Cycle reminds patients of statements due tomorrow and today, marks
// statements past their due date overdue, and suspends their agreements
// with the limit set to zero, telling the bank. Idempotent: each reminder
// is sent once, each agreement suspended once.
func (s *Service) Cycle(ctx context.Context) (*CycleResult, error) {
	ctx = sys(ctx)
	now := s.now()
	today := yibao.DateOf(now)
	tomorrow := yibao.DateOf(now.In(yibao.ChinaTime).AddDate(0, 0, 1))
	res := &CycleResult{}
	for _, r := range []struct{ due, kind, zh, en string }{
		{tomorrow, "reminder", "明天到期", "is due tomorrow"},
		{today, "due", "今天到期", "is due today"},
	} {
		rows, err := s.db.Query(ctx, `SELECT statement_no, agreement_no, amount - repaid FROM credit_statements WHERE status = 'open' AND due_date = ? AND reminded <> ?`, r.due, r.kind)
		if err != nil {
			return nil, err
		}
		type st struct {
			no, ag string
			left   money.Fen
		}
		var list []st
		for rows.Next() {
			var x st
			if err := rows.Scan(&x.no, &x.ag, &x.left); err != nil {
				rows.Close()
				return nil, err
			}
			list = append(list, x)
		}
		rows.Close()
		for _, x := range list {
			err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
				res, err := tx.Exec(ctx, `UPDATE credit_statements SET reminded = ? WHERE statement_no = ? AND reminded <> ?`, r.kind, x.no, r.kind)
				if err != nil {
					return err
				}
				if n, _ := res.RowsAffected(); n != 1 {
					return nil
				}
				return notice(ctx, tx, x.ag, r.kind, fmt.Sprintf("账单 %s 还有 %s 元%s / statement %s: ¥%s %s", x.no, x.left, r.zh, x.no, x.left, r.en), now)
			})
			if err != nil {
				return nil, err
			}
			res.Reminded++
		}
	}
	late, err := s.db.Strings(ctx, `SELECT DISTINCT agreement_no FROM credit_statements WHERE status = 'open' AND due_date < ?`, today)
	if err != nil {
		return nil, err
	}
	for _, no := range late {
		n, err := s.db.Exec(ctx, `UPDATE credit_statements SET status = 'overdue' WHERE agreement_no = ? AND status = 'open' AND due_date < ?`, no, today)
		if err != nil {
			return nil, err
		}
		c, _ := n.RowsAffected()
		res.Overdue += int(c)
		a, err := s.loadAgreement(ctx, s.db, no)
		if err != nil {
			return nil, err
		}
		if a.Status != StatusActive || a.OverdueSince != nil {
			continue
		}
		overdue := s.overdueAmount(ctx, no)
		err = s.setLimit(ctx, no, StatusSuspended, a.Limit, "overdue", func(ctx context.Context, tx *sqlstore.Tx, _ *Agreement) error {
			if _, err := tx.Exec(ctx, `UPDATE credit_agreements SET overdue_since = ? WHERE agreement_no = ?`, micros(now), no); err != nil {
				return err
			}
			return notice(ctx, tx, no, "overdue", fmt.Sprintf("逾期 %s 元：信用就医已暂停、额度降为零，银行可能收取罚息并报送征信 / ¥%s overdue: credit payment suspended and the limit set to zero; the bank may charge penalty interest and report to the credit bureau", overdue, overdue), now)
		})
		if err != nil {
			return nil, err
		}
		res.Suspended++
		s.report(ctx, no)
	}
	return res, nil
}

// Statement is one credit-paid settlement's bill.
type Statement struct {
	StatementNo   string         `json:"statement_no"`
	AgreementNo   string         `json:"agreement_no"`
	SetlID        string         `json:"setl_id"`
	FixmedinsCode string         `json:"fixmedins_code"`
	FixmedinsName string         `json:"fixmedins_name"`
	Amount        money.Fen      `json:"amount"`
	Repaid        money.Fen      `json:"repaid"`
	DueDate       string         `json:"due_date"`
	Status        string         `json:"status"`
	Items         StatementItems `json:"items"`
	IssuedAt      time.Time      `json:"issued_at"`
	PaidAt        *time.Time     `json:"paid_at,omitempty"`
}

// Statements lists a person's statements, newest first.
func (s *Service) Statements(ctx context.Context, psnNo string) ([]Statement, error) {
	rows, err := s.db.Query(ctx, `SELECT s.statement_no, s.agreement_no, s.setl_id, s.fixmedins_code, COALESCE(i.name, ''), s.amount, s.repaid, s.due_date,
		s.status, s.items, s.issued_at, s.paid_at FROM credit_statements s LEFT JOIN institutions i ON i.fixmedins_code = s.fixmedins_code
		WHERE s.psn_no = ? ORDER BY s.issued_at DESC LIMIT 100`, psnNo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Statement{}
	for rows.Next() {
		var st Statement
		var items string
		var i, p int64
		if err := rows.Scan(&st.StatementNo, &st.AgreementNo, &st.SetlID, &st.FixmedinsCode, &st.FixmedinsName, &st.Amount, &st.Repaid, &st.DueDate, &st.Status, &items, &i, &p); err != nil {
			return nil, err
		}
		json.Unmarshal([]byte(items), &st.Items)
		st.IssuedAt = fromMicros(i)
		if p != 0 {
			t := fromMicros(p)
			st.PaidAt = &t
		}
		out = append(out, st)
	}
	return out, rows.Err()
}

// Notice is a message to the patient.
type Notice struct {
	AgreementNo string    `json:"agreement_no"`
	Kind        string    `json:"kind"`
	Message     string    `json:"message"`
	At          time.Time `json:"at"`
}

// Notices lists the messages of a person's agreements, newest first.
func (s *Service) Notices(ctx context.Context, psnNo string) ([]Notice, error) {
	rows, err := s.db.Query(ctx, `SELECT n.agreement_no, n.kind, n.message, n.created_at FROM credit_notices n
		JOIN credit_agreements a ON a.agreement_no = n.agreement_no WHERE a.psn_no = ? ORDER BY n.created_at DESC LIMIT 50`, psnNo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Notice{}
	for rows.Next() {
		var n Notice
		var at int64
		if err := rows.Scan(&n.AgreementNo, &n.Kind, &n.Message, &at); err != nil {
			return nil, err
		}
		n.At = fromMicros(at)
		out = append(out, n)
	}
	return out, rows.Err()
}

// Repayments lists a person's repayments, newest first.
func (s *Service) Repayments(ctx context.Context, psnNo string) ([]Repayment, error) {
	rows, err := s.db.Query(ctx, `SELECT r.repay_id, r.agreement_no, r.channel, r.source, r.amount, r.applied, r.excess, r.status, r.paid_at
		FROM credit_repayments r JOIN credit_agreements a ON a.agreement_no = r.agreement_no WHERE a.psn_no = ? ORDER BY r.created_at DESC LIMIT 50`, psnNo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Repayment{}
	for rows.Next() {
		var r Repayment
		var p int64
		if err := rows.Scan(&r.RepayID, &r.AgreementNo, &r.Channel, &r.Source, &r.Amount, &r.Applied, &r.Excess, &r.Status, &p); err != nil {
			return nil, err
		}
		r.PaidAt = fromMicros(p)
		out = append(out, r)
	}
	return out, rows.Err()
}

// DayReport is how one bank's settlement file of a day matched.
type DayReport struct {
	BankCode      string           `json:"bank_code"`
	Day           string           `json:"day"`
	Status        string           `json:"status"` // matched | differences
	Rows          int              `json:"rows"`
	Matched       int              `json:"matched"`
	DrawsFen      money.Fen        `json:"draws"`
	RepaymentsFen money.Fen        `json:"repayments"`
	PayoutsFen    money.Fen        `json:"payouts"`
	NetFen        money.Fen        `json:"net"`
	Payouts       []bankapi.Payout `json:"payout_rows"`
	Missing       []bankapi.DayRow `json:"missing"`    // ours, not in the bank's reply
	Extra         []bankapi.DayRow `json:"extra"`      // the bank's, not ours
	Mismatched    []Mismatch       `json:"mismatched"` // both, other amounts
	Hospitals     []HospitalPayout `json:"hospitals"`
	CreatedAt     time.Time        `json:"created_at"`
}

// Mismatch is a row both sides have with different figures.
type Mismatch struct {
	Ours   bankapi.DayRow `json:"ours"`
	Theirs bankapi.DayRow `json:"theirs"`
}

// HospitalPayout compares what a hospital was owed for a day's credit
// draws with what the bank paid it.
type HospitalPayout struct {
	FixmedinsCode string    `json:"fixmedins_code"`
	Owed          money.Fen `json:"owed"`
	Paid          money.Fen `json:"paid"`
	Difference    money.Fen `json:"difference"` // paid − owed
}

// SettleDay sends a bank the day's settlement file (the draws posted and
// the repayments we collected that day, China time), matches the bank's
// reply row by row, and books the bank's payouts to the hospitals once
// each (recv → bank). Sending a day again matches again and books nothing
// twice. Administrators only.
func (s *Service) SettleDay(ctx context.Context, bankCode, day string) (*DayReport, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if _, err := time.Parse(yibao.DateLayout, day); err != nil {
		return nil, yibao.FieldError("day", "want YYYY-MM-DD")
	}
	if _, err := s.BankByCode(ctx, bankCode); err != nil {
		return nil, err
	}
	bk, err := s.bank(bankCode)
	if err != nil {
		return nil, err
	}
	ours, err := s.dayRows(ctx, bankCode, day)
	if err != nil {
		return nil, err
	}
	f := bankapi.DayFile{BankCode: bankCode, Date: day, Rows: ours, Count: len(ours)}
	for _, r := range ours {
		if r.Kind == "draw" {
			f.DrawsFen += r.AmountFen
		} else {
			f.RepaymentsFen += r.AmountFen
		}
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.BankTimeout)
	reply, err := bk.SubmitDay(cctx, f)
	cancel()
	if err != nil {
		return nil, yibao.Wrap(yibao.CodeUnavailable, err, "the bank did not take the settlement file: "+err.Error())
	}
	rep := match(bankCode, day, ours, reply)
	rep.CreatedAt = s.now().UTC()
	body, _ := json.Marshal(rep)
	for _, p := range reply.Payouts {
		if p.AmountFen <= 0 || p.PayoutID == "" {
			continue
		}
		h := p.FixmedinsCode
		unit := engine.Unit{
			Accounts: []ledger.Account{ledger.HospitalReceivable(h), ledger.HospitalBank(h)},
			Transfers: []ledger.Transfer{{ID: "BP:" + bankCode + ":" + p.PayoutID, DebitAccountID: ledger.HospitalReceivable(h).ID,
				CreditAccountID: ledger.HospitalBank(h).ID, Amount: money.Fen(p.AmountFen), Ledger: ledger.CNY, Code: "credit_payout", UserData: bankCode + ":" + day}},
		}
		unit.Statements = func(ctx context.Context, tx *sqlstore.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO credit_payouts (payout_id, bank_code, day, fixmedins_code, amount, created_at) VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT DO NOTHING`, p.PayoutID, bankCode, day, h, p.AmountFen, micros(s.now()))
			return err
		}
		if _, err := s.led.Submit(ctx, unit); err != nil {
			return nil, err
		}
	}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO credit_day_files (bank_code, day, status, draws_fen, repayments_fen, payouts_fen, report, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (bank_code, day) DO UPDATE SET status = excluded.status, draws_fen = excluded.draws_fen,
			repayments_fen = excluded.repayments_fen, payouts_fen = excluded.payouts_fen, report = excluded.report, created_at = excluded.created_at`,
			bankCode, day, rep.Status, int64(rep.DrawsFen), int64(rep.RepaymentsFen), int64(rep.PayoutsFen), string(body), micros(rep.CreatedAt)); err != nil {
			return err
		}
		return s.record(ctx, tx, fmt.Sprintf("dayfile:%s:%s:%d", bankCode, day, rep.CreatedAt.UnixMicro()), bankCode+":"+day, map[string]any{
			"event": "settlement_file", "bank_code": bankCode, "day": day, "status": rep.Status, "rows": rep.Rows, "matched": rep.Matched,
			"missing": len(rep.Missing), "extra": len(rep.Extra), "mismatched": len(rep.Mismatched), "draws": rep.DrawsFen.String(),
			"repayments": rep.RepaymentsFen.String(), "payouts": rep.PayoutsFen.String()})
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

func (s *Service) dayRows(ctx context.Context, bankCode, day string) ([]bankapi.DayRow, error) {
	out := []bankapi.DayRow{}
	rows, err := s.db.Query(ctx, `SELECT d.draw_id, d.agreement_no, d.fixmedins_code, d.amount FROM credit_draws d JOIN credit_agreements a ON a.agreement_no = d.agreement_no
		WHERE a.bank_code = ? AND d.day = ? AND d.status = 'posted' ORDER BY d.draw_id`, bankCode, day)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		r := bankapi.DayRow{Kind: "draw"}
		if err := rows.Scan(&r.ID, &r.AgreementNo, &r.FixmedinsCode, &r.AmountFen); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, r)
	}
	rows.Close()
	rows, err = s.db.Query(ctx, `SELECT r.repay_id, r.agreement_no, r.amount FROM credit_repayments r JOIN credit_agreements a ON a.agreement_no = r.agreement_no
		WHERE a.bank_code = ? AND r.day = ? AND r.source = 'platform' AND r.status = 'applied' ORDER BY r.repay_id`, bankCode, day)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r := bankapi.DayRow{Kind: "repayment"}
		if err := rows.Scan(&r.ID, &r.AgreementNo, &r.AmountFen); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// match compares our rows with the bank's reply (pure).
func match(bankCode, day string, ours []bankapi.DayRow, reply *bankapi.DayReply) *DayReport {
	rep := &DayReport{BankCode: bankCode, Day: day, Rows: len(ours), Payouts: reply.Payouts, Missing: []bankapi.DayRow{}, Extra: []bankapi.DayRow{},
		Mismatched: []Mismatch{}, Hospitals: []HospitalPayout{}, NetFen: money.Fen(reply.NetFen)}
	key := func(r bankapi.DayRow) string { return r.Kind + "\x00" + r.ID }
	theirs := map[string]bankapi.DayRow{}
	for _, r := range reply.Rows {
		theirs[key(r)] = r
	}
	owed := map[string]money.Fen{}
	for _, r := range ours {
		if r.Kind == "draw" {
			rep.DrawsFen += money.Fen(r.AmountFen)
			owed[r.FixmedinsCode] += money.Fen(r.AmountFen)
		} else {
			rep.RepaymentsFen += money.Fen(r.AmountFen)
		}
		t, ok := theirs[key(r)]
		switch {
		case !ok:
			rep.Missing = append(rep.Missing, r)
		case t.AmountFen != r.AmountFen || t.AgreementNo != r.AgreementNo || (r.Kind == "draw" && t.FixmedinsCode != r.FixmedinsCode):
			rep.Mismatched = append(rep.Mismatched, Mismatch{Ours: r, Theirs: t})
		default:
			rep.Matched++
		}
		delete(theirs, key(r))
	}
	for _, r := range reply.Rows {
		if _, ok := theirs[key(r)]; ok {
			rep.Extra = append(rep.Extra, r)
		}
	}
	paid := map[string]money.Fen{}
	for _, p := range reply.Payouts {
		paid[p.FixmedinsCode] += money.Fen(p.AmountFen)
		rep.PayoutsFen += money.Fen(p.AmountFen)
	}
	var hs []string
	for h := range owed {
		hs = append(hs, h)
	}
	for h := range paid {
		if _, ok := owed[h]; !ok {
			hs = append(hs, h)
		}
	}
	slices.Sort(hs)
	for _, h := range hs {
		rep.Hospitals = append(rep.Hospitals, HospitalPayout{FixmedinsCode: h, Owed: owed[h], Paid: paid[h], Difference: paid[h] - owed[h]})
	}
	rep.Status = "matched"
	if len(rep.Missing)+len(rep.Extra)+len(rep.Mismatched) > 0 {
		rep.Status = "differences"
	}
	for _, h := range rep.Hospitals {
		if h.Difference != 0 {
			rep.Status = "differences"
		}
	}
	return rep
}

// DayReports lists the stored settlement-file reports, newest first.
func (s *Service) DayReports(ctx context.Context, limit int) ([]DayReport, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 || limit > 100 {
		limit = 30
	}
	rows, err := s.db.Query(ctx, `SELECT report FROM credit_day_files ORDER BY day DESC, bank_code LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []DayReport{}
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		var r DayReport
		if err := json.Unmarshal([]byte(b), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Exposure is the bureau's view of credit payment.
type Exposure struct {
	Banks []BankExposure `json:"banks"`
	Days  []DayFigures   `json:"days"` // the last 30 days, oldest first
}

// BankExposure sums one bank's agreements.
type BankExposure struct {
	BankCode    string    `json:"bank_code"`
	Name        string    `json:"name"`
	Agreements  int       `json:"agreements"`
	Active      int       `json:"active"`
	Suspended   int       `json:"suspended"`
	Limits      money.Fen `json:"limits"`      // granted on active agreements
	Outstanding money.Fen `json:"outstanding"` // posted, not repaid
	Held        money.Fen `json:"held"`        // pending holds and guarantees
	Overdue     money.Fen `json:"overdue"`
	OverdueRate float64   `json:"overdue_rate"` // overdue ÷ outstanding (a ratio for display, not money)
	Guarantees  int       `json:"open_guarantees"`
}

// DayFigures are one day's draws and repayments.
type DayFigures struct {
	Day        string    `json:"day"`
	Draws      money.Fen `json:"draws"`
	Repayments money.Fen `json:"repayments"`
}

// Exposure returns the figures for the bureau console.
func (s *Service) Exposure(ctx context.Context) (*Exposure, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	banks, err := s.Banks(ctx)
	if err != nil {
		return nil, err
	}
	out := &Exposure{Banks: []BankExposure{}, Days: []DayFigures{}}
	for _, b := range banks {
		e := BankExposure{BankCode: b.BankCode, Name: b.Name}
		err := s.db.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN status = 'active' THEN 1 ELSE 0 END), 0),
			COALESCE(SUM(CASE WHEN status = 'suspended' THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN status = 'active' THEN limit_fen ELSE 0 END), 0),
			COALESCE(SUM(outstanding), 0) FROM credit_agreements WHERE bank_code = ?`, b.BankCode).Scan(&e.Agreements, &e.Active, &e.Suspended, &e.Limits, &e.Outstanding)
		if err != nil {
			return nil, err
		}
		if err := s.db.QueryRow(ctx, `SELECT COALESCE(SUM(s.amount - s.repaid), 0) FROM credit_statements s JOIN credit_agreements a ON a.agreement_no = s.agreement_no
			WHERE a.bank_code = ? AND s.status = 'overdue'`, b.BankCode).Scan(&e.Overdue); err != nil {
			return nil, err
		}
		if err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM credit_guarantees g JOIN credit_agreements a ON a.agreement_no = g.agreement_no
			WHERE a.bank_code = ? AND g.status = 'open'`, b.BankCode).Scan(&e.Guarantees); err != nil {
			return nil, err
		}
		nos, err := s.db.Strings(ctx, `SELECT agreement_no FROM credit_agreements WHERE bank_code = ? AND status IN ('active', 'suspended')`, b.BankCode)
		if err != nil {
			return nil, err
		}
		for _, no := range nos {
			if acc, err := s.led.Account(ctx, line(no).ID); err == nil {
				e.Held += acc.DebitsPending
			}
		}
		if e.Outstanding > 0 {
			e.OverdueRate = float64(e.Overdue) / float64(e.Outstanding)
		}
		out.Banks = append(out.Banks, e)
	}
	now := s.now().In(yibao.ChinaTime)
	first := yibao.DateOf(now.AddDate(0, 0, -29))
	days := map[string]*DayFigures{}
	for i := 29; i >= 0; i-- {
		d := yibao.DateOf(now.AddDate(0, 0, -i))
		out.Days = append(out.Days, DayFigures{Day: d})
	}
	for i := range out.Days {
		days[out.Days[i].Day] = &out.Days[i]
	}
	for _, q := range []struct {
		sql string
		f   func(*DayFigures, money.Fen)
	}{
		{`SELECT day, SUM(amount) FROM credit_draws WHERE status = 'posted' AND day >= ? GROUP BY day`, func(d *DayFigures, v money.Fen) { d.Draws = v }},
		{`SELECT day, SUM(applied) FROM credit_repayments WHERE status = 'applied' AND day >= ? GROUP BY day`, func(d *DayFigures, v money.Fen) { d.Repayments = v }},
	} {
		rows, err := s.db.Query(ctx, q.sql, first)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var d string
			var v int64
			if err := rows.Scan(&d, &v); err != nil {
				rows.Close()
				return nil, err
			}
			if x, ok := days[d]; ok {
				q.f(x, money.Fen(v))
			}
		}
		rows.Close()
	}
	return out, nil
}

// Run drives the background work every interval until ctx ends: lost
// bank answers, lost wallet answers, guarantees that outgrew their holds,
// and the reminder/overdue cycle.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	yibao.Every(ctx, interval, s.Pass)
}

// Pass is one round of the background work.
func (s *Service) Pass(ctx context.Context) {
	ctx = sys(ctx)
	if _, err := s.RecoverApplications(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("credit applications", "err", err)
	}
	if _, err := s.RecoverRepayments(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("credit repayments", "err", err)
	}
	if _, err := s.GrowOpen(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("credit guarantees", "err", err)
	}
	if _, err := s.Cycle(ctx); err != nil && ctx.Err() == nil {
		s.log.Error("credit cycle", "err", err)
	}
}
