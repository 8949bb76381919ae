package wechatsim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// billHeader is the column list of WeChat's ALL trade bill.
var billHeader = []string{
	"交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识",
	"交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号",
	"退款金额", "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率",
	"订单金额", "申请退款金额", "费率备注",
}

var billSummaryHeader = []string{"总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额", "申请退款总金额"}

// billTTL: how long a download_url stays valid (WeChat's are short-lived).
const billTTL = 10 * time.Minute

type billFile struct {
	data    []byte
	expires time.Time
}

// billRow is one trade line before formatting.
type billRow struct {
	at          time.Time
	txID        string
	outTradeNo  string
	openID      string
	tradeType   string
	state       string // SUCCESS or REFUND
	settle      int64  // 应结订单金额, fen
	refundID    string
	outRefundNo string
	refund      int64 // 退款金额, fen
	refundState string
	description string
	fee         int64
	total       int64 // 订单金额, fen
	askRefund   int64 // 申请退款金额, fen
}

// tradeBill: GET /v3/bill/tradebill?bill_date=YYYY-MM-DD&bill_type=ALL|SUCCESS|REFUND
// → 200 {download_url, hash_type: "SHA1", hash_value}; 400
// NO_STATEMENT_EXIST for a day without trades. The file is built now
// from the day's payments and refunds (China time), with the Bill* faults
// applied, and kept under the token of download_url. (WeChat makes a
// day's bill after 10:00 the next day; the simulator serves any day at
// once, today's too.)
func (s *Sim) tradeBill(r *http.Request, _ []byte) reply {
	q := r.URL.Query()
	day, err := time.ParseInLocation(time.DateOnly, q.Get("bill_date"), chinaTime)
	if err != nil {
		return paramError("bill_date must be YYYY-MM-DD")
	}
	typ := q.Get("bill_type")
	switch typ {
	case "":
		typ = "ALL"
	case "ALL", "SUCCESS", "REFUND":
	default:
		return paramError("bill_type must be ALL, SUCCESS or REFUND")
	}
	if q.Get("tar_type") != "" {
		return paramError("tar_type is not supported by the simulator")
	}
	data, n := s.buildBill(day, typ)
	if n == 0 {
		return fail(http.StatusBadRequest, "NO_STATEMENT_EXIST", "账单文件不存在")
	}
	token := randString(40)
	s.mu.Lock()
	now := time.Now()
	for t, b := range s.bills {
		if now.After(b.expires) {
			delete(s.bills, t)
		}
	}
	s.bills[token] = billFile{data: data, expires: now.Add(billTTL)}
	s.mu.Unlock()
	sum := sha1.Sum(data)
	return ok(map[string]string{
		"download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=" + url.QueryEscape(token),
		"hash_type":    "SHA1",
		"hash_value":   hex.EncodeToString(sum[:]),
	})
}

