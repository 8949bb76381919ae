package bankapi_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"yibao/credit/bankapi"
	"yibao/gmcrypto"
)

// FuzzParseCallback: a correctly signed callback with any body is either
// a well-formed Callback or a refusal wrapping ErrMalformed; never a
// panic, never a callback without its event and agreement.
func FuzzParseCallback(f *testing.F) {
	for _, s := range []string{
		`{"type":"repayment","event_id":"E1","agreement_no":"CA1","bank_agreement_id":"BKA1","repayment":{"repay_id":"E1","agreement_no":"CA1","bank_agreement_id":"BKA1","channel":"counter","amount_fen":100,"paid_at":"2026-12-03T10:00:00Z"},"at":"2026-12-03T10:00:00Z"}`,
		`{"type":"limit_changed","event_id":"E2","agreement_no":"CA1","bank_agreement_id":"BKA1","limit_fen":-1}`,
		`{"type":"repayment","event_id":"E3","agreement_no":"CA1","bank_agreement_id":"BKA1","repayment":{"amount_fen":1e30}}`,
		`{"type":"closed"`,
		`[]`,
		`{"type":"suspended","event_id":"","agreement_no":"CA1"}`,
		"\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	key, _ := gmcrypto.GenerateKey(nil)
	nonces := bankapi.NewNonceCache(time.Minute)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, _ := http.NewRequest("POST", "http://platform/api/v1/credit/notify/yhbank", bytes.NewReader(body))
		if err := bankapi.SignRequest(req, body, "bank", key); err != nil {
			t.Fatal(err)
		}
		cb, err := bankapi.ParseCallback(req, body, "bank", key.Public(), time.Now(), nonces)
		if err != nil {
			return
		}
		if cb.EventID == "" || cb.AgreementNo == "" {
			t.Fatalf("accepted a callback without its event or agreement: %+v", cb)
		}
		if cb.Type == "repayment" && (cb.Repayment == nil || cb.Repayment.AmountFen <= 0) {
			t.Fatalf("accepted a repayment without a positive amount: %+v", cb)
		}
	})
}
