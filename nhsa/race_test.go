package nhsa_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"yibao/money"
	"yibao/settlement"
	"yibao/sim/faultfront"
)

// msgid idempotency and 2601 reversals under stress (reliability matrix
// rows R7, R8 and R9; docs/nhsa-interface.md "Idempotency by msgid").

// balances is every ledger account's posted and pending balance.
func balances(t *testing.T, e *env) map[string]string {
	t.Helper()
	rows, err := e.app.DB.Query(context.Background(), `SELECT id, credits_posted - debits_posted, credits_pending - debits_pending FROM ledger_accounts`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id string
		var posted, pending int64
		if err := rows.Scan(&id, &posted, &pending); err != nil {
			t.Fatal(err)
		}
		out[id] = money.Fen(posted).String() + " / " + money.Fen(pending).String()
	}
	return out
}

// changed lists the accounts whose balance differs between two snapshots
// (accounts created meanwhile count from zero).
func changed(a, b map[string]string) []string {
	var out []string
	for id, v := range b {
		was, ok := a[id]
		if !ok {
			was = "0.00 / 0.00"
		}
		if v != was {
			out = append(out, id+": "+was+" → "+v)
		}
	}
	for id := range a {
		if _, ok := b[id]; !ok {
			out = append(out, id+" vanished")
		}
	}
	sort.Strings(out)
	return out
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.app.DB.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// shift is the balance string of account id after the legs moved it
// (posted legs change the posted part, pending legs the pending part).
func shift(was string, legs []settlement.Leg, id string) string {
	if was == "" {
		was = "0.00 / 0.00"
	}
	var p, q string
	fmt.Sscanf(was, "%s / %s", &p, &q)
	posted, pending := money.MustParseYuan(p), money.MustParseYuan(q)
	for _, l := range legs {
		if l.Debit != id && l.Credit != id {
			continue
		}
		amt := l.Amount
		if l.Debit == id {
			amt = -amt
		}
		if l.Pending {
			pending += amt
		} else {
			posted += amt
		}
	}
	return posted.String() + " / " + pending.String()
}

// register opens an outpatient visit with 2201 and returns its mdtrt_id.
func (e *env) register(t *testing.T) string {
	t.Helper()
	reg := decode[struct {
		Data struct {
			MdtrtID string `json:"mdtrt_id"`
		} `json:"data"`
	}](t, e.call(t, e.his, "2201", map[string]any{"data": map[string]string{"psn_no": e.psn, "insutype": "310", "begntime": now(),
		"mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "ipt_otp_no": "MZ0001", "dept_code": "NK", "dept_name": "内科"}}))
	return reg.Data.MdtrtID
}

// fees is a 2204 upload of two lines worth 1,020.50 yuan in all.
func (e *env) fees(md string) map[string]any {
	line := func(sn string, sum, cnt, pric float64) map[string]any {
		return map[string]any{"feedetl_sn": sn, "mdtrt_id": md, "psn_no": e.psn, "chrg_bchno": "B1", "fee_ocur_time": now(),
			"med_list_codg": e.drug, "medins_list_codg": "X1", "det_item_fee_sumamt": sum, "cnt": cnt, "pric": pric, "bilg_dept_codg": "NK",
			"bilg_dept_name": "内科", "bilg_dr_codg": "D01", "bilg_dr_name": "王医生"}
	}
	return map[string]any{"feedetail": []map[string]any{line("F1", 900, 3, 300), line("F2", 120.50, 1, 120.50)}}
}

// settlement is the 2207 (or 2206) input for md's 1,020.50 yuan.
func (e *env) settlement(md string) map[string]any {
	return map[string]any{"data": map[string]any{"psn_no": e.psn, "mdtrt_cert_type": "02", "mdtrt_cert_no": e.idNo, "med_type": "11",
		"medfee_sumamt": 1020.50, "psn_setlway": "01", "mdtrt_id": md, "insutype": "310", "acct_used_flag": "1"}}
}

// flood sends one message n times at once under one msgid, each copy
// through its own client, and sorts the answers: successes by their
// inf_refmsgid (a new execution gets a new one; a replay carries the
// stored one) and output, "being processed" refusals, and anything else.
type flood struct {
	refs    map[string]int
	outputs map[string]int
	output  json.RawMessage
	busy    int
	other   []string
}

func (e *env) flood(t *testing.T, n int, infno, msgid string, input any) *flood {
	t.Helper()
	f := &flood{refs: map[string]int{}, outputs: map[string]int{}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := *e.his
			<-start
			resp, err := c.Send(context.Background(), infno, msgid, input)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				f.other = append(f.other, err.Error())
			case resp.OK():
				f.refs[resp.InfRefmsgid]++
				f.outputs[string(resp.Output)]++
				f.output = resp.Output
			case strings.Contains(resp.ErrMsg, "正在处理中"):
				f.busy++
			default:
				f.other = append(f.other, resp.ErrMsg)
			}
		}()
	}
	close(start)
	wg.Wait()
	return f
}

// once requires one execution among the n answers, and the msgid sent
// again afterwards to replay it byte for byte.
func (f *flood) once(t *testing.T, e *env, what, infno, msgid string, input any, n int) {
	t.Helper()
	resp, err := e.his.Send(context.Background(), infno, msgid, input)
	if err != nil || !resp.OK() || f.refs[resp.InfRefmsgid] == 0 || !bytes.Equal(resp.Output, f.output) {
		t.Fatalf("%s: sent again afterwards: %v %+v, want the stored answer %s", what, err, resp, f.output)
	}
	ok := 0
	for _, c := range f.refs {
		ok += c
	}
	if len(f.other) > 0 || len(f.refs) != 1 || len(f.outputs) != 1 || ok+f.busy != n {
		t.Fatalf("%s: %d successes with %d different inf_refmsgid (executions) and %d different outputs, %d busy, others %q",
			what, ok, len(f.refs), len(f.outputs), f.busy, f.other)
	}
}

// TestMsgidRaceAndReversal (R9): one 2204 fee upload and one 2207
// settlement, each sent 50 times at once under its msgid, run once; 2601
// reverses the settlement with negated entries once and the ledger is back
// to its balances before the settlement; a reversal of an unknown or
// failed message is refused with a stable answer and changes nothing; a
// second reversal (a new msgid naming the same message) changes nothing.
func TestMsgidRaceAndReversal(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const n = 50
	md := e.register(t)

	// 2204 × 50.
	feeMsg, fees := e.his.NewMsgid(), e.fees(md)
	f := e.flood(t, n, "2204", feeMsg, fees)
	f.once(t, e, "2204", "2204", feeMsg, fees, n)
	if got := e.count(t, `SELECT COUNT(*) FROM fee_lines WHERE mdtrt_id = ?`, md); got != 2 {
		t.Fatalf("2204: %d fee lines, want 2", got)
	}
	feeExec, feeBusy := len(f.refs), f.busy

	// A 2207 whose sums disagree is refused and not remembered; a 2601
	// naming it finds nothing to reverse.
	bad := e.settlement(md)
	bad["data"].(map[string]any)["inscp_scp_amt"] = 1020.49
	badMsg := e.his.NewMsgid()
	if _, err := e.his.CallMsgid(ctx, "2207", badMsg, bad); err == nil || !strings.Contains(err.Error(), "inscp_scp_amt") {
		t.Fatalf("2207 with a wrong sum: %v", err)
	}

	// 2207 × 50.
	before := balances(t, e)
	setlMsg := e.his.NewMsgid()
	f = e.flood(t, n, "2207", setlMsg, e.settlement(md))
	f.once(t, e, "2207", "2207", setlMsg, e.settlement(md), n)
	var out struct {
		Setlinfo struct {
			SetlID string `json:"setl_id"`
		} `json:"setlinfo"`
	}
	json.Unmarshal(f.output, &out)
	if got := e.count(t, `SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, md); got != 1 || out.Setlinfo.SetlID == "" {
		t.Fatalf("2207: %d settlements of one visit", got)
	}
	st, err := e.app.Settle.GetSettlement(systemCtx(), out.Setlinfo.SetlID)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, l := range st.Legs {
		want[l.Debit], want[l.Credit] = true, true
	}
	settled := balances(t, e)
	var moved []string
	for id := range want {
		was := before[id]
		if was == "" {
			was = "0.00 / 0.00"
		}
		if now := shift(was, st.Legs, id); now != was {
			moved = append(moved, id+": "+was+" → "+now)
		}
	}
	sort.Strings(moved)
	if got := changed(before, settled); strings.Join(got, "\n") != strings.Join(moved, "\n") {
		t.Fatalf("2207 did not move the ledger by its legs once:\n got %q\nwant %q", got, moved)
	}
	setlExec, setlBusy := len(f.refs), f.busy

	// 2601 for an unknown msgid and for the failed 2207: the same refusal
	// twice, nothing moves.
	for _, omsgid := range []string{"H37010000001" + "20260101000000" + "0000", badMsg} {
		var answers []string
		for range 2 {
			resp, err := e.his.Send(ctx, "2601", e.his.NewMsgid(), map[string]any{"data": map[string]string{"psn_no": e.psn, "omsgid": omsgid, "oinfno": "2207"}})
			if err != nil || resp.OK() {
				t.Fatalf("2601 of %s: %v %+v", omsgid, err, resp)
			}
			answers = append(answers, resp.ErrMsg)
		}
		if answers[0] != answers[1] || !strings.Contains(answers[0], "omsgid") {
			t.Fatalf("2601 of %s: unstable answers %q", omsgid, answers)
		}
	}
	if d := changed(settled, balances(t, e)); len(d) > 0 {
		t.Fatalf("refused reversals moved money: %v", d)
	}

	// 2601 of the settlement, 20 at once with their own msgids: one
	// reversal, mirrored once, the ledger back where it was.
	var wg sync.WaitGroup
	var mu sync.Mutex
	revOK, revOther := 0, []string{}
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := *e.his
			resp, err := c.Send(ctx, "2601", c.NewMsgid(), map[string]any{"data": map[string]string{"psn_no": e.psn, "omsgid": setlMsg, "oinfno": "2207"}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				revOther = append(revOther, err.Error())
			case resp.OK():
				revOK++
			default:
				revOther = append(revOther, resp.ErrMsg)
			}
		}()
	}
	wg.Wait()
	if revOK == 0 {
		t.Fatalf("2601 × 20: none succeeded: %q", revOther)
	}
	for _, m := range revOther {
		if !strings.Contains(m, "changed meanwhile") && !strings.Contains(m, "正在处理中") {
			t.Fatalf("2601 × 20: unexpected answer %q", m)
		}
	}
	mirrored := e.count(t, `SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, st.SetlID+":rev:%")
	events := e.count(t, `SELECT COUNT(*) FROM outbox WHERE subject = ? AND topic = 'settlement.reversed'`, st.SetlID)
	audited := e.count(t, `SELECT COUNT(*) FROM audit_entries WHERE subject = ? AND body LIKE ?`, st.SetlID, `%"status":"reversed"%`)
	if mirrored != len(st.Legs) || events != 1 || audited != 1 {
		t.Fatalf("2601 × 20: %d mirrored transfers for %d legs, %d reversal events, %d reversal audit entries", mirrored, len(st.Legs), events, audited)
	}
	if d := changed(before, balances(t, e)); len(d) > 0 {
		t.Fatalf("after 2601 the ledger is not back to its balances before 2207: %v", d)
	}
	for _, l := range st.Legs {
		tr, err := e.app.Ledger.GetTransfer(ctx, st.SetlID+":rev:"+l.Leg)
		if err != nil || tr.DebitAccountID != l.Credit || tr.CreditAccountID != l.Debit || tr.Amount != l.Amount {
			t.Fatalf("the mirror of %s: %+v %v", l.Leg, tr, err)
		}
	}
	// And once more, later: answered, nothing moves.
	reversed := balances(t, e)
	if _, err := e.his.Call(ctx, "2601", map[string]any{"data": map[string]string{"psn_no": e.psn, "omsgid": setlMsg, "oinfno": "2207"}}); err != nil {
		t.Fatalf("a second reversal: %v", err)
	}
	if d := changed(reversed, balances(t, e)); len(d) > 0 || e.count(t, `SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, st.SetlID+":rev:%") != len(st.Legs) {
		t.Fatalf("a second reversal moved money: %v", d)
	}
	t.Logf("R9: 2204 × %d → %d execution (%d told to retry); 2207 × %d → %d execution (%d told to retry); 2601 × 20 → %d answered success, %d refused as concurrent, %d mirrored transfers for %d legs, 1 reversal event and audit entry, double reversals 0, ledger diff after reversal 0 accounts; unknown and failed omsgid refused with a stable answer",
		n, feeExec, feeBusy, n, setlExec, setlBusy, revOK, len(revOther), mirrored, len(st.Legs))
}

// TestMsgidReplyLostAfterCommit (R7 for the national interface): 2204,
// 2207 and 2601 commit but their answer is lost (on the way, or because
// the HIS hung up right after the commit). The HIS sends the message
// again with the same msgid and gets the stored answer; nothing runs
// twice.
func TestMsgidReplyLostAfterCommit(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	front := &faultfront.LostReply{Inner: e.app.Handler(), KeyOf: func(r *http.Request) string {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var env struct {
			Msgid string `json:"msgid"`
		}
		json.Unmarshal(body, &env)
		return env.Msgid
	}}
	faulty := httptest.NewServer(front)
	defer faulty.Close()
	his := *e.his
	his.BaseURL = faulty.URL
	his.HTTP = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	exists := func(query string, args ...any) func() bool {
		return func() bool {
			var n int
			e.app.DB.QueryRow(context.Background(), query, args...).Scan(&n)
			return n > 0
		}
	}
	var lost, replayed, retries int
	// try loses the answer of the message, then sends it again under the
	// same msgid until it is answered; the answer must be the one stored.
	try := func(what, infno string, input any, committed func() bool) (json.RawMessage, string) {
		t.Helper()
		msgid := his.NewMsgid()
		front.Lose(msgid, committed)
		if resp, err := his.Send(ctx, infno, msgid, input); err == nil {
			t.Fatalf("%s: the answer was meant to be lost: %+v", what, resp)
		}
		lost++
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := e.his.Send(ctx, infno, msgid, input)
			retries++
			if err != nil {
				t.Fatalf("%s: retry: %v", what, err)
			}
			if !resp.OK() && strings.Contains(resp.ErrMsg, "正在处理中") && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if !resp.OK() {
				t.Fatalf("%s: the retry with the same msgid was refused: %s", what, resp.ErrMsg)
			}
			var stored string
			e.app.DB.QueryRow(ctx, `SELECT response FROM nhsa_messages WHERE msgid = ?`, msgid).Scan(&stored)
			if !strings.Contains(stored, `"inf_refmsgid":"`+resp.InfRefmsgid+`"`) {
				t.Fatalf("%s: the retry's answer (inf_refmsgid %s) is not the stored one: %.300s", what, resp.InfRefmsgid, stored)
			}
			replayed++
			return resp.Output, msgid
		}
	}
	const trials = 3
	for trial := range 2 * trials {
		hang := trial >= trials
		mode := map[bool]string{false: "answer lost", true: "HIS hung up after the commit"}[hang]
		when := func(query string, args ...any) func() bool {
			if !hang {
				return nil
			}
			return exists(query, args...)
		}
		md := e.register(t)
		try("2204, "+mode, "2204", e.fees(md), when(`SELECT COUNT(*) FROM fee_lines WHERE mdtrt_id = ?`, md))
		if got := e.count(t, `SELECT COUNT(*) FROM fee_lines WHERE mdtrt_id = ?`, md); got != 2 {
			t.Fatalf("2204, %s: %d lines", mode, got)
		}
		before := balances(t, e)
		out, setlMsg := try("2207, "+mode, "2207", e.settlement(md), when(`SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, md))
		var st struct {
			Setlinfo struct {
				SetlID string `json:"setl_id"`
			} `json:"setlinfo"`
		}
		json.Unmarshal(out, &st)
		if got := e.count(t, `SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, md); got != 1 || st.Setlinfo.SetlID == "" {
			t.Fatalf("2207, %s: %d settlements", mode, got)
		}
		legs := e.count(t, `SELECT COUNT(*) FROM ledger_transfers WHERE user_data = ? AND code = 'settlement'`, st.Setlinfo.SetlID)
		try("2601, "+mode, "2601", map[string]any{"data": map[string]string{"psn_no": e.psn, "omsgid": setlMsg, "oinfno": "2207"}},
			when(`SELECT COUNT(*) FROM settlements WHERE setl_id = ? AND status = 'reversed'`, st.Setlinfo.SetlID))
		if got := e.count(t, `SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, st.Setlinfo.SetlID+":rev:%"); got != legs || legs == 0 {
			t.Fatalf("2601, %s: %d mirrored transfers for %d legs", mode, got, legs)
		}
		if d := changed(before, balances(t, e)); len(d) > 0 {
			t.Fatalf("2601, %s: the ledger is not back: %v", mode, d)
		}
	}
	t.Logf("R7: msgid: %d answers lost after the commit (%d by a HIS hanging up, %d of those while the message was still running), %d resends, stored answers replayed %d = lost answers; duplicate executions 0",
		lost, lost/2, front.Cancelled(), retries, replayed)
}

// TestFailedMessageIsNotSticky (R8 for the national interface): unlike an
// Idempotency-Key, a msgid whose message was refused is not remembered
// (docs/nhsa-interface.md: "A failed message is not stored: it wrote
// nothing, and the HIS may send it again corrected"). A 2207 refused
// because the fee lines were not uploaded yet, sent again with the same
// msgid and content once they are, settles — once.
func TestFailedMessageIsNotSticky(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	md := e.register(t)
	msgid := e.his.NewMsgid()
	first, err := e.his.Send(ctx, "2207", msgid, e.settlement(md))
	if err != nil || first.OK() {
		t.Fatalf("2207 before the fee upload: %v %+v", err, first)
	}
	if got := e.count(t, `SELECT COUNT(*) FROM nhsa_messages WHERE msgid = ?`, msgid); got != 0 {
		t.Fatalf("the refused message was remembered (%d rows)", got)
	}
	e.call(t, e.his, "2204", e.fees(md))
	out, err := e.his.CallMsgid(ctx, "2207", msgid, e.settlement(md))
	if err != nil {
		t.Fatalf("the same msgid after the cause was removed: %v", err)
	}
	again, err := e.his.CallMsgid(ctx, "2207", msgid, e.settlement(md))
	type setl struct {
		Setlinfo struct {
			SetlID string `json:"setl_id"`
		} `json:"setlinfo"`
	}
	if err != nil || decode[setl](t, out).Setlinfo.SetlID != decode[setl](t, again).Setlinfo.SetlID {
		t.Fatalf("and once more: %v\n%s\n%s", err, out, again)
	}
	if got := e.count(t, `SELECT COUNT(*) FROM settlements WHERE mdtrt_id = ?`, md); got != 1 {
		t.Fatalf("%d settlements", got)
	}
	t.Logf("R8 (msgid, documented): refused 2207 (%q) not remembered; the same msgid settled once the cause was removed; settlements 1",
		first.ErrMsg)
}
