package alipay

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	sdk "github.com/smartwalle/alipay/v3"
	"golang.org/x/text/encoding/simplifiedchinese"

	"yibao/pay/channel"
)

// maxBill caps a downloaded bill archive and its detail file.
const maxBill = 64 << 20

// Bill downloads and parses the trade bill (业务明细) of a day, China
// time: alipay.data.dataservice.bill.downloadurl.query with
// bill_type=trade answers with bill_download_url, a short-lived plain
// HTTP GET (unsigned) returning a ZIP. The ZIP holds the detail file
// "…_业务明细.csv" and a summary "…_业务明细(汇总).csv", both GBK-encoded
// (file names too). Only the detail file is read:
//
//	#支付宝业务明细查询
//	#账号：[2088…]
//	#…
//	支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,…,订单金额（元）,商家实收（元）,…,退款批次号/请求号,…
//	2024…\t,T1\t,交易\t,…,12.30\t,12.30\t,…
//	2024…\t,T1\t,退款\t,…,-3.00\t,-3.00\t,…,R1\t,…
//	#-----业务明细列表结束-----
//	#交易合计：…
//
// Lines starting with '#' are comments; values carry a trailing tab (so
// spreadsheets keep long numbers as text), trimmed here. Columns are found
// by their header names, not positions. 交易 rows are BillPayment with the
// order amount; 退款 rows are BillRefund with OutRefundNo from
// 退款批次号/请求号 and the refunded amount, which Alipay shows negative,
// as a positive Amount. Other business types (冻结, …) are not payments or
// refunds and are skipped.
func (c *Channel) Bill(ctx context.Context, date string) ([]channel.BillRow, error) {
	if _, err := time.ParseInLocation("2006-01-02", date, chinaTime); err != nil {
		return nil, fmt.Errorf("alipay: bill: date %q: want YYYY-MM-DD", date)
	}
	rsp, err := c.client.BillDownloadURLQuery(ctx, sdk.BillDownloadURLQuery{BillType: "trade", BillDate: date})
	if err != nil || rsp == nil || rsp.Code != sdk.CodeSuccess {
		return nil, classify(asQuery, "bill "+date, codes(rsp), err)
	}
	if rsp.BillDownloadURL == "" {
		return nil, fmt.Errorf("alipay: bill %s: no bill_download_url", date)
	}
	archive, err := c.download(ctx, rsp.BillDownloadURL)
	if err != nil {
		return nil, fmt.Errorf("alipay: bill %s: %w", date, err)
	}
	rows, err := parseBillArchive(archive)
	if err != nil {
		return nil, fmt.Errorf("alipay: bill %s: %w", date, err)
	}
	return rows, nil
}

func (c *Channel) download(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("download: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBill+1))
	if err != nil {
		return nil, fmt.Errorf("download: %w", err)
	}
	if len(b) > maxBill {
		return nil, errors.New("download: bill larger than 64 MiB")
	}
	return b, nil
}

// parseBillArchive finds the detail file in the bill ZIP and parses it.
func parseBillArchive(archive []byte) ([]channel.BillRow, error) {
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		return nil, fmt.Errorf("bill archive: %w", err)
	}
	var detail *zip.File
	for _, f := range zr.File {
		name := zipName(f)
		if strings.HasSuffix(strings.ToLower(name), ".csv") && strings.Contains(name, "业务明细") && !strings.Contains(name, "汇总") {
			detail = f
			break
		}
	}
	if detail == nil {
		return nil, errors.New("bill archive: no 业务明细 file")
	}
	rc, err := detail.Open()
	if err != nil {
		return nil, fmt.Errorf("bill archive: %w", err)
	}
	defer rc.Close()
	raw, err := io.ReadAll(io.LimitReader(rc, maxBill+1))
	if err != nil {
		return nil, fmt.Errorf("bill archive: %w", err)
	}
	if len(raw) > maxBill {
		return nil, errors.New("bill archive: detail file larger than 64 MiB")
	}
	text, err := decodeGBK(raw)
	if err != nil {
		return nil, fmt.Errorf("bill detail: %w", err)
	}
	return parseBillDetail(text)
}

// zipName is a ZIP entry's name as text: Alipay's archives name entries
// in GBK without the ZIP UTF-8 flag.
func zipName(f *zip.File) string {
	if !f.NonUTF8 && utf8.ValidString(f.Name) {
		return f.Name
	}
	if s, err := simplifiedchinese.GBK.NewDecoder().String(f.Name); err == nil {
		return s
	}
	return f.Name
}

// decodeGBK decodes Alipay's GBK text. A UTF-8 byte-order mark marks a
// file already in UTF-8 (not Alipay's, but harmless to accept).
func decodeGBK(b []byte) (string, error) {
	if rest, ok := bytes.CutPrefix(b, []byte("\xef\xbb\xbf")); ok {
		return string(rest), nil
	}
	out, err := simplifiedchinese.GBK.NewDecoder().Bytes(b)
	if err != nil {
		return "", fmt.Errorf("not GBK: %w", err)
	}
	return string(out), nil
}

// Column names of the 业务明细 file.
const (
	colTradeNo    = "支付宝交易号"
	colOutTradeNo = "商户订单号"
	colType       = "业务类型"
	colCreated    = "创建时间"
	colFinished   = "完成时间"
	colAmount     = "订单金额（元）"
	colReceived   = "商家实收（元）"
	colRefundNo   = "退款批次号/请求号"
)

// parseBillDetail parses the text of a 业务明细 file.
func parseBillDetail(text string) ([]channel.BillRow, error) {
	r := csv.NewReader(strings.NewReader(text))
	r.Comment = '#'
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	// Full-width and ASCII parentheses are both seen in the wild.
	norm := strings.NewReplacer("(", "（", ")", "）")
	var col map[string]int
	var rows []channel.BillRow
	for n := 1; ; n++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bill detail: %w", err)
		}
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i]) // values end in "\t"
		}
		if len(rec) == 0 || (len(rec) == 1 && rec[0] == "") {
			continue
		}
		if col == nil {
			col = map[string]int{}
			for i, name := range rec {
				col[norm.Replace(name)] = i
			}
			for _, need := range []string{colTradeNo, colOutTradeNo, colType, colFinished, colAmount, colRefundNo} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("bill detail: no column %s in the header", need)
				}
			}
			continue
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		row := channel.BillRow{
			TransactionID: get(colTradeNo),
			OutTradeNo:    get(colOutTradeNo),
			Time:          parseTime(first(get(colFinished), get(colCreated))),
		}
		amount := first(get(colAmount), get(colReceived))
		a, err := fen(amount)
		if err != nil {
			return nil, fmt.Errorf("bill detail: record %d: %w", n, err)
		}
		switch get(colType) {
		case "交易":
			row.Kind, row.State, row.Amount = channel.BillPayment, channel.StateSuccess, a
		case "退款":
			row.Kind, row.State = channel.BillRefund, channel.RefundSuccess
			row.OutRefundNo, row.RefundID = get(colRefundNo), row.TransactionID
			row.Amount = max(a, -a)
			if row.OutRefundNo == "" {
				return nil, fmt.Errorf("bill detail: record %d: a refund without %s", n, colRefundNo)
			}
		default:
			continue
		}
		rows = append(rows, row)
	}
	if col == nil {
		return nil, errors.New("bill detail: no header row")
	}
	return rows, nil
}
