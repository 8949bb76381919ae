package pay

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"yibao"
	"yibao/audit"
	"yibao/ledger"
	"yibao/ledger/engine"
	"yibao/money"
	"yibao/pay/channel"
	"yibao/sqlstore"
)

// Refund kinds.
const (
	RefundCash = "cash" // part or all of the out-of-pocket leg; the insured legs stay
	RefundAll  = "all"  // the whole bill: the settlement is reversed and the out-of-pocket rest returned
	RefundLate = "late" // a payment that arrived after its order was voided goes straight back
)

// Refund states.
const (
	RefundProcessing = "processing"
	RefundSucceeded  = "succeeded"
	RefundAbnormal   = "abnormal" // the wallet could not return the money; a person follows up
)

// Refund is one refund of an order.
type Refund struct {
	RefundNo    string    `json:"refund_no"`
	OutRefundNo string    `json:"out_refund_no"`
	PayOrdID    string    `json:"pay_ord_id"`
	Kind        string    `json:"kind"`
	Amount      money.Fen `json:"amount"` // out-of-pocket fen returned through the channel
	Channel     string    `json:"channel"`
	OutTradeNo  string    `json:"out_trade_no"`
	Status      string    `json:"status"`
	RefundID    string    `json:"refund_id,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// RefundRequest asks for a refund. RefundNo is the caller's number: the
// same number again is the same refund, never a second one.
type RefundRequest struct {
	RefundNo string    `json:"refund_no"`
	Kind     string    `json:"kind"`             // cash or all
	Amount   money.Fen `json:"amount,omitempty"` // cash refunds: how much
	Reason   string    `json:"reason,omitempty"`
}

var refundNoRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

const refundCols = `refund_no, out_refund_no, pay_ord_id, kind, amount, channel, out_trade_no, status, refund_id, reason, created_by, created_at, updated_at`

func scanRefund(sc interface{ Scan(...any) error }) (*Refund, error) {
	var r Refund
	var c, u int64
	if err := sc.Scan(&r.RefundNo, &r.OutRefundNo, &r.PayOrdID, &r.Kind, &r.Amount, &r.Channel, &r.OutTradeNo, &r.Status, &r.RefundID, &r.Reason,
		&r.CreatedBy, &c, &u); err != nil {
		return nil, err
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(c), fromMicros(u)
	return &r, nil
}

func (s *Service) refunds(ctx context.Context, id string) ([]Refund, error) {
	rows, err := s.db.Query(ctx, `SELECT `+refundCols+` FROM payment_refunds WHERE pay_ord_id = ? ORDER BY created_at`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Refund
	for rows.Next() {
		r, err := scanRefund(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

// Refund returns money of a paid order. A cash refund returns part of
// the out-of-pocket leg (Σ never above what was paid: the reservation
// and the check are one conditional update); an "all" refund reverses
// the settlement and returns whatever out-of-pocket money is left.
func (s *Service) Refund(ctx context.Context, id string, r RefundRequest) (*Refund, error) {
	o, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	who, _ := yibao.RequirePrincipal(ctx)
	if !refundNoRe.MatchString(r.RefundNo) {
		return nil, yibao.FieldError("refund_no", "your refund number: 1–32 letters, digits, _ or -")
	}
	if prev, err := scanRefund(s.db.QueryRow(ctx, `SELECT `+refundCols+` FROM payment_refunds WHERE pay_ord_id = ? AND refund_no = ?`, id, r.RefundNo)); err == nil {
		if prev.Kind != r.Kind || (r.Kind == RefundCash && prev.Amount != r.Amount) {
			return nil, yibao.Errorf(yibao.CodeConflict, "refund %s of order %s exists with other figures", r.RefundNo, id)
		}
		return prev, nil // the same refund, asked again
	} else if !notFound(err) {
		return nil, err
	}
	if o.Status != StatusPaid && o.Status != StatusPartiallyRefunded {
		return nil, yibao.Errorf(yibao.CodePrecondition, "order %s is %s; only a paid order is refunded", id, o.Status)
	}
	if o.Channel == ChannelCredit {
		return nil, yibao.Errorf(yibao.CodePrecondition, "order %s was paid on credit; refunds of credit payments are not supported yet (the bank's draw would have to be reduced with them)", id)
	}
	left := o.SelfPay - o.Refunded
	switch r.Kind {
	case RefundCash:
		if r.Amount <= 0 {
			return nil, yibao.FieldError("amount", "a positive amount")
		}
		if r.Amount > left {
			return nil, yibao.Errorf(yibao.CodeInvalid, "refund_exceeds_paid: %s yuan asked, %s yuan of the out-of-pocket part is left", r.Amount, left)
		}
	case RefundAll:
		r.Amount = left
	default:
		return nil, yibao.FieldError("kind", "cash or all")
	}
	now := s.now()
	rf := &Refund{RefundNo: r.RefundNo, OutRefundNo: id + "-" + r.RefundNo, PayOrdID: id, Kind: r.Kind, Amount: r.Amount, Channel: o.Channel,
		OutTradeNo: o.OutTradeNo, Status: RefundProcessing, Reason: r.Reason, CreatedBy: who.ID(), CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		// A cash refund needs the settlement still standing: reversed
		// outside this order (POST /settlements/{id}/reverse, 2208), its
		// mirrored cash leg has already returned the money in our books.
		res, err := tx.Exec(ctx, `UPDATE payment_orders SET refunded = refunded + ?, version = version + 1, updated_at = ?
			WHERE pay_ord_id = ? AND version = ? AND refunded + ? <= self_pay AND status IN ('paid', 'partially_refunded')
			AND (? <> 'cash' OR EXISTS (SELECT 1 FROM settlements WHERE setl_id = payment_orders.setl_id AND status = 'completed'))`,
			int64(r.Amount), micros(now), id, o.version, int64(r.Amount), r.Kind)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			var status string
			if err := tx.QueryRow(ctx, `SELECT status FROM settlements WHERE setl_id = ?`, o.SetlID).Scan(&status); err == nil && status != "completed" && r.Kind == RefundCash {
				return yibao.Errorf(yibao.CodePrecondition, "settlement %s of order %s is %s: its out-of-pocket part was returned with it; a cash refund would return it twice (refund kind all sends the patient what is left)", o.SetlID, id, status)
			}
			return yibao.Errorf(yibao.CodeConflict, "order %s changed meanwhile (another refund?); look again", id)
		}
		if err := insertRefund(ctx, tx, rf); err != nil {
			return err
		}
		return event(ctx, tx, id, now, "refund_requested", fmt.Sprintf("%s %s: %s yuan out of pocket", r.Kind, r.RefundNo, r.Amount))
	})
	if err != nil {
		return nil, err
	}
	if err := s.drive(ctx, rf); err != nil {
		s.log.Warn("refund left for the recovery loop", "refund", rf.OutRefundNo, "err", err)
	}
	return s.refund(ctx, rf.OutRefundNo)
}

func insertRefund(ctx context.Context, tx *sqlstore.Tx, rf *Refund) error {
	_, err := tx.Exec(ctx, `INSERT INTO payment_refunds (`+refundCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?)`,
		rf.RefundNo, rf.OutRefundNo, rf.PayOrdID, rf.Kind, int64(rf.Amount), rf.Channel, rf.OutTradeNo, rf.Status, rf.Reason, rf.CreatedBy,
		micros(rf.CreatedAt), micros(rf.UpdatedAt))
	return err
}

