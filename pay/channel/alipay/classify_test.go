package alipay_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"yibao/pay/channel"
)

// A canned gateway answers every call with one fixed response object,
// signed with the Alipay key like the real gateway: how the adapter maps
// answers the simulator never gives (20000, ACQ.SYSTEM_ERROR, 40005, …).
func TestChargeAnswers(t *testing.T) {
	app, ali, _ := keys(t)
	cases := []struct {
		name   string
		raw    string // the whole body; "" → signed {"alipay_trade_pay_response": obj}
		obj    string
		query  string // the answer to alipay.trade.query, if asked
		status int
		want   func(*channel.Order, error) bool
	}{
		{name: "10000", obj: `{"code":"10000","msg":"Success","trade_no":"2025031422001000000000000001","out_trade_no":"T1","total_amount":"0.01","buyer_user_id":"2088102146225135","gmt_payment":"2025-03-14 10:30:00"}`,
			want: func(o *channel.Order, err error) bool {
				return err == nil && o.State == channel.StateSuccess && o.Amount == 1 && o.PaidAt.Equal(simNow)
			}},
		{name: "10003 paying", obj: `{"code":"10003","msg":"Order success pay inprocess","trade_no":"2025031422001000000000000001","out_trade_no":"T1","total_amount":"0.01"}`,
			want: func(o *channel.Order, err error) bool {
				return err == nil && o.State == channel.StatePaying && o.PaidAt.IsZero()
			}},
		{name: "20000 unavailable", obj: `{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error","sub_msg":"系统繁忙"}`, want: unknown},
		{name: "40004 ACQ.SYSTEM_ERROR", obj: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}`, want: unknown},
		{name: "40004 aop.ACQ.SYSTEM_ERROR", obj: `{"code":"40004","msg":"Business Failed","sub_code":"aop.ACQ.SYSTEM_ERROR","sub_msg":"系统异常"}`, want: unknown},
		{name: "40005 rate limited", obj: `{"code":"40005","msg":"Call Limited","sub_code":"aop.ACQ.CALL_LIMITED","sub_msg":"调用频次超限"}`, want: unknown},
		{name: "40004 balance", obj: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.BUYER_BALANCE_NOT_ENOUGH","sub_msg":"买家余额不足"}`, want: declined("ACQ.BUYER_BALANCE_NOT_ENOUGH")},
		{name: "40004 agreement", obj: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.AGREEMENT_NOT_EXIST","sub_msg":"协议不存在"}`, want: declined("ACQ.AGREEMENT_NOT_EXIST")},
		{name: "unsigned error_response", raw: `{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-app-id","sub_msg":"无效的AppID参数"}}`,
			want: declined("isv.invalid-app-id")},
		{name: "502 from a proxy", raw: `<html>Bad Gateway</html>`, status: http.StatusBadGateway, want: unknown},
		{name: "signature over other bytes", raw: `{"alipay_trade_pay_response":{"code":"10000","msg":"Success","total_amount":"0.01"},"sign":"` +
			base64.StdEncoding.EncodeToString([]byte("not a signature")) + `"}`, want: unknown},
		{name: "no answer object", raw: `{"sign":"x"}`, want: unknown},
		{name: "already paid, the same charge", obj: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS","sub_msg":"交易已被支付"}`,
			query: `{"code":"10000","msg":"Success","trade_no":"2025031422001000000000000001","out_trade_no":"T1","trade_status":"TRADE_SUCCESS","total_amount":"0.01","send_pay_date":"2025-03-14 10:30:00"}`,
			want: func(o *channel.Order, err error) bool {
				return err == nil && o.State == channel.StateSuccess && o.TransactionID == "2025031422001000000000000001"
			}},
		{name: "already paid, another amount", obj: `{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_HAS_SUCCESS","sub_msg":"交易已被支付"}`,
			query: `{"code":"10000","msg":"Success","trade_no":"2025031422001000000000000001","out_trade_no":"T1","trade_status":"TRADE_SUCCESS","total_amount":"0.02"}`,
			want:  declined("ACQ.TRADE_HAS_SUCCESS")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.status != 0 {
					w.WriteHeader(tc.status)
				}
				if tc.raw != "" {
					w.Write([]byte(tc.raw))
					return
				}
				key, obj := "alipay_trade_pay_response", tc.obj
				if r.FormValue("method") == "alipay.trade.query" {
					key, obj = "alipay_trade_query_response", tc.query
				}
				h := sha256.Sum256([]byte(obj))
				sig, _ := ali.Sign(rand.Reader, h[:], crypto.SHA256)
				w.Write([]byte(`{"` + key + `":` + obj + `,"sign":"` + base64.StdEncoding.EncodeToString(sig) + `"}`))
			}))
			defer srv.Close()
			ch := newChannel(t, srv.URL, app, &ali.PublicKey, time.Second)
			o, err := ch.Charge(context.Background(), channel.ChargeRequest{OutTradeNo: "T1", Amount: 1, AgreementID: "A1", PayerRef: buyer})
			if !tc.want(o, err) {
				t.Fatalf("got %+v, %v", o, err)
			}
		})
	}
}

