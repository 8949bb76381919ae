package pay

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"yibao"
	"yibao/gmcrypto"
	"yibao/money"
	"yibao/pay/channel"
	"yibao/sqlstore"
)

// Agreement states.
const (
	AgreementSigning = "signing"
	AgreementActive  = "active"
	AgreementRevoked = "revoked"
	AgreementFailed  = "failed"
)

// MaxAgreementLimit caps what one withholding payment may take (the
// wallets' own per-payment limits for 免密 payments are of this order).
const MaxAgreementLimit = money.Fen(500000) // 5,000 yuan

// Agreement is a withholding agreement (免密代扣).
type Agreement struct {
	AgreementNo string    `json:"agreement_no"`
	PsnNo       string    `json:"psn_no"`
	Channel     string    `json:"channel"`
	PayerRef    string    `json:"payer_ref"`
	Limit       money.Fen `json:"limit"`
	Status      string    `json:"status"`
	WalletID    string    `json:"wallet_agreement_id,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// PayerRef is the person's account at a wallet. In production it comes
// from the channel's binding of the e-certificate (WeChat openid, Alipay
// buyer id); the demo and the simulators derive it from the person number
// the same way on both sides.
func PayerRef(ch, psnNo string) string {
	h := gmcrypto.SM3([]byte(ch + "|" + psnNo))
	switch ch {
	case "alipay":
		return fmt.Sprintf("2088%012d", binary.BigEndian.Uint64(h[:8])%1_000_000_000_000)
	default:
		return "o" + strings.ToLower(fmt.Sprintf("%X", h[:14]))
	}
}

const agreementCols = `agreement_no, psn_no, channel, payer_ref, limit_fen, status, wallet_id, created_at, updated_at`

func scanAgreement(sc interface{ Scan(...any) error }) (*Agreement, error) {
	var a Agreement
	var c, u int64
	if err := sc.Scan(&a.AgreementNo, &a.PsnNo, &a.Channel, &a.PayerRef, &a.Limit, &a.Status, &a.WalletID, &c, &u); err != nil {
		return nil, err
	}
	a.CreatedAt, a.UpdatedAt = fromMicros(c), fromMicros(u)
	return &a, nil
}

// Agreements lists a person's agreements, newest first.
func (s *Service) Agreements(ctx context.Context, psnNo string) ([]Agreement, error) {
	rows, err := s.db.Query(ctx, `SELECT `+agreementCols+` FROM withholding_agreements WHERE psn_no = ? ORDER BY created_at DESC`, psnNo)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Agreement{}
	for rows.Next() {
		a, err := scanAgreement(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *a)
	}
	return out, rows.Err()
}

// activeAgreement finds the person's active agreement with a channel
// ("auto": any, the newest first).
func (s *Service) activeAgreement(ctx context.Context, psnNo, ch string) (*Agreement, error) {
	q := `SELECT ` + agreementCols + ` FROM withholding_agreements WHERE psn_no = ? AND status = 'active'`
	args := []any{psnNo}
	if ch != "auto" {
		q += ` AND channel = ?`
		args = append(args, ch)
	}
	a, err := scanAgreement(s.db.QueryRow(ctx, q+` ORDER BY created_at DESC LIMIT 1`, args...))
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodePrecondition,
			"no_withholding_agreement: the patient has no active wallet agreement%s; collect at the counter or push the bill to the phone", forChannel(ch))
	}
	return a, err
}

func forChannel(ch string) string {
	if ch == "auto" {
		return ""
	}
	return " with " + ch
}

// SignAgreement lets the platform charge psnNo's wallet for out-of-pocket
// amounts up to limit per payment. The person asks for it in the app; the
// wallet confirms it with its own consent step. One active agreement per
// person and channel.
func (s *Service) SignAgreement(ctx context.Context, psnNo, chName string, limit money.Fen) (*Agreement, error) {
	ch, err := s.channel(chName)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxAgreementLimit {
		return nil, yibao.FieldError("limit", "a per-payment limit between 0.01 and %s yuan", MaxAgreementLimit)
	}
	now := s.now()
	a := &Agreement{AgreementNo: newID("AG"), PsnNo: psnNo, Channel: chName, PayerRef: PayerRef(chName, psnNo), Limit: limit,
		Status: AgreementSigning, CreatedAt: now.UTC(), UpdatedAt: now.UTC()}
	err = s.db.WriteTx(ctx, func(tx *sqlstore.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT COUNT(*) FROM withholding_agreements WHERE psn_no = ? AND channel = ? AND status IN ('active', 'signing')`,
			psnNo, chName).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return yibao.Errorf(yibao.CodeConflict, "agreement_exists: there is already an agreement with %s; revoke it first", chName)
		}
		_, err := tx.Exec(ctx, `INSERT INTO withholding_agreements (`+agreementCols+`) VALUES (?, ?, ?, ?, ?, ?, '', ?, ?)`,
			a.AgreementNo, a.PsnNo, a.Channel, a.PayerRef, int64(a.Limit), a.Status, micros(now), micros(now))
		return err
	})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.ChargeTimeout)
	w, err := ch.SignAgreement(cctx, channel.AgreementRequest{ExternalNo: a.AgreementNo, PayerRef: a.PayerRef, Limit: int64(limit), NotifyURL: s.notifyURL(chName)})
	cancel()
	status, walletID := AgreementActive, ""
	if err != nil || w.State != channel.AgreementActive {
		status = AgreementFailed
		s.log.Warn("withholding agreement not signed", "agreement", a.AgreementNo, "err", err)
	} else {
		walletID = w.AgreementID
	}
	if _, err := s.db.Exec(ctx, `UPDATE withholding_agreements SET status = ?, wallet_id = ?, updated_at = ? WHERE agreement_no = ?`,
		status, walletID, micros(s.now()), a.AgreementNo); err != nil {
		return nil, err
	}
	if status == AgreementFailed {
		return nil, yibao.Errorf(yibao.CodeUnavailable, "the wallet did not confirm the agreement: %v", err)
	}
	a.Status, a.WalletID = status, walletID
	return a, nil
}

// RevokeAgreement ends an agreement. Locally first: from that moment no
// charge uses it, whatever the wallet answers; then at the wallet.
func (s *Service) RevokeAgreement(ctx context.Context, psnNo, agreementNo string) (*Agreement, error) {
	a, err := scanAgreement(s.db.QueryRow(ctx, `SELECT `+agreementCols+` FROM withholding_agreements WHERE agreement_no = ? AND psn_no = ?`, agreementNo, psnNo))
	if notFound(err) {
		return nil, yibao.Errorf(yibao.CodeNotFound, "agreement %s not found", agreementNo)
	}
	if err != nil {
		return nil, err
	}
	if a.Status == AgreementRevoked {
		return a, nil
	}
	if _, err := s.db.Exec(ctx, `UPDATE withholding_agreements SET status = 'revoked', updated_at = ? WHERE agreement_no = ?`, micros(s.now()), agreementNo); err != nil {
		return nil, err
	}
	a.Status = AgreementRevoked
	if a.WalletID != "" {
		if ch, err := s.channel(a.Channel); err == nil {
			if err := ch.TerminateAgreement(ctx, a.WalletID); err != nil {
				s.log.Warn("agreement revoked here but not at the wallet; the wallet's own expiry or the next revoke ends it", "agreement", agreementNo, "err", err)
			}
		}
	}
	return a, nil
}
