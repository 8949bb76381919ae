package bankapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"yibao/gmcrypto"
)

// ParseCallback verifies a bank's callback received by the platform's
// notify endpoint (see VerifyRequest) and decodes it. Verification errors
// wrap ErrBadSignature, ErrStaleTimestamp or ErrReplayed, a body that is
// not a well-formed Callback ErrMalformed; answer them with Refusal.
func ParseCallback(r *http.Request, body []byte, bankKeyID string, bankKey *gmcrypto.PublicKey, now time.Time, nonces *NonceCache) (*Callback, error) {
	if err := VerifyRequest(r, body, bankKeyID, bankKey, now, nonces); err != nil {
		return nil, err
	}
	var cb Callback
	if err := json.Unmarshal(body, &cb); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := cb.check(); err != nil {
		return nil, err
	}
	return &cb, nil
}

func (cb *Callback) check() error {
	bad := func(msg string) error { return fmt.Errorf("%w: callback %s", ErrMalformed, msg) }
	switch {
	case cb.EventID == "":
		return bad("without event_id")
	case cb.AgreementNo == "" || cb.BankAgreementID == "":
		return bad("without agreement_no/bank_agreement_id")
	}
	switch cb.Type {
	case CallbackRepayment:
		rp := cb.Repayment
		switch {
		case rp == nil:
			return bad("of type repayment without a repayment")
		case rp.RepayID != cb.EventID:
			return bad("repayment whose event_id is not its repay_id")
		case rp.AmountFen <= 0:
			return bad("repayment of a non-positive amount")
		case rp.AgreementNo != cb.AgreementNo || rp.BankAgreementID != cb.BankAgreementID:
			return bad("repayment for another agreement")
		}
	case CallbackLimitChanged:
		if cb.LimitFen < 0 {
			return bad("with a negative limit")
		}
	case CallbackSuspended, CallbackReinstated, CallbackClosed:
	default:
		return bad(fmt.Sprintf("of unknown type %q", cb.Type))
	}
	return nil
}

// SendCallback posts cb, signed with key, to the platform's notify url
// (client nil: a client with a 15 s timeout). Any 2xx answer means
// delivered; another status is returned as an *Error, a transport failure
// wrapped.
func SendCallback(ctx context.Context, client *http.Client, url string, cb Callback, keyID string, key *gmcrypto.PrivateKey) error {
	body, err := json.Marshal(cb)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if err := SignRequest(req, body, keyID, key); err != nil {
		return err
	}
	if client == nil {
		client = defaultHTTP
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("bankapi: callback %s to %s: %w", cb.EventID, url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp.StatusCode, rb)
	}
	return nil
}
