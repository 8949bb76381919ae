package alipaysim

import (
	"archive/zip"
	"bytes"
	"encoding/csv"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"

	"yibao/sim"
)

// maxBills is how many bill archives the simulator keeps for download.
const maxBills = 64

// billURL is alipay.data.dataservice.bill.downloadurl.query for
// bill_type=trade and a day (yyyy-MM-dd). The bill is built now, with the
// bill faults as they are now, and kept under a download token;
// bill_download_url points at {base}/bill/download?token=….
//
// Unlike Alipay, which publishes a day's bill the next morning (before
// that: isp.bill_not_exist), any day can be fetched, today included.
func (s *Sim) billURL(c *call) result {
	var b struct {
		BillType string `json:"bill_type"`
		BillDate string `json:"bill_date"`
	}
	if err := c.decode(&b); err != nil {
		return result{body: invalidParam("biz_content: %v", err)}
	}
	if b.BillType != "trade" {
		return result{body: bizFail("isv.invalid-arguments", "the simulator serves bill_type=trade only")}
	}
	day, err := time.ParseInLocation("2006-01-02", b.BillDate, chinaTime)
	if err != nil {
		return result{body: bizFail("isv.invalid-arguments", "bill_date 格式错误 (the simulator serves day bills: yyyy-MM-dd)")}
	}
	archive, err := s.buildBill(day, s.faults.Get())
	if err != nil {
		return result{body: obj{"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error", "sub_msg": err.Error()}}
	}
	token := notifyID()
	s.mu.Lock()
	if len(s.bills) >= maxBills { // keep memory bounded in a long demo
		for k := range s.bills {
			delete(s.bills, k)
			break
		}
	}
	s.bills[token] = archive
	s.mu.Unlock()
	return result{body: success(obj{"bill_download_url": c.base + "/bill/download?token=" + token})}
}

