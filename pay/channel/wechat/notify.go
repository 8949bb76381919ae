package wechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/services/payments"

	"yibao/pay/channel"
)

// maxNotifyBody bounds a callback body.
const maxNotifyBody = 1 << 20

// replayWindow: a callback whose Wechatpay-Timestamp is further from now
// than this is refused as a replay.
const replayWindow = 5 * time.Minute

// refundResource is the decrypted resource of REFUND.* callbacks.
type refundResource struct {
	MchID         string `json:"mchid"`
	OutTradeNo    string `json:"out_trade_no"`
	TransactionID string `json:"transaction_id"`
	OutRefundNo   string `json:"out_refund_no"`
	RefundID      string `json:"refund_id"`
	RefundStatus  string `json:"refund_status"`
	SuccessTime   string `json:"success_time"`
	Amount        struct {
		Total  int64 `json:"total"`
		Refund int64 `json:"refund"`
	} `json:"amount"`
}

// ParseNotification verifies a WeChat Pay callback and decrypts it.
//
// The SDK's notify handler checks the Wechatpay-Signature over
// "timestamp\nnonce\nbody\n" with the platform key (serial in
// Wechatpay-Serial) and opens the AEAD_AES_256_GCM resource with the
// API v3 key. Any failure there, and any timestamp more than five minutes
// from now (a replay), is ErrForged. The event id becomes Notification.ID;
// WeChat sends the same id again when it retries.
func (c *Channel) ParseNotification(r *http.Request) (*channel.Notification, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxNotifyBody+1))
	if err != nil {
		return nil, fmt.Errorf("wechat: notification: reading the body: %w", err)
	}
	if len(body) > maxNotifyBody {
		return nil, fmt.Errorf("wechat: notification: %w: body too large", channel.ErrForged)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	ts, err := strconv.ParseInt(strings.TrimSpace(r.Header.Get("Wechatpay-Timestamp")), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("wechat: notification: %w: no valid Wechatpay-Timestamp", channel.ErrForged)
	}
	if d := c.now().Sub(time.Unix(ts, 0)); d > replayWindow || d < -replayWindow {
		return nil, fmt.Errorf("wechat: notification: %w: timestamp %d is %s away from now (replay?)", channel.ErrForged, ts, d.Round(time.Second))
	}

	var plain json.RawMessage
	req, err := c.notify.ParseNotifyRequest(r.Context(), r, &plain)
	if err != nil {
		return nil, fmt.Errorf("wechat: notification: %w: %s", channel.ErrForged, shortSDKError(err))
	}
	n := &channel.Notification{ID: req.ID}
	switch ev := req.EventType; {
	case strings.HasPrefix(ev, "TRANSACTION."):
		var tx payments.Transaction
		if err := json.Unmarshal(plain, &tx); err != nil {
			return nil, fmt.Errorf("wechat: notification %s: bad transaction: %w", req.ID, err)
		}
		if m := deref(tx.Mchid); m != "" && m != c.cfg.MchID {
			return nil, fmt.Errorf("wechat: notification %s: for merchant %q, not ours", req.ID, m)
		}
		o, err := orderOf(&tx)
		if err != nil {
			return nil, fmt.Errorf("wechat: notification %s: %w", req.ID, err)
		}
		n.Kind, n.Order = channel.NotifyPayment, o
	case strings.HasPrefix(ev, "REFUND."):
		var rf refundResource
		if err := json.Unmarshal(plain, &rf); err != nil {
			return nil, fmt.Errorf("wechat: notification %s: bad refund: %w", req.ID, err)
		}
		if rf.MchID != "" && rf.MchID != c.cfg.MchID {
			return nil, fmt.Errorf("wechat: notification %s: for merchant %q, not ours", req.ID, rf.MchID)
		}
		status := rf.RefundStatus
		if status == "" { // the status is also in the event type: REFUND.SUCCESS, REFUND.ABNORMAL, REFUND.CLOSED
			status = strings.TrimPrefix(ev, "REFUND.")
		}
		n.Kind = channel.NotifyRefund
		n.Refund = &channel.Refund{
			OutTradeNo: rf.OutTradeNo, OutRefundNo: rf.OutRefundNo, RefundID: rf.RefundID,
			Status: status, Amount: rf.Amount.Refund,
		}
	case strings.HasPrefix(ev, "PAPAY."):
		var k contract
		if err := json.Unmarshal(plain, &k); err != nil {
			return nil, fmt.Errorf("wechat: notification %s: bad contract: %w", req.ID, err)
		}
		if k.MchID != "" && k.MchID != c.cfg.MchID {
			return nil, fmt.Errorf("wechat: notification %s: for merchant %q, not ours", req.ID, k.MchID)
		}
		n.Kind, n.Agreement = channel.NotifyAgreement, k.agreement()
	default:
		return nil, fmt.Errorf("wechat: notification %s: unsupported event_type %q", req.ID, ev)
	}
	return n, nil
}

// shortSDKError drops the dump of the whole request the SDK appends.
func shortSDKError(err error) string {
	s := err.Error()
	if i := strings.Index(s, ", request: "); i >= 0 {
		s = s[:i]
	}
	return s
}

// AckNotification answers a callback: 204 when err is nil; otherwise 500
// with {"code":"FAIL","message":...}, which makes WeChat send it again on
// its schedule. A forged callback's details are not echoed back.
func (c *Channel) AckNotification(w http.ResponseWriter, err error) {
	if err == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	msg := err.Error()
	if errors.Is(err, channel.ErrForged) {
		msg = "signature verification failed"
	}
	b, _ := json.Marshal(map[string]string{"code": "FAIL", "message": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(b)
}