func (s *Service) refund(ctx context.Context, outRefundNo string) (*Refund, error) {
	return scanRefund(s.db.QueryRow(ctx, `SELECT `+refundCols+` FROM payment_refunds WHERE out_refund_no = ?`, outRefundNo))
}

// refundLate returns a payment that arrived for an order that no longer
// wants it (voided, or an attempt the order moved past). Our books never
// took the money, so only the wallet moves.
func (s *Service) refundLate(ctx context.Context, o *Order, w *channel.Order) error {
	rf := &Refund{RefundNo: "late-" + w.OutTradeNo[len(w.OutTradeNo)-2:], PayOrdID: o.PayOrdID, Kind: RefundLate, Amount: money.Fen(w.Amount),
		Channel: o.Channel, OutTradeNo: w.OutTradeNo, Status: RefundProcessing, Reason: "payment arrived after the order was " + o.Status,
		CreatedBy: "system:pay", CreatedAt: s.now().UTC(), UpdatedAt: s.now().UTC()}
	rf.OutRefundNo = o.PayOrdID + "-" + rf.RefundNo
	err := s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		if err := insertRefund(ctx, tx, rf); err != nil {
			return err
		}
		return event(ctx, tx, o.PayOrdID, s.now(), "late_payment_refund", fmt.Sprintf("%s yuan of %s goes back", rf.Amount, w.OutTradeNo))
	})
	if sqlstore.IsUniqueViolation(err) {
		return nil // already on its way back
	}
	if err != nil {
		return err
	}
	return s.drive(ctx, rf)
}

