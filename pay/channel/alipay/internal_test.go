package alipay

import (
	"strings"
	"testing"
	"time"

	"yibao/pay/channel"
)

func TestYuanFen(t *testing.T) {
	for _, tc := range []struct {
		fen  int64
		yuan string
	}{{1, "0.01"}, {10, "0.10"}, {100, "1.00"}, {1234567, "12345.67"}, {10000000000, "100000000.00"}, {0, "0.00"}} {
		if got := yuan(tc.fen); got != tc.yuan {
			t.Errorf("yuan(%d) = %q, want %q", tc.fen, got, tc.yuan)
		}
		if got, err := fen(tc.yuan); err != nil || got != tc.fen {
			t.Errorf("fen(%q) = %d, %v; want %d", tc.yuan, got, err, tc.fen)
		}
	}
	for in, want := range map[string]int64{"-3.00": -300, "12.3": 1230, "12": 1200, " 0.01\t": 1, "0.07": 7, "19.99": 1999} {
		if got, err := fen(in); err != nil || got != want {
			t.Errorf("fen(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "1.234", "1e3", "1,000.00", "０.01", "abc", "1.", ".5", "--1"} {
		if got, err := fen(bad); err == nil {
			t.Errorf("fen(%q) = %d, want an error", bad, got)
		}
	}
}

func TestParseTime(t *testing.T) {
	want := time.Date(2025, 3, 14, 10, 30, 0, 0, chinaTime)
	for _, s := range []string{"2025-03-14 10:30:00", "2025-03-14 10:30:00.000"} {
		if got := parseTime(s); !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v", s, got)
		}
	}
	if !parseTime("").IsZero() || !parseTime("yesterday").IsZero() {
		t.Error("parseTime of nothing is not zero")
	}
}

func TestParseBillDetail(t *testing.T) {
	text := "#支付宝业务明细查询\n#账号：[20886210000000010156]\n" +
		// ASCII parentheses and another column order.
		"商户订单号,支付宝交易号,业务类型,商品名称,创建时间,完成时间,订单金额(元),商家实收(元),退款批次号/请求号\n" +
		"T1\t,2025031422001000000000000001\t,交易\t,门诊\t,2025-03-14 10:00:00\t,2025-03-14 10:00:05\t,12345.67\t,12345.67\t,\t\n" +
		"T1\t,2025031422001000000000000001\t,退款\t,门诊\t,2025-03-14 10:00:00\t,2025-03-14 11:00:00\t,-3.00\t,-3.00\t,R1\t\n" +
		"T2\t,2025031422001000000000000002\t,冻结\t,押金\t,2025-03-14 10:00:00\t,2025-03-14 11:00:00\t,1.00\t,1.00\t,\t\n" +
		"\n#-----业务明细列表结束-----\n#交易合计：1笔\n"
	rows, err := parseBillDetail(text)
	if err != nil {
		t.Fatal(err)
	}
	want := []channel.BillRow{
		{Kind: channel.BillPayment, OutTradeNo: "T1", TransactionID: "2025031422001000000000000001", Amount: 1234567, State: channel.StateSuccess,
			Time: time.Date(2025, 3, 14, 10, 0, 5, 0, chinaTime)},
		{Kind: channel.BillRefund, OutTradeNo: "T1", TransactionID: "2025031422001000000000000001", OutRefundNo: "R1", RefundID: "2025031422001000000000000001",
			Amount: 300, State: channel.RefundSuccess, Time: time.Date(2025, 3, 14, 11, 0, 0, 0, chinaTime)},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v", rows)
	}
	for i := range want {
		if rows[i] != want[i] && !(rows[i].Time.Equal(want[i].Time) && sameBut(rows[i], want[i])) {
			t.Errorf("row %d: %+v, want %+v", i, rows[i], want[i])
		}
	}

	for name, bad := range map[string]string{
		"no header":          "#only comments\n",
		"missing column":     "支付宝交易号,商户订单号,业务类型,完成时间\n1,T1,交易,2025-03-14 10:00:00\n",
		"bad amount":         "支付宝交易号,商户订单号,业务类型,完成时间,订单金额（元）,退款批次号/请求号\n1,T1,交易,2025-03-14 10:00:00,12.345,\n",
		"refund without no.": "支付宝交易号,商户订单号,业务类型,完成时间,订单金额（元）,退款批次号/请求号\n1,T1,退款,2025-03-14 10:00:00,-1.00,\n",
	} {
		if _, err := parseBillDetail(bad); err == nil || !strings.Contains(err.Error(), "bill detail") {
			t.Errorf("%s: %v, want an error", name, err)
		}
	}
}

func sameBut(a, b channel.BillRow) bool {
	a.Time, b.Time = time.Time{}, time.Time{}
	return a == b
}
