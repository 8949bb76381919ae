package alipaysim

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// notice is one asynchronous notification, signed and ready to send.
type notice struct {
	id     string
	typ    string // notify_type
	url    string
	body   string // form-encoded, signed
	copies int    // 1 + sim.Faults.NotifyDuplicates: each sent until acknowledged
	early  bool   // sim.Faults.NotifyEarly: first attempt before the call is answered
}

// newNotice signs a notification (s.mu held). Parameters with empty values
// are left out, as Alipay does. nil when there is nowhere to send it, or
// sim.Faults.NotifyDrop is set.
func (s *Sim) newNotice(notifyURL string, fields map[string]string) *notice {
	f := s.faults.Get()
	if notifyURL == "" || f.NotifyDrop {
		return nil
	}
	v := url.Values{}
	for k, x := range fields {
		if x != "" {
			v.Set(k, x)
		}
	}
	id := notifyID()
	v.Set("notify_id", id)
	v.Set("notify_time", fmtTime(s.now()))
	v.Set("app_id", s.cfg.AppID)
	v.Set("auth_app_id", s.cfg.AppID)
	v.Set("charset", "utf-8")
	v.Set("version", "1.0")
	// RSA2 over every parameter but sign and sign_type.
	v.Set("sign", s.sign([]byte(signContent(v, "sign", "sign_type"))))
	v.Set("sign_type", "RSA2")
	return &notice{id: id, typ: fields["notify_type"], url: notifyURL, body: v.Encode(), copies: 1 + max(0, f.NotifyDuplicates), early: f.NotifyEarly}
}

// tradeNotice is trade_status_sync for a payment (rf nil) or a refund
// (s.mu held). NotifyWrongAmount adds one fen to the amount the
// notification is about: total_amount for a payment, the refund amounts
// for a refund.
func (s *Sim) tradeNotice(t *trade, rf *refund) *notice {
	delta := int64(0)
	if s.faults.Get().NotifyWrongAmount {
		delta = 1
	}
	total := t.amount
	if rf == nil {
		total += delta
	}
	fields := map[string]string{
		"notify_type":      "trade_status_sync",
		"trade_no":         t.tradeNo,
		"out_trade_no":     t.outTradeNo,
		"buyer_id":         t.buyerID,
		"buyer_logon_id":   mask(t.buyerID),
		"seller_id":        merchantPID,
		"trade_status":     t.status,
		"total_amount":     yuan(total),
		"receipt_amount":   yuan(total),
		"buyer_pay_amount": yuan(total),
		"invoice_amount":   yuan(total),
		"point_amount":     "0.00",
		"subject":          t.subject,
		"gmt_create":       fmtTime(t.created),
		"gmt_payment":      fmtTime(t.paid),
		"gmt_close":        fmtTime(t.closed),
		"fund_bill_list":   `[{"amount":"` + yuan(t.amount) + `","fundChannel":"ALIPAYACCOUNT"}]`,
	}
	if rf != nil {
		// Alipay's refund fields: out_biz_no is the refund's
		// out_request_no, refund_fee the trade's refunded total so far.
		// refund_amount (this refund alone) is the simulator's addition.
		fields["out_biz_no"] = rf.outRequestNo
		fields["refund_fee"] = yuan(t.refunded + delta)
		fields["refund_amount"] = yuan(rf.amount + delta)
		fields["gmt_refund"] = rf.at.In(chinaTime).Format(timeLayout + ".000")
	}
	return s.newNotice(t.notifyURL, fields)
}

// agreementNotice is dut_user_sign or dut_user_unsign (s.mu held).
func (s *Sim) agreementNotice(a *agreement, typ string) *notice {
	fields := map[string]string{
		"notify_type":           typ,
		"agreement_no":          a.agreementNo,
		"external_agreement_no": a.externalNo,
		"alipay_user_id":        a.userID,
		"alipay_logon_id":       mask(a.userID),
		"status":                a.status,
		"sign_time":             fmtTime(a.signed),
		"valid_time":            fmtTime(a.signed),
		"invalid_time":          invalidTime,
		"personal_product_code": a.personalCode,
		"sign_scene":            a.scene,
		"partner_id":            merchantPID,
	}
	if a.limit > 0 {
		fields["single_quota"] = yuan(a.limit)
	}
	if typ == "dut_user_unsign" {
		fields["unsign_time"] = fmtTime(a.unsigned)
	}
	return s.newNotice(a.notifyURL, fields)
}

func notifyID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// dispatch sends a notification in the background. inline: the first
// attempt is made (and awaited) here. Nothing is sent after Close.
func (s *Sim) dispatch(n *notice, inline bool) {
	if n == nil {
		return
	}
	s.bgMu.Lock()
	if s.closed {
		s.bgMu.Unlock()
		return
	}
	s.wg.Add(1)
	s.bgMu.Unlock()
	if !inline {
		go s.deliver(n, false, false)
		return
	}
	ok := s.post(n)
	go s.deliver(n, true, ok)
}

// deliver sends each copy of n until it is acknowledged, waiting
// NotifySchedule between attempts; a copy not acknowledged after the last
// attempt is given up. firstDone: the first attempt of the first copy was
// made already, with result firstOK.
func (s *Sim) deliver(n *notice, firstDone, firstOK bool) {
	defer s.wg.Done()
	sched := s.cfg.NotifySchedule
	for c := 0; c < n.copies; c++ {
		for attempt := 0; ; attempt++ {
			var ok bool
			if c == 0 && attempt == 0 && firstDone {
				ok = firstOK
			} else {
				ok = s.post(n)
			}
			if ok || attempt >= len(sched) {
				break
			}
			select {
			case <-time.After(sched[attempt]):
			case <-s.ctx.Done():
				return
			}
		}
		if s.ctx.Err() != nil {
			return
		}
	}
}

// post makes one attempt. Alipay takes a notification as delivered when
// the answer body is the seven characters "success", whatever the HTTP
// status.
func (s *Sim) post(n *notice) bool {
	ok := false
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, n.url, strings.NewReader(n.body))
	if err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		req.Header.Set("User-Agent", "Mozilla/4.0 (yibao alipaysim)")
		if resp, err := s.client.Do(req); err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			ok = strings.TrimSpace(string(b)) == "success"
		}
	}
	s.mu.Lock()
	s.deliveries = append(s.deliveries, Delivery{NotifyID: n.id, NotifyType: n.typ, URL: n.url, Acked: ok, At: time.Now()})
	s.mu.Unlock()
	return ok
}
