package alipaysim

import (
	"fmt"
	"time"
)

// Agreement statuses: Alipay's NORMAL, and UNSIGN for one the simulator
// keeps after alipay.user.agreement.unsign (Alipay forgets it).
const (
	agreementNormal = "NORMAL"
	agreementUnsign = "UNSIGN"
)

// invalidTime is the end of an open-ended agreement, as Alipay shows it.
const invalidTime = "2115-02-01 00:00:00"

type agreement struct {
	agreementNo  string
	externalNo   string
	userID       string
	status       string
	limit        int64 // fen per payment; 0: no limit
	productCode  string
	personalCode string
	scene        string
	notifyURL    string
	signed       time.Time
	unsigned     time.Time
}

func (a *agreement) fields() obj {
	o := obj{
		"agreement_no":          a.agreementNo,
		"external_agreement_no": a.externalNo,
		"alipay_user_id":        a.userID,
		"principal_id":          a.userID,
		"pricipal_type":         "CARD", // sic, Alipay's spelling
		"alipay_logon_id":       mask(a.userID),
		"status":                a.status,
		"sign_time":             fmtTime(a.signed),
		"valid_time":            fmtTime(a.signed),
		"invalid_time":          invalidTime,
		"personal_product_code": a.personalCode,
		"sign_scene":            a.scene,
	}
	if a.limit > 0 {
		o["single_quota"] = yuan(a.limit)
	}
	return o
}

// signAgreement is alipay.user.agreement.page.sign, as a server-side
// stand-in. At Alipay this method is a page: the merchant sends the payer
// to it, the payer signs in the Alipay app, and the agreement_no comes in
// the dut_user_sign notification. Here the payer has already consented in
// yibao's app and the simulator plays the Alipay app, so a signed POST of
// the method signs at once and answers like the notification would:
// {agreement_no, status: NORMAL, …}. The payer is
// identity_params.sign_user_id (Alipay's field for "only this user may
// sign"); the per-payment limit is period_rule_params.single_amount. The
// dut_user_sign notification is sent too.
//
// The same external_agreement_no for the same payer while the agreement is
// in force answers with that agreement again.
func (s *Sim) signAgreement(c *call) result {
	var b struct {
		ProductCode         string `json:"product_code"`
		PersonalProductCode string `json:"personal_product_code"`
		SignScene           string `json:"sign_scene"`
		ExternalAgreementNo string `json:"external_agreement_no"`
		IdentityParams      *struct {
			SignUserID string `json:"sign_user_id"`
		} `json:"identity_params"`
		PeriodRuleParams *struct {
			SingleAmount string `json:"single_amount"`
		} `json:"period_rule_params"`
	}
	if err := c.decode(&b); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	if b.PersonalProductCode == "" {
		return result{body: bizFail("INVALID_PARAMETER", "personal_product_code 不能为空")}
	}
	if b.IdentityParams == nil || b.IdentityParams.SignUserID == "" {
		return result{body: bizFail("INVALID_PARAMETER", "the simulator needs identity_params.sign_user_id: the payer who signs")}
	}
	user := b.IdentityParams.SignUserID
	var limit int64
	if b.PeriodRuleParams != nil && b.PeriodRuleParams.SingleAmount != "" {
		var ok bool
		if limit, ok = parseAmount(b.PeriodRuleParams.SingleAmount); !ok {
			return result{body: bizFail("INVALID_PARAMETER", "single_amount 无效")}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.payers[user] == nil {
		return result{body: bizFail("INVALID_PARAMETER", "sign_user_id 对应的支付宝用户不存在")}
	}
	if b.ExternalAgreementNo != "" {
		if a := s.byExternal[b.ExternalAgreementNo]; a != nil && a.status == agreementNormal {
			if a.userID != user {
				return result{body: bizFail("EXTERNAL_AGREEMENT_NO_EXISTED", "商户签约号已被其他用户使用")}
			}
			return result{body: success(a.fields())}
		}
	}
	now := s.now()
	s.seq++
	a := &agreement{
		agreementNo:  fmt.Sprintf("%s%012d", now.In(chinaTime).Format("20060102"), s.seq),
		externalNo:   b.ExternalAgreementNo,
		userID:       user,
		status:       agreementNormal,
		limit:        limit,
		productCode:  b.ProductCode,
		personalCode: b.PersonalProductCode,
		scene:        b.SignScene,
		notifyURL:    c.params.Get("notify_url"),
		signed:       now,
	}
	s.agreements[a.agreementNo] = a
	if a.externalNo != "" {
		s.byExternal[a.externalNo] = a
	}
	return result{body: success(a.fields()), notes: []*notice{s.agreementNotice(a, "dut_user_sign")}}
}

// agreementRef is how the agreement methods name an agreement:
// agreement_no, else external_agreement_no.
type agreementRef struct {
	AgreementNo         string `json:"agreement_no"`
	ExternalAgreementNo string `json:"external_agreement_no"`
}

func (s *Sim) findAgreement(ref agreementRef) *agreement {
	if ref.AgreementNo != "" {
		return s.agreements[ref.AgreementNo]
	}
	if ref.ExternalAgreementNo != "" {
		return s.byExternal[ref.ExternalAgreementNo]
	}
	return nil
}

// queryAgreement is alipay.user.agreement.query. An unsigned agreement is
// gone, as at Alipay.
func (s *Sim) queryAgreement(c *call) result {
	var ref agreementRef
	if err := c.decode(&ref); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.findAgreement(ref)
	if a == nil || a.status == agreementUnsign {
		return result{body: bizFail("USER_AGREEMENT_NOT_EXIST", "用户协议不存在")}
	}
	return result{body: success(a.fields())}
}

// unsignAgreement is alipay.user.agreement.unsign. Unsigning again is
// 10000 (the simulator is lenient; Alipay may answer not-exist), and the
// dut_user_unsign notification goes to the call's notify_url, else the
// one given at signing.
func (s *Sim) unsignAgreement(c *call) result {
	var ref agreementRef
	if err := c.decode(&ref); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.findAgreement(ref)
	if a == nil {
		return result{body: bizFail("USER_AGREEMENT_NOT_EXIST", "用户协议不存在")}
	}
	if a.status == agreementUnsign {
		return result{body: success(nil)}
	}
	a.status, a.unsigned = agreementUnsign, s.now()
	if u := c.params.Get("notify_url"); u != "" {
		a.notifyURL = u
	}
	return result{body: success(nil), notes: []*notice{s.agreementNotice(a, "dut_user_unsign")}}
}
