package pay

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"yibao"
	"yibao/money"
	"yibao/pay/channel"
)

// Difference kinds of a reconciliation.
const (
	DiffMissingInBill = "missing_in_bill" // we recorded it, the wallet's bill does not have it
	DiffMissingHere   = "missing_here"    // the wallet's bill has it, we have no record
	DiffAmount        = "amount_differs"
	DiffState         = "state_differs"
)

// Difference is one row that does not match.
type Difference struct {
	Kind          string    `json:"kind"`
	Row           string    `json:"row"` // payment or refund
	OutTradeNo    string    `json:"out_trade_no"`
	OutRefundNo   string    `json:"out_refund_no,omitempty"`
	TransactionID string    `json:"transaction_id,omitempty"`
	PayOrdID      string    `json:"pay_ord_id,omitempty"`
	Ours          money.Fen `json:"ours"`
	Theirs        money.Fen `json:"theirs"`
	Detail        string    `json:"detail"`
}

// Totals sums one side of a day.
type Totals struct {
	Payments   int       `json:"payments"`
	PaymentSum money.Fen `json:"payment_sum"`
	Refunds    int       `json:"refunds"`
	RefundSum  money.Fen `json:"refund_sum"`
}

// Report is one reconciliation of a channel's day.
type Report struct {
	ID          string       `json:"id"`
	Channel     string       `json:"channel"`
	Date        string       `json:"bill_date"`
	RunAt       time.Time    `json:"run_at"`
	Ours        Totals       `json:"ours"`
	Theirs      Totals       `json:"theirs"`
	Matched     int          `json:"matched"`
	Differences []Difference `json:"differences"`
}

// Summary is the report in a few sentences for the bureau.
func (r *Report) Summary() string {
	if len(r.Differences) == 0 {
		return fmt.Sprintf("%s %s: all %d rows match. Payments %d (%s yuan), refunds %d (%s yuan) on both sides.",
			r.Channel, r.Date, r.Matched, r.Ours.Payments, r.Ours.PaymentSum, r.Ours.Refunds, r.Ours.RefundSum)
	}
	count := map[string]int{}
	for _, d := range r.Differences {
		count[d.Kind]++
	}
	return fmt.Sprintf("%s %s: %d rows match, %d differ (missing in the wallet's bill %d, missing here %d, amount %d, state %d). "+
		"Ours: %d payments %s yuan, %d refunds %s yuan. Wallet: %d payments %s yuan, %d refunds %s yuan.",
		r.Channel, r.Date, r.Matched, len(r.Differences), count[DiffMissingInBill], count[DiffMissingHere], count[DiffAmount], count[DiffState],
		r.Ours.Payments, r.Ours.PaymentSum, r.Ours.Refunds, r.Ours.RefundSum, r.Theirs.Payments, r.Theirs.PaymentSum, r.Theirs.Refunds, r.Theirs.RefundSum)
}

type ourRow struct {
	key, payOrd, trade string
	amount             money.Fen
}

