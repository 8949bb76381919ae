package alipay_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"yibao/money"
	"yibao/pay/channel"
	"yibao/pay/channel/alipay"
	"yibao/sim/alipaysim"
)

// FuzzParseNotification signs an asynchronous notification with Alipay's
// key, as Alipay does, from any notify type, trade status, amounts, refund
// fields and app id, and parses it. Properties: no panic; an accepted
// notification keeps its notify_id, is for our app, has the kind its
// notify_type and refund fields call for, and carries exactly the yuan
// amounts sent (money.ParseYuan as reference); and the same form with
// total_amount changed after signing is refused as forged.
func FuzzParseNotification(f *testing.F) {
	for _, s := range [][8]string{
		// notify_type, trade_status, total_amount, refund_fee, out_biz_no, refund_amount, notify_id, app_id
		{"trade_status_sync", "TRADE_SUCCESS", "50.00", "", "", "", "N1", appID},
		{"trade_status_sync", "TRADE_CLOSED", "50.00", "50.00", "R1", "50.00", "N2", appID},
		{"trade_status_sync", "TRADE_SUCCESS", "50.00", "10.00", "", "", "N3", appID}, // a refund without out_biz_no
		{"trade_status_sync", "WAIT_BUYER_PAY", "0.01", "", "", "", "N4", ""},
		{"trade_status_sync", "TRADE_SUCCESS", "1.005", "", "", "", "N5", appID},
		{"trade_status_sync", "TRADE_SUCCESS", " 12.30 ", "", "", "", "N6", appID},
		{"trade_status_sync", "TRADE_SUCCESS", "-3.00", "", "", "", "N7", appID},
		{"trade_status_sync", "TRADE_SUCCESS", "1e3", "", "", "", "N8", appID},
		{"trade_status_sync", "TRADE_SUCCESS", "50.00", "", "", "", "N9", "2021000000000000"},
		{"dut_user_sign", "", "", "", "", "", "N10", appID},
		{"trade_status_sync", "TRADE_SUCCESS", "50.00", "", "", "", "", appID},
		{"batch_trans_notify", "", "", "", "", "", "N12", appID},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
	}
	app, ali, err := alipaysim.GenerateKeys()
	if err != nil {
		f.Fatal(err)
	}
	ch, err := alipay.New(alipay.Config{BaseURL: "http://127.0.0.1:9/alipay", AppID: appID, AppKey: app, AlipayPublicKey: &ali.PublicKey})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, notifyType, tradeStatus, total, refundFee, outBizNo, refundAmount, notifyID, app string) {
		v := url.Values{}
		for k, x := range map[string]string{
			"notify_type": notifyType, "trade_status": tradeStatus, "total_amount": total, "refund_fee": refundFee,
			"out_biz_no": outBizNo, "refund_amount": refundAmount, "notify_id": notifyID, "app_id": app,
			"notify_time": "2025-03-14 10:30:00", "out_trade_no": "T0100", "trade_no": "2025031422001", "charset": "utf-8",
			"sign_type": "RSA2", "gmt_payment": "2025-03-14 10:30:00", "status": "NORMAL",
		} {
			if x != "" {
				v.Set(k, x)
			}
		}
		signForm(t, v, ali)
		parse := func(v url.Values) (*channel.Notification, error) {
			r := httptest.NewRequest(http.MethodPost, "http://merchant.example/notify/alipay", strings.NewReader(v.Encode()))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
			return ch.ParseNotification(r)
		}
		n, err := parse(v)
		if err == nil {
			// What the form carried after encoding and decoding.
			sent, _ := url.ParseQuery(v.Encode())
			checkAlipayNotification(t, sent, n)
		}
		v.Set("total_amount", total+"1")
		if n, err := parse(v); !errors.Is(err, channel.ErrForged) {
			t.Fatalf("total_amount changed after signing: %+v, %v", n, err)
		}
	})
}

func checkAlipayNotification(t *testing.T, sent url.Values, n *channel.Notification) {
	t.Helper()
	if n.ID == "" || n.ID != sent.Get("notify_id") {
		t.Fatalf("notify_id %q became %q", sent.Get("notify_id"), n.ID)
	}
	if a := sent.Get("app_id"); a != "" && a != appID {
		t.Fatalf("accepted a notification for app %q", a)
	}
	fen := func(s string) int64 {
		f, err := money.ParseYuan(strings.TrimSpace(s))
		if err != nil {
			t.Fatalf("accepted the amount %q: %v", s, err)
		}
		return int64(f)
	}
	switch sent.Get("notify_type") {
	case "trade_status_sync":
		if n.Order == nil || n.Agreement != nil || n.Order.Amount != fen(sent.Get("total_amount")) {
			t.Fatalf("total_amount %q parsed as %+v", sent.Get("total_amount"), n.Order)
		}
		refund := sent.Get("out_biz_no") != "" || sent.Get("gmt_refund") != "" ||
			(sent.Get("refund_fee") != "" && fen(sent.Get("refund_fee")) > 0)
		switch {
		case refund && (n.Kind != channel.NotifyRefund || n.Refund == nil || n.Refund.OutRefundNo == "" ||
			n.Refund.OutRefundNo != sent.Get("out_biz_no")):
			t.Fatalf("a refund notification parsed as %+v %+v", n, n.Refund)
		case !refund && (n.Kind != channel.NotifyPayment || n.Refund != nil):
			t.Fatalf("a payment notification parsed as %+v", n)
		case refund && sent.Get("refund_amount") != "" && n.Refund.Amount != fen(sent.Get("refund_amount")):
			t.Fatalf("refund_amount %q parsed as %d", sent.Get("refund_amount"), n.Refund.Amount)
		}
	case "dut_user_sign", "dut_user_unsign":
		if n.Kind != channel.NotifyAgreement || n.Agreement == nil || n.Order != nil {
			t.Fatalf("an agreement notification parsed as %+v", n)
		}
	default:
		t.Fatalf("notify_type %q accepted as %+v", sent.Get("notify_type"), n)
	}
}
