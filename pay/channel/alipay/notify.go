package alipay

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	sdk "github.com/smartwalle/alipay/v3"

	"yibao/pay/channel"
)

// ParseNotification verifies and reads an Alipay asynchronous
// notification: a form POST signed with Alipay's key (sign_type=RSA2; the
// signature covers every parameter but sign and sign_type, sorted as
// k=v&…). The SDK's DecodeNotification checks it. A missing or bad
// signature, another sign_type, or another app's app_id is ErrForged.
//
// Kinds, by notify_type:
//   - trade_status_sync with refund fields (out_biz_no, refund_fee,
//     gmt_refund): NotifyRefund. Alipay sends these after the refund is
//     made, so the status is SUCCESS. out_biz_no is the refund's
//     out_request_no. refund_fee is the trade's cumulative refunded total,
//     not this refund's amount: Refund.Amount is taken from refund_amount
//     when the notification has it (the simulator sends it), else it is 0
//     (not stated; QueryRefund has it).
//   - trade_status_sync otherwise: NotifyPayment, the trade as Query maps
//     it (TRADE_SUCCESS → SUCCESS, …).
//   - dut_user_sign / dut_user_unsign: NotifyAgreement; status NORMAL →
//     ACTIVE, anything else (UNSIGN, STOP) and every unsign → TERMINATED.
//
// Notification.ID is notify_id: Alipay re-sends a notification with the
// same notify_id until it is answered "success".
func (c *Channel) ParseNotification(r *http.Request) (*channel.Notification, error) {
	if err := r.ParseForm(); err != nil {
		return nil, fmt.Errorf("alipay: notification: %w", err)
	}
	// The notification is the POST body; query parameters (our own, on
	// the notify_url) are not part of what Alipay signed.
	values := url.Values{}
	src := r.PostForm
	if len(src) == 0 {
		src = r.Form
	}
	for k, v := range src {
		values[k] = append([]string(nil), v...)
	}
	// In public-key mode there is no alipay_cert_sn. Were one present, the
	// SDK would look the certificate up (and, for an unknown serial,
	// download it from the gateway) before verifying; it is not covered
	// by the signature either, so it is dropped.
	values.Del("alipay_cert_sn")
	switch {
	case values.Get("sign") == "":
		return nil, fmt.Errorf("alipay: notification: %w: no sign", channel.ErrForged)
	case values.Get("sign_type") != "RSA2":
		return nil, fmt.Errorf("alipay: notification: %w: sign_type %q, want RSA2", channel.ErrForged, values.Get("sign_type"))
	}
	n, err := c.client.DecodeNotification(r.Context(), values)
	if err != nil {
		return nil, fmt.Errorf("alipay: notification: %w: %w", channel.ErrForged, err)
	}
	if n.AppId != "" && n.AppId != c.cfg.AppID {
		return nil, fmt.Errorf("alipay: notification: %w: for app %s, not %s", channel.ErrForged, n.AppId, c.cfg.AppID)
	}
	if n.NotifyId == "" {
		return nil, errors.New("alipay: notification: no notify_id")
	}
	switch n.NotifyType {
	case "trade_status_sync":
		return c.tradeNotification(n, values)
	case "dut_user_sign", "dut_user_unsign":
		a := &channel.Agreement{
			ExternalNo:  n.ExternalAgreementNo,
			AgreementID: n.AgreementNo,
			PayerRef:    first(values.Get("alipay_user_id"), values.Get("principal_id")),
			State:       channel.AgreementTerminated,
		}
		if n.NotifyType == "dut_user_sign" && values.Get("status") == "NORMAL" {
			a.State = channel.AgreementActive
		}
		if q := values.Get("single_quota"); q != "" {
			if a.Limit, err = fen(q); err != nil {
				return nil, fmt.Errorf("alipay: notification %s: %w", n.NotifyId, err)
			}
		}
		return &channel.Notification{ID: n.NotifyId, Kind: channel.NotifyAgreement, Agreement: a}, nil
	}
	return nil, fmt.Errorf("alipay: notification %s: unknown notify_type %q", n.NotifyId, n.NotifyType)
}

func (c *Channel) tradeNotification(n *sdk.Notification, values url.Values) (*channel.Notification, error) {
	o := &channel.Order{
		OutTradeNo:    n.OutTradeNo,
		TransactionID: n.TradeNo,
		PayerRef:      n.BuyerId,
		PaidAt:        parseTime(n.GmtPayment),
	}
	var err error
	if o.Amount, err = fen(n.TotalAmount); err != nil {
		return nil, fmt.Errorf("alipay: notification %s: %w", n.NotifyId, err)
	}
	refundFee := int64(0)
	if n.RefundFee != "" {
		if refundFee, err = fen(n.RefundFee); err != nil {
			return nil, fmt.Errorf("alipay: notification %s: %w", n.NotifyId, err)
		}
	}
	isRefund := n.OutBizNo != "" || n.GmtRefund != "" || refundFee > 0
	switch n.TradeStatus {
	case sdk.TradeStatusWaitBuyerPay:
		o.State, o.PaidAt = channel.StateNotPay, time.Time{}
	case sdk.TradeStatusSuccess, sdk.TradeStatusFinished:
		o.State = channel.StateSuccess
	case sdk.TradeStatusClosed:
		o.State = channel.StateClosed
		if isRefund || !o.PaidAt.IsZero() {
			o.State = channel.StateRefund
		}
	default:
		return nil, fmt.Errorf("alipay: notification %s: unknown trade_status %q", n.NotifyId, n.TradeStatus)
	}
	if !isRefund {
		return &channel.Notification{ID: n.NotifyId, Kind: channel.NotifyPayment, Order: o}, nil
	}
	if n.OutBizNo == "" {
		return nil, fmt.Errorf("alipay: notification %s: a refund without out_biz_no", n.NotifyId)
	}
	rf := &channel.Refund{OutTradeNo: n.OutTradeNo, OutRefundNo: n.OutBizNo, RefundID: n.TradeNo, Status: channel.RefundSuccess}
	if a := values.Get("refund_amount"); a != "" {
		if rf.Amount, err = fen(a); err != nil {
			return nil, fmt.Errorf("alipay: notification %s: %w", n.NotifyId, err)
		}
	}
	return &channel.Notification{ID: n.NotifyId, Kind: channel.NotifyRefund, Order: o, Refund: rf}, nil
}

// AckNotification answers Alipay: exactly "success" when the notification
// was taken (Alipay stops sending it), "fail" otherwise (Alipay sends it
// again on its schedule: 4m, 10m, 10m, 1h, 2h, 6h, 15h).
func (c *Channel) AckNotification(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err == nil {
		io.WriteString(w, "success")
		return
	}
	io.WriteString(w, "fail")
}