func unknown(o *channel.Order, err error) bool {
	return errors.Is(err, channel.ErrUnknown) && !channel.IsDeclined(err)
}

func declined(code string) func(*channel.Order, error) bool {
	return func(o *channel.Order, err error) bool {
		var d *channel.DeclineError
		return errors.As(err, &d) && d.Code == code && !errors.Is(err, channel.ErrUnknown)
	}
}

// Queries never decline: a refusal is a plain error, a missing trade
// ErrNotFound.
func TestQueryAnswers(t *testing.T) {
	app, ali, _ := keys(t)
	cases := []struct {
		obj  string
		want func(*channel.Order, error) bool
	}{
		{`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在"}`,
			func(o *channel.Order, err error) bool { return errors.Is(err, channel.ErrNotFound) }},
		{`{"code":"40004","msg":"Business Failed","sub_code":"ACQ.INVALID_PARAMETER","sub_msg":"参数无效"}`,
			func(o *channel.Order, err error) bool {
				return err != nil && !channel.IsDeclined(err) && !errors.Is(err, channel.ErrNotFound) && !errors.Is(err, channel.ErrUnknown)
			}},
		{`{"code":"10000","msg":"Success","trade_no":"1","out_trade_no":"T1","trade_status":"TRADE_FINISHED","total_amount":"12345.67","send_pay_date":"2025-03-14 10:30:00"}`,
			func(o *channel.Order, err error) bool {
				return err == nil && o.State == channel.StateSuccess && o.Amount == 1234567
			}},
		{`{"code":"10000","msg":"Success","trade_no":"1","out_trade_no":"T1","trade_status":"TRADE_CLOSED","total_amount":"1.00"}`,
			func(o *channel.Order, err error) bool { return err == nil && o.State == channel.StateClosed }},
		{`{"code":"10000","msg":"Success","trade_no":"1","out_trade_no":"T1","trade_status":"TRADE_CLOSED","total_amount":"1.00","send_pay_date":"2025-03-14 10:30:00"}`,
			func(o *channel.Order, err error) bool { return err == nil && o.State == channel.StateRefund }},
		{`{"code":"10000","msg":"Success","trade_no":"1","out_trade_no":"T1","trade_status":"WAIT_BUYER_PAY","total_amount":"1.00"}`,
			func(o *channel.Order, err error) bool { return err == nil && o.State == channel.StateNotPay }},
	}
	for _, tc := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := sha256.Sum256([]byte(tc.obj))
			sig, _ := ali.Sign(rand.Reader, h[:], crypto.SHA256)
			w.Write([]byte(`{"alipay_trade_query_response":` + tc.obj + `,"sign":"` + base64.StdEncoding.EncodeToString(sig) + `"}`))
		}))
		ch := newChannel(t, srv.URL, app, &ali.PublicKey, time.Second)
		o, err := ch.Query(context.Background(), "T1")
		srv.Close()
		if !tc.want(o, err) {
			t.Errorf("%s: got %+v, %v", strings.SplitN(tc.obj, ",", 4)[2], o, err)
		}
	}
}