// Reconcile downloads a channel's bill for a day (YYYY-MM-DD, China time)
// and matches it row by row against our paid attempts and finished
// refunds of that day. Every row missing on either side or differing in
// amount is reported; the report is stored. Administrators only.
func (s *Service) Reconcile(ctx context.Context, chName, date string) (*Report, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	ch, err := s.channel(chName)
	if err != nil {
		return nil, err
	}
	day, err := time.ParseInLocation(time.DateOnly, date, yibao.ChinaTime)
	if err != nil {
		return nil, yibao.FieldError("date", "a day as YYYY-MM-DD")
	}
	from, to := micros(day), micros(day.AddDate(0, 0, 1))
	bill, err := ch.Bill(ctx, date)
	if err != nil {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "downloading the %s bill of %s: %v", chName, date, err)
	}
	pays, err := s.ourRows(ctx, `SELECT out_trade_no, pay_ord_id, out_trade_no, amount FROM payment_attempts
		WHERE channel = ? AND status = 'paid' AND paid_at >= ? AND paid_at < ?`, chName, from, to)
	if err != nil {
		return nil, err
	}
	refs, err := s.ourRows(ctx, `SELECT out_refund_no, pay_ord_id, out_trade_no, amount FROM payment_refunds
		WHERE channel = ? AND status = 'succeeded' AND amount > 0 AND updated_at >= ? AND updated_at < ?`, chName, from, to)
	if err != nil {
		return nil, err
	}
	rep := &Report{ID: newID("RC"), Channel: chName, Date: date, RunAt: s.now().UTC(), Differences: []Difference{}}
	for _, p := range pays {
		rep.Ours.Payments++
		rep.Ours.PaymentSum += p.amount
	}
	for _, r := range refs {
		rep.Ours.Refunds++
		rep.Ours.RefundSum += r.amount
	}
	theirs := map[string]channel.BillRow{}
	for _, b := range bill {
		key := b.OutTradeNo
		if b.Kind == channel.BillRefund {
			key = "R:" + b.OutRefundNo
			rep.Theirs.Refunds++
			rep.Theirs.RefundSum += money.Fen(b.Amount)
		} else {
			rep.Theirs.Payments++
			rep.Theirs.PaymentSum += money.Fen(b.Amount)
		}
		theirs[key] = b
	}
	match := func(row string, ours map[string]ourRow, prefix string) {
		for k, o := range ours {
			b, ok := theirs[prefix+k]
			if !ok {
				rep.Differences = append(rep.Differences, Difference{Kind: DiffMissingInBill, Row: row, OutTradeNo: o.trade, OutRefundNo: refundNo(prefix, k),
					PayOrdID: o.payOrd, Ours: o.amount, Detail: "recorded here, absent from the wallet's bill"})
				continue
			}
			delete(theirs, prefix+k)
			switch {
			case money.Fen(b.Amount) != o.amount:
				rep.Differences = append(rep.Differences, Difference{Kind: DiffAmount, Row: row, OutTradeNo: o.trade, OutRefundNo: refundNo(prefix, k),
					TransactionID: b.TransactionID, PayOrdID: o.payOrd, Ours: o.amount, Theirs: money.Fen(b.Amount),
					Detail: fmt.Sprintf("%s yuan here, %s yuan in the bill", o.amount, money.Fen(b.Amount))})
			case row == channel.BillPayment && b.State != "" && b.State != channel.StateSuccess && b.State != channel.StateRefund:
				rep.Differences = append(rep.Differences, Difference{Kind: DiffState, Row: row, OutTradeNo: o.trade, TransactionID: b.TransactionID,
					PayOrdID: o.payOrd, Ours: o.amount, Theirs: money.Fen(b.Amount), Detail: "paid here, " + b.State + " in the bill"})
			default:
				rep.Matched++
			}
		}
	}
	match(channel.BillPayment, pays, "")
	match(channel.BillRefund, refs, "R:")
	for _, b := range theirs {
		rep.Differences = append(rep.Differences, Difference{Kind: DiffMissingHere, Row: b.Kind, OutTradeNo: b.OutTradeNo, OutRefundNo: b.OutRefundNo,
			TransactionID: b.TransactionID, Theirs: money.Fen(b.Amount), Detail: "in the wallet's bill, no record here"})
	}
	sort.Slice(rep.Differences, func(i, j int) bool {
		a, b := rep.Differences[i], rep.Differences[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.OutTradeNo+a.OutRefundNo < b.OutTradeNo+b.OutRefundNo
	})
	body, _ := json.Marshal(rep)
	if _, err := s.db.Exec(ctx, `INSERT INTO reconciliations (id, channel, bill_date, run_at, matched, differences, report) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		rep.ID, chName, date, micros(rep.RunAt), rep.Matched, len(rep.Differences), string(body)); err != nil {
		return nil, err
	}
	return rep, nil
}

func refundNo(prefix, key string) string {
	if prefix == "" {
		return ""
	}
	return key
}

func (s *Service) ourRows(ctx context.Context, q string, args ...any) (map[string]ourRow, error) {
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]ourRow{}
	for rows.Next() {
		var r ourRow
		if err := rows.Scan(&r.key, &r.payOrd, &r.trade, &r.amount); err != nil {
			return nil, err
		}
		out[r.key] = r
	}
	return out, rows.Err()
}

// Reconciliations lists stored reports, newest first (channel and date
// optional). Administrators only.
func (s *Service) Reconciliations(ctx context.Context, chName, date string) ([]Report, error) {
	if err := yibao.RequireAdmin(ctx); err != nil {
		return nil, err
	}
	q := `SELECT report FROM reconciliations WHERE 1 = 1`
	var args []any
	if chName != "" {
		q, args = q+` AND channel = ?`, append(args, chName)
	}
	if date != "" {
		q, args = q+` AND bill_date = ?`, append(args, date)
	}
	rows, err := s.db.Query(ctx, q+` ORDER BY run_at DESC LIMIT 50`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Report{}
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
