package nhsa

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"yibao"
	"yibao/money"
	"yibao/pay"
	"yibao/settlement"
)

// The mobile-payment center (医保移动支付, 6201–6401): its own paths and
// its own envelope {appId, data, encType, signType, signData, timestamp,
// version} with camelCase business data in yuan strings. yibao plays the
// center: 6201 uploads a bill for the patient's phone, 6202 settles it
// under the patient's withholding agreement (the patient confirms in the
// app otherwise), 6301 queries, 6203 refunds, 6401 withdraws an unpaid
// upload. The HIS authenticates the transport as on the national
// interface (signed headers or the TIF gateway headers); appId must be
// that key. The envelope's own SM2 signData over "&key=appSecret" and the
// SM4 encData are not checked: their key derivation is not published
// (reference §8 lists it as unverified), so plain data is required.

// MobilePaths maps the center's paths to transaction numbers.
var MobilePaths = map[string]string{
	"/org/local/api/hos/uldFeeInfo":       "6201",
	"/org/local/api/hos/pay_order":        "6202",
	"/org/local/api/hos/refund_Order":     "6203",
	"/org/local/api/hos/query_order_info": "6301",
	"/org/local/api/hos/revoke_order":     "6401",
}

// MobileEnvelope is a request to the mobile-payment center.
type MobileEnvelope struct {
	AppID     string          `json:"appId"`
	Data      json.RawMessage `json:"data"`
	EncData   string          `json:"encData,omitempty"`
	EncType   string          `json:"encType,omitempty"`
	SignType  string          `json:"signType,omitempty"`
	SignData  string          `json:"signData,omitempty"`
	Timestamp string          `json:"timestamp"`
	Version   string          `json:"version"`
}

// MobileResponse is the center's answer: code 0 with data, or a code and
// a message.
type MobileResponse struct {
	Code      int    `json:"code"`
	Message   string `json:"message"`
	Data      any    `json:"data,omitempty"`
	Timestamp string `json:"timestamp"`
}

// yuan writes fen as the center's yuan string.
func yuan(f money.Fen) string { return f.String() }

// HandleMobile answers one mobile-payment request. ctx carries the
// authenticated institution (or none: then it is refused).
func (s *Service) HandleMobile(ctx context.Context, p *pay.Service, infno string, body []byte, keyID string) MobileResponse {
	resp := MobileResponse{Timestamp: s.now().In(yibao.ChinaTime).Format("20060102150405")}
	out, err := s.mobile(ctx, p, infno, body, keyID)
	if err != nil {
		resp.Code = -1
		resp.Message = mobileMessage(err)
		return resp
	}
	resp.Message, resp.Data = "成功", out
	return resp
}

func mobileMessage(err error) string {
	if f, ok := err.(*fail); ok {
		return f.msg
	}
	return string(yibao.ErrorCode(err)) + ": " + yibao.ErrorMessage(err)
}

