package pay

import (
	"context"
	"errors"
	"fmt"

	"yibao"
	"yibao/money"
	"yibao/pay/channel"
	"yibao/sqlstore"
)

// ErrOrphan is a notification for an order we do not know (yet): it is
// refused so that the wallet sends it again, by which time the order's
// own transaction has committed.
var ErrOrphan = errors.New("pay: notification for an unknown order")

// Notify applies a verified wallet notification once. Duplicates find
// their row and change nothing; a payment whose amount differs from our
// order is held for review, never posted.
func (s *Service) Notify(ctx context.Context, chName string, n *channel.Notification) error {
	ctx = sys(ctx)
	var seen string
	err := s.db.QueryRow(ctx, `SELECT outcome FROM channel_notifications WHERE channel = ? AND notify_id = ?`, chName, n.ID).Scan(&seen)
	if err == nil {
		return nil // a duplicate: acknowledged, no effect
	}
	if !notFound(err) {
		return err
	}
	outcome, trade, detail, err := s.apply(ctx, chName, n)
	if err != nil {
		return err
	}
	_, err = s.db.Exec(ctx, `INSERT INTO channel_notifications (channel, notify_id, kind, out_trade_no, outcome, detail, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		chName, n.ID, n.Kind, trade, outcome, detail, micros(s.now()))
	if sqlstore.IsUniqueViolation(err) {
		return nil // the same notification raced itself; the effect is idempotent
	}
	return err
}

func (s *Service) apply(ctx context.Context, chName string, n *channel.Notification) (outcome, trade, detail string, err error) {
	switch n.Kind {
	case channel.NotifyPayment:
		w := n.Order
		if w == nil {
			return "", "", "", yibao.Errorf(yibao.CodeInvalid, "payment notification without an order")
		}
		var id string
		var amount int64
		err := s.db.QueryRow(ctx, `SELECT pay_ord_id, amount FROM payment_attempts WHERE out_trade_no = ? AND channel = ?`, w.OutTradeNo, chName).Scan(&id, &amount)
		if notFound(err) {
			s.log.Warn("wallet notification for an unknown order; refused so it comes again", "channel", chName, "out_trade_no", w.OutTradeNo)
			return "", "", "", ErrOrphan
		}
		if err != nil {
			return "", "", "", err
		}
		if w.State != channel.StateSuccess {
			return "no_effect", w.OutTradeNo, "state " + w.State, nil
		}
		if w.Amount != amount {
			o, err := s.load(ctx, s.db, id)
			if err != nil {
				return "", "", "", err
			}
			why := fmt.Sprintf("amount_mismatch: notification %s says %s yuan, attempt %s is %s yuan", n.ID, money.Fen(w.Amount), w.OutTradeNo, money.Fen(amount))
			if o.Status == StatusPaying || o.Status == StatusDeclined {
				if err := s.hold(ctx, o, why); err != nil {
					return "", "", "", err
				}
			} else {
				s.note(ctx, id, "notification_mismatch", why)
			}
			return "held", w.OutTradeNo, why, nil
		}
		before, err := s.load(ctx, s.db, id)
		if err != nil {
			return "", "", "", err
		}
		after, err := s.finish(ctx, id, w, "notification "+n.ID)
		if err != nil {
			return "", "", "", err
		}
		if before.Status == after.Status {
			return "no_effect", w.OutTradeNo, "order already " + after.Status, nil
		}
		return "applied", w.OutTradeNo, "order " + after.Status, nil
	case channel.NotifyRefund:
		r := n.Refund
		if r == nil {
			return "", "", "", yibao.Errorf(yibao.CodeInvalid, "refund notification without a refund")
		}
		if _, err := s.refund(ctx, r.OutRefundNo); notFound(err) {
			return "", "", "", ErrOrphan
		} else if err != nil {
			return "", "", "", err
		}
		if err := s.walletRefundState(ctx, r.OutRefundNo, r); err != nil {
			return "", "", "", err
		}
		return "applied", r.OutTradeNo, "refund " + r.OutRefundNo + " " + r.Status, nil
	case channel.NotifyAgreement:
		a := n.Agreement
		if a == nil {
			return "", "", "", yibao.Errorf(yibao.CodeInvalid, "agreement notification without an agreement")
		}
		if a.State == channel.AgreementTerminated {
			// Ended by the payer in the wallet app: stop using it at once.
			if _, err := s.db.Exec(ctx, `UPDATE withholding_agreements SET status = 'revoked', updated_at = ? WHERE agreement_no = ? OR (wallet_id = ? AND wallet_id <> '')`,
				micros(s.now()), a.ExternalNo, a.AgreementID); err != nil {
				return "", "", "", err
			}
			return "applied", "", "agreement " + a.ExternalNo + " terminated at the wallet", nil
		}
		return "no_effect", "", "agreement " + a.ExternalNo + " " + a.State, nil
	}
	return "no_effect", "", "kind " + n.Kind, nil
}

// Channel returns a configured wallet adapter (the notification endpoint
// verifies callbacks with it before Notify sees them).
func (s *Service) Channel(name string) (channel.Channel, error) { return s.channel(name) }
