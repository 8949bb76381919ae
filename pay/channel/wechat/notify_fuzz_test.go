package wechat_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"yibao/pay/channel"
	"yibao/pay/channel/wechat"
)

// FuzzParseNotification signs and encrypts a callback as WeChat Pay does,
// with any event type, event id and decrypted resource, and parses it.
// Properties: no panic; an accepted callback keeps its event id, has the
// kind its event type names with that kind's payload, is not for another
// merchant, and carries the amount the resource states; and the same
// callback with one byte of its body changed after signing is refused as
// forged.
func FuzzParseNotification(f *testing.F) {
	for _, s := range []struct{ ev, id, res string }{
		{"TRANSACTION.SUCCESS", "EV-1", `{"mchid":"` + mchID + `","appid":"` + appID + `","out_trade_no":"PO-1","transaction_id":"4200000001","trade_type":"PAP","trade_state":"SUCCESS","success_time":"2024-05-20T12:00:01+08:00","payer":{"openid":"o-x"},"amount":{"total":1234567,"currency":"CNY"}}`},
		{"TRANSACTION.SUCCESS", "EV-2", `{"mchid":"1900000999","out_trade_no":"PO-2","trade_state":"SUCCESS","amount":{"total":1}}`},
		{"TRANSACTION.SUCCESS", "EV-3", `{"out_trade_no":"PO-3","trade_state":"SUCCESS","amount":{"total":-5},"success_time":"yesterday"}`},
		{"TRANSACTION.SUCCESS", "EV-4", `{"amount":{"total":1e30}}`},
		{"REFUND.SUCCESS", "EV-5", `{"mchid":"` + mchID + `","out_trade_no":"PO-1","out_refund_no":"RF-1","refund_id":"5000","refund_status":"SUCCESS","amount":{"total":100,"refund":40}}`},
		{"REFUND.ABNORMAL", "EV-6", `{"out_refund_no":"RF-2","amount":{"refund":"40"}}`},
		{"PAPAY.SIGN", "EV-7", `{"mchid":"` + mchID + `","contract_id":"C1","out_contract_code":"AG1","openid":"o-x","contract_state":"SIGNED","limit":100000}`},
		{"MARKETING.X", "EV-8", `{}`},
		{"TRANSACTION.SUCCESS", "", `not json`},
		{"TRANSACTION.SUCCESS", "EV-9", "{\"out_trade_no\":\"\xff\"}"},
	} {
		f.Add(s.ev, s.id, []byte(s.res), uint16(7))
	}
	mk, pk := keys()
	ch, err := wechat.New(wechat.Config{BaseURL: "http://127.0.0.1:9/sim/wechat", MchID: mchID, AppID: appID,
		MerchantSerial: mchSer, MerchantKey: mk, PlatformSerial: platSer, PlatformKey: &pk.PublicKey, APIv3Key: apiV3Key})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, eventType, id string, resource []byte, flip uint16) {
		const nonce, ad = "abcdefghijkl", "transaction"
		body, err := json.Marshal(map[string]any{
			"id": id, "create_time": "2024-05-20T12:00:00+08:00", "event_type": eventType,
			"resource_type": "encrypt-resource", "summary": "支付成功",
			"resource": map[string]string{"algorithm": "AEAD_AES_256_GCM", "associated_data": ad, "original_type": "transaction",
				"nonce": nonce, "ciphertext": encryptResource(apiV3Key, nonce, ad, resource)},
		})
		if err != nil {
			t.Fatal(err)
		}
		genuine := signed(t, body, pk, platSer, time.Now().Unix())
		hdr := genuine.Header.Clone()
		n, err := ch.ParseNotification(genuine)
		if err == nil {
			var sent struct { // as JSON carries them: invalid UTF-8 became U+FFFD
				ID        string `json:"id"`
				EventType string `json:"event_type"`
			}
			json.Unmarshal(body, &sent)
			checkNotification(t, sent.EventType, sent.ID, resource, n)
		}

		tampered := bytes.Clone(body)
		i := int(flip) % len(tampered)
		tampered[i] ^= 0x01
		r := httptest.NewRequest(http.MethodPost, "/notify/wechat", bytes.NewReader(tampered))
		r.Header = hdr
		if n, err := ch.ParseNotification(r); !errors.Is(err, channel.ErrForged) {
			t.Fatalf("body changed at byte %d after signing: %+v, %v", i, n, err)
		}
	})
}

func checkNotification(t *testing.T, eventType, id string, resource []byte, n *channel.Notification) {
	t.Helper()
	if n.ID != id {
		t.Fatalf("event id %q became %q", id, n.ID)
	}
	var res struct {
		MchID  string `json:"mchid"`
		Amount struct {
			Total  *int64 `json:"total"`
			Refund *int64 `json:"refund"`
		} `json:"amount"`
	}
	json.Unmarshal(resource, &res) // the adapter decoded it; a field of another type stays unset here
	if res.MchID != "" && res.MchID != mchID {
		t.Fatalf("accepted a callback for merchant %q", res.MchID)
	}
	switch {
	case strings.HasPrefix(eventType, "TRANSACTION."):
		if n.Kind != channel.NotifyPayment || n.Order == nil || n.Refund != nil || n.Agreement != nil {
			t.Fatalf("%s parsed as %+v", eventType, n)
		}
		if res.Amount.Total != nil && n.Order.Amount != *res.Amount.Total {
			t.Fatalf("total %d became %d", *res.Amount.Total, n.Order.Amount)
		}
	case strings.HasPrefix(eventType, "REFUND."):
		if n.Kind != channel.NotifyRefund || n.Refund == nil || n.Order != nil || n.Agreement != nil {
			t.Fatalf("%s parsed as %+v", eventType, n)
		}
		if res.Amount.Refund != nil && n.Refund.Amount != *res.Amount.Refund {
			t.Fatalf("refund %d became %d", *res.Amount.Refund, n.Refund.Amount)
		}
	case strings.HasPrefix(eventType, "PAPAY."):
		if n.Kind != channel.NotifyAgreement || n.Agreement == nil || n.Order != nil || n.Refund != nil {
			t.Fatalf("%s parsed as %+v", eventType, n)
		}
	default:
		t.Fatalf("unsupported event type %q accepted as %+v", eventType, n)
	}
}