// billDownload serves GET /bill/download?token=…: the archive, unsigned.
func (s *Sim) billDownload(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	archive, ok := s.bills[r.URL.Query().Get("token")]
	s.mu.Unlock()
	if !ok {
		http.Error(w, "no such bill (unknown token)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/oct-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="bill.csv.zip"`)
	w.Write(archive)
}

// billHeader is the 业务明细 header, Alipay's columns in Alipay's order.
var billHeader = []string{"支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称",
	"操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）",
	"商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号",
	"服务费（元）", "分润（元）", "备注"}

type billRow struct {
	tradeNo, outTradeNo, kind, subject string
	created, done                      time.Time
	buyer                              string
	amount                             int64 // fen, negative for refunds
	refundNo                           string
}

func (b billRow) record() []string {
	z := "0.00"
	rec := []string{b.tradeNo, b.outTradeNo, b.kind, b.subject, fmtTime(b.created), fmtTime(b.done), "", "",
		"", "", b.buyer, yuan(b.amount), yuan(b.amount), z, z, z,
		z, z, "", z, z, b.refundNo,
		z, z, ""}
	// Alipay ends every value with a tab, so spreadsheets keep long
	// numbers as text.
	for i := range rec {
		rec[i] += "\t"
	}
	return rec
}

// buildBill makes the bill archive of a day (China time) from the trades
// paid and the refunds made that day, with the bill faults applied:
// BillDrop leaves those out_trade_no's rows out, BillAmountDelta changes
// their payment rows' amounts, BillExtra adds made-up payment rows.
//
// The archive is Alipay's: a ZIP of "{pid}_{yyyyMMdd}_业务明细.csv" and
// "{pid}_{yyyyMMdd}_业务明细(汇总).csv", contents and names in GBK.
func (s *Sim) buildBill(day time.Time, f sim.Faults) ([]byte, error) {
	end := day.AddDate(0, 0, 1)
	in := func(t time.Time) bool { return !t.IsZero() && !t.Before(day) && t.Before(end) }
	drop := map[string]bool{}
	for _, no := range f.BillDrop {
		drop[no] = true
	}
	var rows []billRow
	s.mu.Lock()
	for _, t := range s.trades {
		if in(t.paid) && !drop[t.outTradeNo] {
			rows = append(rows, billRow{tradeNo: t.tradeNo, outTradeNo: t.outTradeNo, kind: "交易", subject: t.subject,
				created: t.created, done: t.paid, buyer: mask(t.buyerID), amount: t.amount + f.BillAmountDelta[t.outTradeNo]})
		}
	}
	for _, rf := range s.refunds {
		t := s.trades[rf.outTradeNo]
		if in(rf.at) && !drop[rf.outTradeNo] {
			rows = append(rows, billRow{tradeNo: t.tradeNo, outTradeNo: t.outTradeNo, kind: "退款", subject: t.subject,
				created: t.created, done: rf.at, buyer: mask(t.buyerID), amount: -rf.amount, refundNo: rf.outRequestNo})
		}
	}
	s.mu.Unlock()
	for i := range f.BillExtra {
		at := day.Add(time.Duration(12*60+i) * time.Minute)
		rows = append(rows, billRow{tradeNo: fmt.Sprintf("%s22001%015d", day.Format("20060102"), 900000000000000+i),
			outTradeNo: fmt.Sprintf("SIMEXTRA%s%03d", day.Format("20060102"), i), kind: "交易", subject: "模拟器注入的账单行 (BillExtra)",
			created: at, done: at, buyer: "208***0000", amount: int64(100 * (i + 1))})
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].done.Equal(rows[j].done) {
			return rows[i].done.Before(rows[j].done)
		}
		return rows[i].outTradeNo+rows[i].refundNo < rows[j].outTradeNo+rows[j].refundNo
	})

	ymd := day.Format("20060102")
	cn := func(t time.Time) string { return t.Format("2006年01月02日 15:04:05") }
	var pays, refunds int
	var paid, refunded int64
	for _, r := range rows {
		if r.kind == "交易" {
			pays, paid = pays+1, paid+r.amount
		} else {
			refunds, refunded = refunds+1, refunded-r.amount
		}
	}

	var detail bytes.Buffer
	detail.WriteString("#支付宝业务明细查询\n")
	detail.WriteString("#账号：[" + merchantPID + "0156]\n")
	detail.WriteString("#起始日期：[" + cn(day) + "]   终止日期：[" + cn(end) + "]\n")
	detail.WriteString("#-----------------------------------------业务明细列表----------------------------------------\n")
	w := csv.NewWriter(&detail)
	w.Write(billHeader)
	for _, r := range rows {
		w.Write(r.record())
	}
	w.Flush()
	detail.WriteString("#-----------------------------------------业务明细列表结束------------------------------------\n")
	fmt.Fprintf(&detail, "#交易合计：%d笔，商家实收共：%s元，商家实退共：%s元\n", pays, yuan(paid), yuan(refunded))
	fmt.Fprintf(&detail, "#退款合计：%d笔\n", refunds)
	detail.WriteString("#导出时间：[" + cn(s.now().In(chinaTime)) + "]\n")

	var summary bytes.Buffer
	summary.WriteString("#支付宝业务汇总查询\n#账号：[" + merchantPID + "0156]\n")
	summary.WriteString("#起始日期：[" + cn(day) + "]   终止日期：[" + cn(end) + "]\n")
	summary.WriteString("#-----------------------------------------业务汇总列表----------------------------------------\n")
	sw := csv.NewWriter(&summary)
	sw.Write([]string{"门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）"})
	sw.Write([]string{"合计", "", fmt.Sprint(pays), fmt.Sprint(refunds), yuan(paid - refunded), yuan(paid - refunded)})
	sw.Flush()
	summary.WriteString("#-----------------------------------------业务汇总列表结束------------------------------------\n")

	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, file := range []struct {
		name string
		body []byte
	}{
		{merchantPID + "_" + ymd + "_业务明细.csv", detail.Bytes()},
		{merchantPID + "_" + ymd + "_业务明细(汇总).csv", summary.Bytes()},
	} {
		name, err := gbk(file.name)
		if err != nil {
			return nil, err
		}
		body, err := gbk(string(file.body))
		if err != nil {
			return nil, err
		}
		// NonUTF8: the name is GBK bytes, and the ZIP says so by not
		// setting its UTF-8 flag, as Alipay's archives do.
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: s.now(), NonUTF8: true})
		if err != nil {
			return nil, err
		}
		if _, err := fw.Write([]byte(body)); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// gbk encodes text as GBK. A character GBK lacks (an emoji in a subject)
// becomes the SUB byte 0x1A rather than an error.
func gbk(s string) (string, error) {
	return encoding.ReplaceUnsupported(simplifiedchinese.GBK.NewEncoder()).String(strings.ToValidUTF8(s, "\uFFFD"))
}
