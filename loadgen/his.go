package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"yibao"
	"yibao/auth"
	"yibao/demo"
)

// HIS is one institution's HIS calling a platform's REST API with its API
// key, one call at a time: `yibao xr settle` and the cross-region crash
// test (chaos.CrossRegion) drive a region node with it.
type HIS struct {
	URL     string // the node, e.g. http://127.0.0.1:8081
	Signer  *auth.Signer
	Client  *http.Client  // nil: http.DefaultClient
	Timeout time.Duration // per call; 0: the context's
}

// DemoHospitalKey finds a demo institution key and the dataset of its
// province: the key keyID of any province, or with keyID "" the first
// hospital key of province prov.
func DemoHospitalKey(prov, keyID string) (*demo.DemoAPIKey, *demo.Dataset) {
	for _, p := range demo.Provinces() {
		if keyID == "" && p != prov {
			continue
		}
		d := demo.BuildProvince(p)
		for i := range d.APIKeys {
			k := &d.APIKeys[i]
			if k.KeyID == keyID || keyID == "" && strings.HasPrefix(k.FixmedinsCode, "H") {
				return k, d
			}
		}
	}
	return nil, nil
}

// NewHIS is the HIS of a demo institution key at url.
func NewHIS(url string, k *demo.DemoAPIKey) *HIS {
	return &HIS{URL: strings.TrimRight(url, "/"), Signer: &auth.Signer{KeyID: k.KeyID, Secret: k.Secret}}
}

// Send makes one signed call and returns the status and the body. A POST
// carries idemKey as its Idempotency-Key (a fresh one if ""): a retry of
// an unknown outcome passes the same key. Every call is signed afresh,
// with a new nonce, so a retry is not refused as a replay.
func (h *HIS) Send(ctx context.Context, method, path, idemKey string, in any) (int, []byte, error) {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return 0, nil, err
		}
	}
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, h.URL+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if method == http.MethodPost {
		if idemKey == "" {
			idemKey = newKey()
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", idemKey)
	}
	if err := h.Signer.Sign(req, body); err != nil {
		return 0, nil, err
	}
	req.GetBody = nil // no resend by the transport with the same nonce (see send)
	c := h.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// Post makes a POST with a fresh idempotency key and decodes a 2xx answer
// into out; any other answer is an error with the status and the body.
func (h *HIS) Post(ctx context.Context, path string, in, out any) error {
	st, b, err := h.Send(ctx, http.MethodPost, path, "", in)
	if err != nil {
		return err
	}
	if st/100 != 2 {
		return fmt.Errorf("%d %s", st, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

// XRBill is the small bill `yibao xr settle` uploads for a visit: one
// class A and one class B item of the treating province's catalog at
// 368.50 yuan, 3 of each (40 for an inpatient stay).
func XRBill(d *demo.Dataset, visitType string) []map[string]any {
	qty := "3"
	if visitType == "inpatient" {
		qty = "40"
	}
	var lines []map[string]any
	for _, it := range d.Catalog {
		if len(lines) == 0 && it.Class == yibao.ClassA || len(lines) == 1 && it.Class == yibao.ClassB {
			lines = append(lines, map[string]any{"feedetl_sn": fmt.Sprintf("XR%d", len(lines)+1), "catalog_code": it.Code, "unit_price": "368.50", "quantity": qty})
		}
	}
	return lines
}

// Classify maps an answer to the history's types as the load's own calls
// do: 2xx ok; a 4xx a definite refusal, except 409
// idempotency_conflict and idempotency_outcome_lost and 429; a 5xx or a
// transport error unknown. The code is the error's code or the transport
// error's kind.
func Classify(status int, body []byte, err error) (Type, string) { return classify(status, body, err) }