func (s *Service) mobile(ctx context.Context, p *pay.Service, infno string, body []byte, keyID string) (any, error) {
	who, err := yibao.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	var env MobileEnvelope
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&env); err != nil {
		return nil, failf("报文不是合法的 JSON: %v", err)
	}
	switch {
	case env.AppID == "" || env.Timestamp == "" || env.Version == "":
		return nil, failf("appId、timestamp、version 不能为空")
	case env.AppID != keyID:
		return nil, failf("appId %s 与认证的机构密钥 %s 不符", env.AppID, keyID)
	case env.EncData != "" || len(env.Data) == 0:
		return nil, failf("请以明文 data 发送 (encData/SM4 未启用)")
	}
	if _, err := time.ParseInLocation("20060102150405", env.Timestamp, yibao.ChinaTime); err != nil {
		return nil, failf("timestamp 须为 yyyyMMddHHmmss")
	}
	decode := func(v any) error {
		d := json.NewDecoder(bytes.NewReader(env.Data))
		if err := d.Decode(v); err != nil {
			return failf("data: %v", err)
		}
		return nil
	}
	switch infno {
	case "6201":
		return s.mobileUpload(ctx, p, who, decode)
	case "6202":
		var in struct {
			PayOrdID string `json:"payOrdId"`
			PayToken string `json:"payToken"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		tok, err := p.PayToken(ctx, in.PayOrdID)
		if err != nil {
			return nil, err
		}
		if in.PayToken == "" || in.PayToken != tok {
			return nil, failf("payToken 不符")
		}
		o, err := p.PayByAgreement(ctx, in.PayOrdID)
		if err != nil {
			return nil, err
		}
		return orderData(o), nil
	case "6301":
		var in struct {
			PayOrdID string `json:"payOrdId"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		o, err := p.Get(ctx, in.PayOrdID)
		if err != nil {
			return nil, err
		}
		return orderData(o), nil
	case "6203":
		var in struct {
			PayOrdID      string `json:"payOrdId"`
			AppRefdSn     string `json:"appRefdSn"`
			RefdType      string `json:"refdType"`
			TotlRefdAmt   amount `json:"totlRefdAmt"`
			CashRefdAmt   amount `json:"cashRefdAmt"`
			FundRefdAmt   amount `json:"fundRefdAmt"`
			PsnAcctRefdAm amount `json:"psnAcctRefdAmt"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		req := pay.RefundRequest{RefundNo: in.AppRefdSn, Reason: "6203"}
		switch in.RefdType {
		case "ALL":
			req.Kind = pay.RefundAll
		case "CASH":
			req.Kind, req.Amount = pay.RefundCash, money.Fen(in.CashRefdAmt)
		case "HI":
			return nil, failf("refdType HI: 只退医保部分须撤销结算后重新结算 (reverse with ALL and settle again)")
		default:
			return nil, failf("refdType 须为 ALL、CASH 或 HI")
		}
		rf, err := p.Refund(ctx, in.PayOrdID, req)
		if err != nil {
			return nil, err
		}
		st := map[string]string{pay.RefundSucceeded: "SUCC", pay.RefundAbnormal: "FAIL", pay.RefundProcessing: "EXP"}[rf.Status]
		return map[string]any{"payOrdId": in.PayOrdID, "appRefdSn": rf.RefundNo, "refStatus": st, "cashRefdAmt": yuan(rf.Amount),
			"trdRefdId": rf.RefundID}, nil
	case "6401":
		var in struct {
			PayOrdID string `json:"payOrdId"`
		}
		if err := decode(&in); err != nil {
			return nil, err
		}
		o, err := p.Get(ctx, in.PayOrdID)
		if err != nil {
			return nil, err
		}
		if o.Status != pay.StatusAwaiting {
			return nil, failf("订单 %s 状态为 %s，只能撤销未支付的上传", in.PayOrdID, o.Status)
		}
		if _, err := p.Cancel(ctx, in.PayOrdID); err != nil {
			return nil, err
		}
		return map[string]any{"success": true, "message": "已撤销"}, nil
	}
	return nil, failf("未知交易 %s", infno)
}

type mobileFee struct {
	FeedetlSn       string  `json:"feedetlSn"`
	MedListCodg     string  `json:"medListCodg"`
	Cnt             decimal `json:"cnt"`
	Pric            decimal `json:"pric"`
	DetItemFeeSumam amount  `json:"detItemFeeSumamt"`
	FeeOcurTime     string  `json:"feeOcurTime"`
}

func (s *Service) mobileUpload(ctx context.Context, p *pay.Service, who *yibao.Principal, decode func(any) error) (any, error) {
	var in struct {
		EcToken       string      `json:"ecToken"`
		PayAuthNo     string      `json:"payAuthNo"`
		PsnNo         string      `json:"psnNo"`
		MdtrtID       string      `json:"mdtrtId"`
		MedOrgOrd     string      `json:"medOrgOrd"`
		OrgCodg       string      `json:"orgCodg"`
		MedfeeSumamt  amount      `json:"medfeeSumamt"`
		AcctUsedFlag  string      `json:"acctUsedFlag"`
		FeedetailList []mobileFee `json:"feedetailList"`
	}
	if err := decode(&in); err != nil {
		return nil, err
	}
	for _, x := range [][2]string{{"medOrgOrd", in.MedOrgOrd}, {"psnNo", in.PsnNo}, {"mdtrtId", in.MdtrtID}} {
		if err := need("data", x[0], x[1]); err != nil {
			return nil, err
		}
	}
	if in.OrgCodg != "" && in.OrgCodg != who.Institution {
		return nil, failf("orgCodg %s 不是认证的机构 %s", in.OrgCodg, who.Institution)
	}
	if in.EcToken != "" {
		psn, _, err := s.ecert.TokenPerson(ctx, in.EcToken)
		if err != nil {
			return nil, err
		}
		if psn != in.PsnNo {
			return nil, failf("ecToken 与 psnNo 不符")
		}
	}
	if _, err := s.visitOf(ctx, "data", in.MdtrtID, in.PsnNo); err != nil {
		return nil, err
	}
	var lines []settlement.FeeLineInput
	var sum money.Fen
	for i, f := range in.FeedetailList {
		node := fmt.Sprintf("feedetailList[%d]", i)
		price, err := money.ParseYuan(string(f.Pric))
		if err != nil {
			return nil, failf("%s.pric %s: 单价至多两位小数", node, f.Pric)
		}
		qty, err := money.ParseRatio(string(f.Cnt))
		if err != nil {
			return nil, failf("%s.cnt %s 不是数量", node, f.Cnt)
		}
		date := s.now().In(yibao.ChinaTime).Format(time.DateOnly)
		if f.FeeOcurTime != "" {
			if date, err = dateOf(node, "feeOcurTime", f.FeeOcurTime); err != nil {
				return nil, err
			}
		}
		amt := money.Fen(f.DetItemFeeSumam)
		sum += amt
		lines = append(lines, settlement.FeeLineInput{FeedetlSn: f.FeedetlSn, CatalogCode: f.MedListCodg, UnitPrice: price, Quantity: qty, Amount: &amt, FeeDate: date})
	}
	if len(lines) > 0 && sum != money.Fen(in.MedfeeSumamt) {
		return nil, failf("Σ detItemFeeSumamt %s ≠ medfeeSumamt %s", yuan(sum), yuan(money.Fen(in.MedfeeSumamt)))
	}
	acct := in.AcctUsedFlag != "0"
	o, err := p.CreateMobile(ctx, pay.MobileRequest{MdtrtID: in.MdtrtID, MedOrgOrd: in.MedOrgOrd, Lines: lines, MedfeeSumamt: money.Fen(in.MedfeeSumamt), UseAccount: &acct})
	if err != nil {
		return nil, err
	}
	tok, err := p.PayToken(ctx, o.PayOrdID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"payOrdId": o.PayOrdID, "payToken": tok, "extData": map[string]any{"mdtrtId": o.MdtrtID,
		"preSetl": map[string]string{"medfeeSumamt": yuan(o.MedfeeSumamt), "fundPay": yuan(o.FundPay), "psnAcctPay": yuan(o.AcctPay), "ownPayAmt": yuan(o.SelfPay)}}}, nil
}

// ordStas maps an order to the center's order states.
var ordStas = map[string]string{pay.StatusAwaiting: "0", pay.StatusPaying: "1", pay.StatusPaid: "2", pay.StatusDeclined: "3",
	pay.StatusVoided: "4", pay.StatusRevoked: "5", pay.StatusPartiallyRefunded: "6", pay.StatusRefunded: "7", pay.StatusReview: "8"}

func orderData(o *pay.Order) map[string]any {
	return map[string]any{"payOrdId": o.PayOrdID, "ordStas": ordStas[o.Status], "ordStasName": o.Status, "medOrgOrd": o.MedOrgOrd,
		"mdtrtId": o.MdtrtID, "setlId": o.SetlID, "feeSumamt": yuan(o.MedfeeSumamt), "ownPayAmt": yuan(o.SelfPay), "psnAcctPay": yuan(o.AcctPay),
		"fundPay": yuan(o.FundPay), "refdAmt": yuan(o.Refunded), "channel": o.Channel, "traceNo": o.TransactionID}
}
