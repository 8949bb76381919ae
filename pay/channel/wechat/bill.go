package wechat

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/wechatpay-apiv3/wechatpay-go/core"

	"yibao/pay/channel"
)

// maxBill bounds a downloaded bill file.
const maxBill = 64 << 20

// tradeBill is the answer of GET /v3/bill/tradebill.
type tradeBill struct {
	DownloadURL string `json:"download_url"`
	HashType    string `json:"hash_type"`
	HashValue   string `json:"hash_value"`
}

// Bill downloads and parses the trade bill (交易账单, bill_type=ALL) of a
// day in China time. It takes two calls: GET /v3/bill/tradebill answers
// (signed) with a download_url and the file's SHA1; the file itself, from
// GET /v3/billdownload/file?token=..., is signed as a request but its
// answer carries no WeChat signature, so it is checked against that SHA1.
// A day without trades (NO_STATEMENT_EXIST) is an empty bill.
func (c *Channel) Bill(ctx context.Context, date string) ([]channel.BillRow, error) {
	if _, err := time.ParseInLocation(time.DateOnly, date, chinaTime); err != nil {
		return nil, fmt.Errorf("wechat: bill: bad date %q, want YYYY-MM-DD", date)
	}
	what := "bill " + date
	res, err := c.client.Request(ctx, "GET", host+"/v3/bill/tradebill", nil,
		url.Values{"bill_date": {date}, "bill_type": {"ALL"}}, nil, "")
	if err != nil {
		if apiCode(err) == "NO_STATEMENT_EXIST" {
			return nil, nil
		}
		return nil, classify(asQuery, what, err)
	}
	var tb tradeBill
	if err := core.UnMarshalResponse(res.Response, &tb); err != nil {
		return nil, fmt.Errorf("wechat: %s: bad answer: %w", what, err)
	}
	if tb.DownloadURL == "" {
		return nil, fmt.Errorf("wechat: %s: no download_url", what)
	}
	if !strings.EqualFold(tb.HashType, "SHA1") {
		return nil, fmt.Errorf("wechat: %s: unsupported hash_type %q", what, tb.HashType)
	}
	// The download URL is on WeChat's host, so the BaseURL redirect applies.
	dres, err := c.dl.Get(ctx, tb.DownloadURL)
	if err != nil {
		return nil, classify(asQuery, what+": download", err)
	}
	defer dres.Response.Body.Close()
	file, err := io.ReadAll(io.LimitReader(dres.Response.Body, maxBill+1))
	if err != nil {
		return nil, fmt.Errorf("wechat: %s: download: %w", what, err)
	}
	if len(file) > maxBill {
		return nil, fmt.Errorf("wechat: %s: the file exceeds %d bytes", what, maxBill)
	}
	sum := sha1.Sum(file)
	if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, strings.TrimSpace(tb.HashValue)) {
		return nil, fmt.Errorf("wechat: %s: SHA1 %s does not match the announced %s", what, got, tb.HashValue)
	}
	rows, err := ParseTradeBill(file)
	if err != nil {
		return nil, fmt.Errorf("wechat: %s: %w", what, err)
	}
	return rows, nil
}

// Column names of WeChat's trade bill that the parser uses.
const (
	colTime        = "交易时间"
	colTxID        = "微信订单号"
	colOutTradeNo  = "商户订单号"
	colState       = "交易状态"
	colSettleTotal = "应结订单金额"
	colOrderTotal  = "订单金额"
	colRefundID    = "微信退款单号"
	colOutRefundNo = "商户退款单号"
	colRefund      = "退款金额"
	colAskRefund   = "申请退款金额"
	colRefundState = "退款状态"
	summaryFirst   = "总交易单数"
)

