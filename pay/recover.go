package pay

import (
	"context"
	"errors"
	"time"

	"yibao"
	"yibao/pay/channel"
)

// check asks the wallet about an order whose out-of-pocket leg is in
// flight and acts on the answer: paid, refused, still open. A charge the
// wallet never saw is sent again under the same order number, which the
// wallet treats as the same charge; a new number is never used for an
// unknown outcome.
func (s *Service) check(ctx context.Context, id string) {
	o, err := s.load(ctx, s.db, id)
	if err != nil || o.Status != StatusPaying || o.OutTradeNo == "" {
		return
	}
	if o.Channel == ChannelCredit {
		s.drawCredit(ctx, id)
		return
	}
	ch, err := s.channel(o.Channel)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ChargeTimeout)
	defer cancel()
	w, err := ch.Query(cctx, o.OutTradeNo)
	switch {
	case err == nil && w.State == channel.StateSuccess,
		err == nil && (w.State == channel.StateClosed || w.State == channel.StatePayError):
		s.afterCharge(ctx, o, w, nil)
		return
	case err == nil && w.State == channel.StateNotPay && o.selfState == LegAwaiting:
		if s.expired(ctx, o) {
			if _, err := s.Cancel(sys(ctx), id); err != nil {
				s.log.Warn("closing an expired mobile payment", "order", id, "err", err)
			}
			return
		}
	case errors.Is(err, channel.ErrNotFound) && o.selfState == LegPaying && o.AgreementNo != "":
		ag, aerr := scanAgreement(s.db.QueryRow(ctx, `SELECT `+agreementCols+` FROM withholding_agreements WHERE agreement_no = ?`, o.AgreementNo))
		if aerr == nil {
			s.note(ctx, id, "charge_resent", "the wallet has no order "+o.OutTradeNo+"; sending the same charge again")
			w, err = ch.Charge(cctx, channel.ChargeRequest{OutTradeNo: o.OutTradeNo, Amount: int64(o.SelfPay), Description: "医保自付 " + o.SetlID,
				AgreementID: ag.WalletID, PayerRef: ag.PayerRef, NotifyURL: s.notifyURL(o.Channel)})
			if err == nil && w.State == channel.StateSuccess || channel.IsDeclined(err) {
				s.afterCharge(ctx, o, w, err)
				return
			}
		}
	}
	// Still open: look again later, backing off with the order's age.
	wait := s.now().Sub(o.CreatedAt) / 4
	wait = max(s.cfg.CheckAfter, min(wait, s.cfg.CheckMax))
	if _, err := s.db.Exec(ctx, `UPDATE payment_orders SET check_at = ? WHERE pay_ord_id = ? AND status = 'paying'`, micros(s.now().Add(wait)), id); err != nil {
		s.log.Error("scheduling a payment check", "order", id, "err", err)
	}
}

// expired reports whether the order's pending settlement is past its
// time: a payer who has not confirmed by then does not pay at all.
func (s *Service) expired(ctx context.Context, o *Order) bool {
	var exp int64
	if err := s.db.QueryRow(ctx, `SELECT expires_at FROM settlements WHERE setl_id = ?`, o.SetlID).Scan(&exp); err != nil {
		return false
	}
	return exp > 0 && s.now().UnixMicro() >= exp
}

// Sweep is one pass of the recovery loop: orders in flight whose check
// time has come, refunds still processing, and declined or paying orders
// whose settlement was voided by the expiry sweeper. It returns how many
// it looked at.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	ctx = sys(ctx)
	now := micros(s.now())
	ids, err := s.db.Strings(ctx, `SELECT pay_ord_id FROM payment_orders WHERE status = 'paying' AND check_at > 0 AND check_at <= ? ORDER BY check_at LIMIT 200`, now)
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		s.check(ctx, id)
	}
	n := len(ids)
	refunds, err := s.db.Strings(ctx, `SELECT out_refund_no FROM payment_refunds WHERE status = 'processing' AND updated_at <= ? LIMIT 200`,
		micros(s.now().Add(-s.cfg.CheckAfter)))
	if err != nil {
		return n, err
	}
	for _, no := range refunds {
		rf, err := s.refund(ctx, no)
		if err != nil {
			return n, err
		}
		if err := s.drive(ctx, rf); err != nil {
			s.log.Warn("refund still open", "refund", no, "err", err)
		}
		if _, err := s.db.Exec(ctx, `UPDATE payment_refunds SET updated_at = ? WHERE out_refund_no = ? AND status = 'processing'`, micros(s.now()), no); err != nil {
			return n, err
		}
	}
	n += len(refunds)
	voided, err := s.db.Strings(ctx, `SELECT o.pay_ord_id FROM payment_orders o JOIN settlements st ON st.setl_id = o.setl_id
		WHERE o.status IN ('declined', 'paying') AND st.status = 'voided' LIMIT 200`)
	if err != nil {
		return n, err
	}
	for _, id := range voided {
		o, err := s.load(ctx, s.db, id)
		if err != nil {
			return n, err
		}
		if o.Status == StatusPaying && o.selfState == LegPaying {
			continue // outcome unknown: check() resolves it first
		}
		if o.selfState == LegAwaiting {
			// The payer could still confirm the wallet order: close it first.
			if ch, err := s.channel(o.Channel); err == nil {
				if err := ch.Close(ctx, o.OutTradeNo); err != nil && !errors.Is(err, channel.ErrNotFound) {
					s.log.Warn("closing the wallet order of an expired settlement", "order", id, "err", err)
					continue
				}
				if w, err := ch.Query(ctx, o.OutTradeNo); err == nil && w.State == channel.StateSuccess {
					if _, err := s.finish(ctx, id, w, "paid before the close"); err != nil { // voided: refunds it
						return n, err
					}
					continue
				}
			}
		}
		if err := s.markVoided(ctx, o, "the settlement expired unpaid"); err != nil {
			return n, err
		}
	}
	return n + len(voided), nil
}

// Run sweeps every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	yibao.Every(ctx, interval, func(ctx context.Context) {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("payment recovery", "err", err)
		}
	})
}
