package pay_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"yibao"
	"yibao/ledger"
	"yibao/money"
	"yibao/pay"
	"yibao/sim"
)

// Refund abuse (reliability matrix row R13; WeChat Pay's refund rules):
// whatever is asked, at once or again, Σ refunds never exceeds what was
// paid — in the order, in our ledger and at the wallet — and one refund
// number refunds once.

// walletRefunds is what the WeChat simulator paid back per out_refund_no
// for the patient's wallet.
func (e *env) walletRefunds(psn string) map[string][]int64 {
	out := map[string][]int64{}
	for _, x := range e.a.Wallets.Wechat.Ledger(pay.PayerRef("wechat", psn)) {
		if x.OutRefundNo != "" {
			out[x.OutRefundNo] = append(out[x.OutRefundNo], x.Amount)
		}
	}
	return out
}

// paidWechat pays a fresh patient's visit through WeChat Pay and returns
// the paid order.
func (e *env) paidWechat() (*pay.Order, string) {
	e.t.Helper()
	psn := e.fresh("wechat")
	o, err := e.a.Pay.PayVisit(e.cashier, e.visit(psn), pay.PayRequest{Channel: "wechat", UseAccount: noAcct})
	if err != nil {
		e.t.Fatal(err)
	}
	if o = e.settle(o.PayOrdID); o.Status != pay.StatusPaid || o.SelfPay < 1000 {
		e.t.Fatalf("paid? %s, out of pocket %s", o.Status, o.SelfPay)
	}
	return o, psn
}

// TestRefundAbuse (R13): a refund above what was paid; twenty refunds at
// once (each number sent twice) that together ask for far more than was
// paid; a refund refused and retried with the same number; a refund whose
// wallet answer is lost, retried with the same number and then followed
// by a new number. Σ refunds ≤ paid throughout, and no refund number is
// paid out twice.
func TestRefundAbuse(t *testing.T) {
	e := newEnv(t)
	o, psn := e.paidWechat()
	paid := o.SelfPay
	recv := ledger.HospitalReceivable(hospital).ID
	wallet0, recv0 := e.balance("wechat", psn), e.balanceOf(recv)
	refused := 0

	// More than was paid.
	if _, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "over", Kind: pay.RefundCash, Amount: paid + 1}); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("a refund of paid + 1 fen: %v", err)
	}
	refused++

	// Twenty refunds of a tenth (+1 fen) at once, each number twice, each
	// caller looking again when told the order moved: nine fit.
	tenth := paid/10 + 1
	var wg sync.WaitGroup
	var mu sync.Mutex
	okNos := map[string]int{}
	conflicts, over := 0, 0
	gun := make(chan struct{})
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			no := fmt.Sprintf("c%02d", i/2)
			<-gun
			for {
				rf, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: no, Kind: pay.RefundCash, Amount: tenth})
				mu.Lock()
				switch {
				case err == nil && rf.RefundNo == no && rf.Amount == tenth:
					okNos[no]++
				case yibao.IsCode(err, yibao.CodeConflict):
					conflicts++ // the order moved meanwhile: look again
					mu.Unlock()
					time.Sleep(time.Millisecond)
					continue
				case yibao.IsCode(err, yibao.CodeInvalid):
					over++ // refund_exceeds_paid
				default:
					t.Errorf("refund %s: %v %+v", no, err, rf)
				}
				mu.Unlock()
				return
			}
		}()
	}
	close(gun)
	wg.Wait()
	got, _ := e.a.Pay.Get(e.admin, o.PayOrdID)
	if got.Refunded != money.Fen(len(okNos))*tenth || got.Refunded > paid || len(okNos) != 9 || over == 0 {
		t.Fatalf("20 numbers at once: %d went through, the order counts %s refunded of %s", len(okNos), got.Refunded, paid)
	}
	concurrentOK := len(okNos)

	// A refund refused (above what is left) is not stored: the same
	// number asked again within what is left goes through, once.
	left := paid - got.Refunded
	if _, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "again", Kind: pay.RefundCash, Amount: left + 1}); !yibao.IsCode(err, yibao.CodeInvalid) {
		t.Fatalf("above what is left: %v", err)
	}
	refused++
	if rf, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "again", Kind: pay.RefundCash, Amount: 100}); err != nil || rf.Status != pay.RefundSucceeded {
		t.Fatalf("the refused number retried within what is left: %v %+v", err, rf)
	}

	// The wallet carries out a refund but its answer is lost: the refund
	// stays processing. The same number again is the same refund; the
	// recovery loop finds it done at the wallet; a new number then takes
	// the rest, and nothing more fits.
	e.faults("wechat", sim.Faults{TimeoutNext: 1})
	rf, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "lost", Kind: pay.RefundCash, Amount: 200})
	if err != nil || (rf.Status != pay.RefundProcessing && rf.Status != pay.RefundSucceeded) { // the wallet's notification may beat the timeout
		t.Fatalf("refund with the wallet's answer lost: %v %+v", err, rf)
	}
	e.faults("wechat", sim.Faults{})
	again, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "lost", Kind: pay.RefundCash, Amount: 200})
	if err != nil || again.OutRefundNo != rf.OutRefundNo {
		t.Fatalf("the same number again: %v %+v", err, again)
	}
	if _, err := e.a.Pay.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rf, _ := e.a.Pay.Get(e.admin, o.PayOrdID); rf.Refunds[len(rf.Refunds)-1].Status != pay.RefundSucceeded {
		t.Fatalf("after the recovery loop: %+v", rf.Refunds[len(rf.Refunds)-1])
	}
	got, _ = e.a.Pay.Get(e.admin, o.PayOrdID)
	rest := paid - got.Refunded
	if rf, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "rest", Kind: pay.RefundCash, Amount: rest}); err != nil || rf.Status != pay.RefundSucceeded {
		t.Fatalf("a new number for the rest: %v %+v", err, rf)
	}
	if _, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "more", Kind: pay.RefundCash, Amount: 1}); err == nil {
		t.Fatal("a refund after everything was refunded went through")
	}
	refused++

	// Σ refunds = paid, at the order, in the ledger and at the wallet;
	// every refund number paid out once.
	got, _ = e.a.Pay.Get(e.admin, o.PayOrdID)
	var walletSum int64
	dup := 0
	for no, xs := range e.walletRefunds(psn) {
		if len(xs) != 1 {
			dup++
			t.Errorf("refund %s paid out %d times", no, len(xs))
		}
		for _, x := range xs {
			walletSum += x
		}
	}
	if got.Refunded != paid || money.Fen(walletSum) != paid || e.balance("wechat", psn)-wallet0 != paid || recv0-e.balanceOf(recv) != paid {
		t.Fatalf("refunded: order %s, wallet refunds %s, wallet balance +%s, receivable −%s; paid %s",
			got.Refunded, money.Fen(walletSum), e.balance("wechat", psn)-wallet0, recv0-e.balanceOf(recv), paid)
	}
	if n := countTransfers(t, e, "refund:"+o.PayOrdID+"-%"); n != len(got.Refunds) {
		t.Fatalf("%d refund transfers for %d refunds", n, len(got.Refunds))
	}
	t.Logf("R13: paid %s; 40 requests for 20 numbers at once (Σ asked %s): %d numbers refunded, %d times told to look again, %d refused as above what was left; %d refusals of refund > paid/left; lost wallet answer retried with the same number: one refund; Σ refunds = %s ≤ paid at order, ledger and wallet; duplicates %d",
		paid, 20*tenth, concurrentOK, conflicts, over, refused, got.Refunded, dup)
}