// ParseTradeBill parses a trade bill in WeChat's text format: a header
// line of column names; one line per trade whose every field starts with
// a backtick (`2024-05-01 10:00:00,`wx...,`...); then a summary section
// (a header starting with 总交易单数 and one line of totals). Amounts are
// yuan with two decimals and are converted to fen exactly. Columns are
// found by name, so their order does not matter. SUCCESS rows become
// BillPayment rows (the order amount, 订单金额, falling back to
// 应结订单金额); REFUND rows become BillRefund rows (退款金额, falling
// back to 申请退款金额; State is the 退款状态). Other states (REVOKED…)
// are skipped.
func ParseTradeBill(file []byte) ([]channel.BillRow, error) {
	file = bytes.TrimPrefix(file, []byte("\xef\xbb\xbf")) // a UTF-8 BOM, sometimes present
	lines := strings.Split(strings.ReplaceAll(string(file), "\r\n", "\n"), "\n")
	var (
		col  map[string]int
		rows []channel.BillRow
	)
	for i, line := range lines {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if col == nil {
			col = map[string]int{}
			for j, name := range strings.Split(line, ",") {
				col[strings.TrimSpace(strings.TrimPrefix(name, "`"))] = j
			}
			for _, need := range []string{colTime, colOutTradeNo, colState} {
				if _, ok := col[need]; !ok {
					return nil, fmt.Errorf("bill header lacks column %s", need)
				}
			}
			continue
		}
		if strings.HasPrefix(strings.TrimPrefix(line, "`"), summaryFirst) {
			break // the summary section: totals, not trades
		}
		if !strings.HasPrefix(line, "`") {
			return nil, fmt.Errorf("bill line %d: a trade line must start with a backtick", i+1)
		}
		// Fields are separated by ",`": a comma inside a field (商品名称)
		// is not a separator.
		f := strings.Split(line[1:], ",`")
		get := func(name string) string {
			if j, ok := col[name]; ok && j < len(f) {
				return strings.TrimSpace(f[j])
			}
			return ""
		}
		amount := func(names ...string) (int64, error) {
			for _, n := range names {
				if s := get(n); s != "" {
					v, err := YuanToFen(s)
					if err != nil {
						return 0, fmt.Errorf("bill line %d: %s: %w", i+1, n, err)
					}
					return v, nil
				}
			}
			return 0, fmt.Errorf("bill line %d: no amount in %v", i+1, names)
		}
		t, err := time.ParseInLocation(time.DateTime, get(colTime), chinaTime)
		if err != nil {
			return nil, fmt.Errorf("bill line %d: bad %s %q", i+1, colTime, get(colTime))
		}
		row := channel.BillRow{OutTradeNo: get(colOutTradeNo), TransactionID: get(colTxID), Time: t}
		switch st := get(colState); st {
		case "SUCCESS":
			row.Kind, row.State = channel.BillPayment, channel.StateSuccess
			if row.Amount, err = amount(colOrderTotal, colSettleTotal); err != nil {
				return nil, err
			}
		case "REFUND":
			row.Kind, row.State = channel.BillRefund, get(colRefundState)
			row.OutRefundNo, row.RefundID = get(colOutRefundNo), get(colRefundID)
			if row.Amount, err = amount(colRefund, colAskRefund); err != nil {
				return nil, err
			}
		default:
			continue
		}
		rows = append(rows, row)
	}
	if col == nil && len(bytes.TrimSpace(file)) > 0 {
		return nil, errors.New("bill has no header")
	}
	return rows, nil
}

// YuanToFen converts a yuan amount as WeChat writes it ("12.34", "0.01",
// "5", "-0.5") to fen exactly, by its digits, never through a float.
// More than two decimals are refused unless the extra ones are zeros.
func YuanToFen(s string) (int64, error) {
	orig := s
	neg := strings.HasPrefix(s, "-")
	if neg || strings.HasPrefix(s, "+") {
		s = s[1:]
	}
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" || len(whole) > 15 {
		return 0, fmt.Errorf("bad yuan amount %q", orig)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > 2 {
		return 0, fmt.Errorf("bad yuan amount %q: finer than a fen", orig)
	}
	frac += "00"[:2-len(frac)]
	var v int64
	for _, r := range whole + frac {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("bad yuan amount %q", orig)
		}
		v = v*10 + int64(r-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}
