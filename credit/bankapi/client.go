package bankapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"yibao/gmcrypto"
)

// defaultHTTP is used when a Client or SendCallback has no *http.Client.
var defaultHTTP = &http.Client{Timeout: 15 * time.Second}

// Client is the platform's side of the protocol with one bank.
type Client struct {
	BaseURL   string               // the bank's base URL, e.g. https://bank.example/api
	KeyID     string               // the platform's key id at this bank
	Key       *gmcrypto.PrivateKey // the platform's key: signs requests
	BankKeyID string               // the bank's key id: answers must name it
	BankKey   *gmcrypto.PublicKey  // verifies the bank's answers
	HTTP      *http.Client         // nil: a client with a 15 s timeout
}

// Apply asks for a credit line. Repeating it with the same ApplyID and
// body returns the same decision.
func (c *Client) Apply(ctx context.Context, a ApplyRequest) (*Decision, error) {
	var d Decision
	if err := c.do(ctx, http.MethodPost, "/credit/applications", a, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Application looks up the decision on an application; a 404 NOT_FOUND
// *Error means the bank never received it.
func (c *Client) Application(ctx context.Context, applyID string) (*Decision, error) {
	var d Decision
	if err := c.do(ctx, http.MethodGet, "/credit/applications/"+url.PathEscape(applyID), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Draw notifies the bank of a draw on a credit line (idempotent by DrawID).
func (c *Client) Draw(ctx context.Context, d DrawNotice) error {
	var a Accepted
	if err := c.do(ctx, http.MethodPost, "/credit/draws", d, &a); err != nil {
		return err
	}
	return accepted(a, "accepted")
}

// Repaid notifies the bank of a repayment the platform collected
// (idempotent by RepayID).
func (c *Client) Repaid(ctx context.Context, r Repayment) error {
	var a Accepted
	if err := c.do(ctx, http.MethodPost, "/credit/repayments", r, &a); err != nil {
		return err
	}
	return accepted(a, "accepted")
}

// Report sends the platform's view of an agreement.
func (c *Client) Report(ctx context.Context, s StatusReport) error {
	var a Accepted
	if err := c.do(ctx, http.MethodPost, "/credit/status", s, &a); err != nil {
		return err
	}
	return accepted(a, "recorded")
}

// Agreement returns the bank's view of an agreement.
func (c *Client) Agreement(ctx context.Context, bankAgreementID string) (*AgreementState, error) {
	var s AgreementState
	if err := c.do(ctx, http.MethodGet, "/credit/agreements/"+url.PathEscape(bankAgreementID), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// SubmitDay sends the platform's record of a day and returns the bank's.
func (c *Client) SubmitDay(ctx context.Context, f DayFile) (*DayReply, error) {
	var r DayReply
	if err := c.do(ctx, http.MethodPost, "/credit/settlement-files", f, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func accepted(a Accepted, want string) error {
	if a.Status != want {
		return fmt.Errorf("%w: status %q, want %q", ErrMalformed, a.Status, want)
	}
	return nil
}

// do sends a signed request and verifies, then decodes, the answer.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("%w: %v", ErrNotSent, err)
		}
	}
	target := strings.TrimRight(c.BaseURL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotSent, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if err := SignRequest(req, body, c.KeyID, c.Key); err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("bankapi: %s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return fmt.Errorf("bankapi: %s %s: reading the answer: %w", method, target, err)
	}
	if len(rb) > MaxBody {
		return fmt.Errorf("bankapi: %s %s: %w: answer over %d bytes", method, target, ErrMalformed, MaxBody)
	}
	if err := verifyResponse(resp, req.URL.RequestURI(), req.Header.Get(HeaderNonce), rb, c.BankKeyID, c.BankKey, time.Now()); err != nil {
		return fmt.Errorf("bankapi: %s %s: %w", method, target, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp.StatusCode, rb)
	}
	if err := json.Unmarshal(rb, out); err != nil {
		return fmt.Errorf("bankapi: %s %s: %w: %v", method, target, ErrMalformed, err)
	}
	return nil
}

// decodeError turns a non-2xx answer into an *Error.
func decodeError(status int, body []byte) *Error {
	e := &Error{Status: status}
	if json.Unmarshal(body, e) != nil || e.Code == "" {
		e.Code = fmt.Sprintf("HTTP_%d", status)
		e.Message = strings.TrimSpace(string(body))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200]
		}
	}
	return e
}