// billDownload: GET /v3/billdownload/file?token= → the file. The request
// is signed like any other; the answer is not (as at WeChat), so the
// merchant checks the SHA1 given with the download_url.
func (s *Sim) billDownload(w http.ResponseWriter, r *http.Request) {
	if err := s.verify(r, nil); err != nil {
		s.write(w, fail(http.StatusUnauthorized, "SIGN_ERROR", err.Error()))
		return
	}
	s.mu.Lock()
	b, found := s.bills[r.URL.Query().Get("token")]
	s.mu.Unlock()
	if !found || time.Now().After(b.expires) {
		s.write(w, fail(http.StatusNotFound, "RESOURCE_NOT_EXISTS", "the download token is unknown or expired"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(b.data)
}

// buildBill makes the bill file of a day and returns it with its number
// of trade lines.
func (s *Sim) buildBill(day time.Time, typ string) ([]byte, int) {
	from, to := day, day.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(from) && t.Before(to) }
	f := s.faults.Get()
	var rows []billRow
	s.mu.Lock()
	if typ != "REFUND" {
		for _, o := range s.orders {
			if !in(o.PaidAt) || slices.Contains(f.BillDrop, o.OutTradeNo) {
				continue
			}
			amt := o.Amount + f.BillAmountDelta[o.OutTradeNo]
			rows = append(rows, billRow{
				at: o.PaidAt, txID: o.TransactionID, outTradeNo: o.OutTradeNo, openID: o.OpenID,
				tradeType: o.TradeType, state: "SUCCESS", settle: amt, description: o.Description,
				fee: fee(amt), total: amt,
			})
		}
	}
	if typ != "SUCCESS" {
		for _, rf := range s.refunds {
			o := s.orders[rf.OutTradeNo]
			if rf.Status != "SUCCESS" || !in(rf.SuccessAt) || slices.Contains(f.BillDrop, rf.OutTradeNo) {
				continue
			}
			rows = append(rows, billRow{
				at: rf.SuccessAt, txID: o.TransactionID, outTradeNo: o.OutTradeNo, openID: o.OpenID,
				tradeType: o.TradeType, state: "REFUND", refundID: rf.RefundID, outRefundNo: rf.OutRefundNo,
				refund: rf.Amount, refundState: "SUCCESS", description: o.Description, fee: -fee(rf.Amount),
				askRefund: rf.Amount,
			})
		}
	}
	s.mu.Unlock()
	if typ != "REFUND" {
		for i := range f.BillExtra {
			amt := int64(100*(i+1) + 1)
			rows = append(rows, billRow{
				at:         from.Add(12*time.Hour + time.Duration(i)*time.Minute),
				txID:       fmt.Sprintf("4200%s%016d", from.Format("20060102"), 9000000000000000+int64(i)),
				outTradeNo: fmt.Sprintf("SIMEXTRA%s%04d", from.Format("20060102"), i+1),
				openID:     "o-sim-extra", tradeType: "JSAPI", state: "SUCCESS", settle: amt,
				description: "模拟器注入的多余账单行", fee: fee(amt), total: amt,
			})
		}
	}
	slices.SortFunc(rows, func(a, b billRow) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		if c := strings.Compare(a.outTradeNo, b.outTradeNo); c != 0 {
			return c
		}
		return strings.Compare(a.outRefundNo, b.outRefundNo)
	})

	var b strings.Builder
	b.WriteString(strings.Join(billHeader, ",") + "\r\n")
	var settle, refunded, fees, total, ask int64
	for _, r := range rows {
		settle, refunded, fees, total, ask = settle+r.settle, refunded+r.refund, fees+r.fee, total+r.total, ask+r.askRefund
		refundID, outRefundNo, refundType := "0", "0", ""
		if r.state == "REFUND" {
			refundID, outRefundNo, refundType = r.refundID, r.outRefundNo, "ORIGINAL"
		}
		writeBillLine(&b,
			r.at.In(chinaTime).Format(time.DateTime), s.cfg.AppID, s.cfg.MchID, "0", "", r.txID, r.outTradeNo, r.openID,
			r.tradeType, r.state, "OTHERS", "CNY", yuan(r.settle), "0.00", refundID, outRefundNo,
			yuan(r.refund), "0.00", refundType, r.refundState, clean(r.description), "", yuan(r.fee), "0.60%",
			yuan(r.total), yuan(r.askRefund), "")
	}
	b.WriteString(strings.Join(billSummaryHeader, ",") + "\r\n")
	writeBillLine(&b, fmt.Sprint(len(rows)), yuan(settle), yuan(refunded), "0.00", yuan(fees), yuan(total), yuan(ask))
	return []byte(b.String()), len(rows)
}

// writeBillLine writes fields each led by a backtick, WeChat's way of
// keeping spreadsheet programs from reading numbers into them.
func writeBillLine(b *strings.Builder, fields ...string) {
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('`')
		b.WriteString(f)
	}
	b.WriteString("\r\n")
}

// clean keeps a free-text field from breaking the line format.
func clean(s string) string {
	return strings.NewReplacer("`", "'", "\r", " ", "\n", " ").Replace(s)
}

// fee is the 0.6% handling fee in fen, rounded half up.
func fee(fen int64) int64 {
	if fen < 0 {
		return -fee(-fen)
	}
	return (fen*6 + 500) / 1000
}

// yuan formats fen as yuan with two decimals, exactly.
func yuan(fen int64) string {
	sign := ""
	if fen < 0 {
		sign, fen = "-", -fen
	}
	return fmt.Sprintf("%s%d.%02d", sign, fen/100, fen%100)
}