// drive carries a refund forward: our books first (idempotent transfer
// ids, or the settlement's reversal), then the wallet (idempotent by
// out_refund_no, queried before it is asked again). It is safe to call
// again at any point; the recovery loop does so for refunds left
// processing.
func (s *Service) drive(ctx context.Context, rf *Refund) error {
	o, err := s.load(ctx, s.db, rf.PayOrdID)
	if err != nil {
		return err
	}
	switch rf.Kind {
	case RefundCash:
		from := ledger.ChannelClearing(o.Channel)
		if o.Channel == ChannelCounter {
			from = ledger.PatientCash(o.FixmedinsCode)
		}
		recv := ledger.HospitalReceivable(o.FixmedinsCode)
		_, err := s.led.Submit(ctx, engine.Unit{Accounts: []ledger.Account{from, recv}, Transfers: []ledger.Transfer{{ID: "refund:" + rf.OutRefundNo,
			DebitAccountID: recv.ID, CreditAccountID: from.ID, Amount: rf.Amount, Ledger: ledger.CNY, Code: "refund", UserData: o.SetlID, Leg: "psn_cash_pay"}}})
		if err != nil {
			return err
		}
	case RefundAll:
		if _, err := s.settle.ReverseRefunded(sys(ctx), o.SetlID, o.SelfPay-rf.Amount); err != nil {
			return err
		}
	}
	if rf.Kind != RefundLate {
		if err := s.afterRefundBooked(ctx, rf); err != nil {
			return err
		}
	}
	if o.Channel == ChannelCounter || rf.Amount == 0 {
		return s.refundDone(ctx, rf, RefundSucceeded, "")
	}
	ch, err := s.channel(rf.Channel)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ChargeTimeout)
	defer cancel()
	w, err := ch.QueryRefund(cctx, rf.OutTradeNo, rf.OutRefundNo)
	if errors.Is(err, channel.ErrNotFound) {
		var total int64
		if err := s.db.QueryRow(ctx, `SELECT amount FROM payment_attempts WHERE out_trade_no = ?`, rf.OutTradeNo).Scan(&total); err != nil {
			return err
		}
		w, err = ch.Refund(cctx, channel.RefundRequest{OutTradeNo: rf.OutTradeNo, OutRefundNo: rf.OutRefundNo, Amount: int64(rf.Amount), Total: total,
			Reason: rf.Reason, NotifyURL: s.notifyURL(rf.Channel)})
	}
	if err != nil {
		return err
	}
	return s.walletRefundState(ctx, rf.OutRefundNo, w)
}

// walletRefundState records what the wallet says of a refund.
func (s *Service) walletRefundState(ctx context.Context, outRefundNo string, w *channel.Refund) error {
	rf, err := s.refund(ctx, outRefundNo)
	if err != nil {
		return err
	}
	switch w.Status {
	case channel.RefundSuccess:
		return s.refundDone(ctx, rf, RefundSucceeded, w.RefundID)
	case channel.RefundAbnormal, channel.RefundClosed:
		return s.refundDone(ctx, rf, RefundAbnormal, w.RefundID)
	}
	return nil // processing: asked again later
}

func (s *Service) refundDone(ctx context.Context, rf *Refund, status, refundID string) error {
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE payment_refunds SET status = ?, refund_id = ?, updated_at = ? WHERE out_refund_no = ? AND status = 'processing'`,
			status, refundID, micros(s.now()), rf.OutRefundNo)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		if err := s.Audit.Record(ctx, tx, audit.Entry{ID: "refund:" + rf.OutRefundNo + ":" + status, Kind: audit.KindRefund, At: audit.Stamp(s.now()),
			Actor: rf.CreatedBy, Subject: rf.PayOrdID, Data: map[string]any{"pay_ord_id": rf.PayOrdID, "out_refund_no": rf.OutRefundNo,
				"refund_no": rf.RefundNo, "kind": rf.Kind, "amount": rf.Amount.String(), "channel": rf.Channel, "out_trade_no": rf.OutTradeNo,
				"status": status, "refund_id": refundID}}); err != nil {
			return err
		}
		return event(ctx, tx, rf.PayOrdID, s.now(), "refund_"+status, fmt.Sprintf("%s: %s yuan %s", rf.RefundNo, rf.Amount, refundID))
	})
}

// afterRefundBooked moves the order's state once the refund is in our
// books.
func (s *Service) afterRefundBooked(ctx context.Context, rf *Refund) error {
	return s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		o, err := s.load(ctx, tx, rf.PayOrdID)
		if err != nil {
			return err
		}
		c := change{from: []string{StatusPaid, StatusPartiallyRefunded}, event: "refund_booked", detail: rf.RefundNo, topic: "payment.refunded"}
		switch {
		case rf.Kind == RefundAll:
			c.status, c.fund, c.acct, c.self = StatusRefunded, legState(o.FundPay, LegRefunded), legState(o.AcctPay, LegRefunded), legState(o.SelfPay, LegRefunded)
		case o.Refunded >= o.SelfPay:
			c.status, c.self = StatusPartiallyRefunded, LegRefunded
		default:
			c.status, c.self = StatusPartiallyRefunded, LegPartiallyRefunded
		}
		if o.Status == c.status && o.selfState == c.self {
			return nil // booked before (a re-drive)
		}
		_, err = s.transition(ctx, tx, o, c)
		return err
	})
}