func countTransfers(t *testing.T, e *env, pattern string) int {
	t.Helper()
	var n int
	if err := e.a.DB.QueryRow(context.Background(), `SELECT COUNT(*) FROM ledger_transfers WHERE id LIKE ?`, pattern).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRefundAfterReversal (R13): once a paid order's settlement is
// reversed outside the payment (POST /settlements/{id}/reverse, or the
// HIS's 2208), its out-of-pocket money is back in the channel's clearing
// account in our books; a cash refund on top would return it a second
// time, so it is refused.
func TestRefundAfterReversal(t *testing.T) {
	e := newEnv(t)
	o, psn := e.paidWechat()
	if _, err := e.a.Settle.Reverse(e.cashier, o.SetlID); err != nil {
		t.Fatal(err)
	}
	clear := ledger.ChannelClearing("wechat").ID
	clear0, wallet0 := e.balanceOf(clear), e.balance("wechat", psn)
	_, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "after", Kind: pay.RefundCash, Amount: o.SelfPay / 2})
	if !yibao.IsCode(err, yibao.CodePrecondition) {
		t.Fatalf("a cash refund after the settlement was reversed: %v: clearing %s → %s, wallet +%s (the reversal had already returned %s)",
			err, clear0, e.balanceOf(clear), e.balance("wechat", psn)-wallet0, o.SelfPay)
	}
	if e.balanceOf(clear) != clear0 || e.balance("wechat", psn) != wallet0 {
		t.Fatalf("the refused refund moved money")
	}
	refusal := yibao.ErrorCode(err)
	// What the patient is owed goes back with a refund of kind all, which
	// moves nothing more in our books.
	all, err := e.a.Pay.Refund(e.cashier, o.PayOrdID, pay.RefundRequest{RefundNo: "all", Kind: pay.RefundAll})
	if err != nil || all.Status != pay.RefundSucceeded || all.Amount != o.SelfPay {
		t.Fatalf("refund all after the reversal: %v %+v", err, all)
	}
	if e.balanceOf(clear) != clear0 || e.balance("wechat", psn)-wallet0 != o.SelfPay {
		t.Fatalf("refund all after the reversal: clearing %s → %s, wallet +%s, want +%s", clear0, e.balanceOf(clear), e.balance("wechat", psn)-wallet0, o.SelfPay)
	}
	t.Logf("R13: cash refund after a reversal refused (%s); refund all then returned the %s paid once (wallet +%s, books unchanged)",
		refusal, o.SelfPay, e.balance("wechat", psn)-wallet0)
}
