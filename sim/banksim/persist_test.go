package banksim

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"yibao/credit/bankapi"
)

// startBankState runs a simulated bank keeping its state in file.
func startBankState(t *testing.T, file string) (*Server, *bankapi.Client) {
	t.Helper()
	srv, err := Start(Options{BankCode: "yhbank", BankKeyID: "bank-k1", Key: bankKey, PlatformKeyID: "plat-k1",
		PlatformKey: platformKey.Public(), StateFile: file}, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, &bankapi.Client{BaseURL: srv.URL, KeyID: "plat-k1", Key: platformKey, BankKeyID: "bank-k1", BankKey: bankKey.Public()}
}

func TestStateSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	file := filepath.Join(dir, "bank-state.json")

	srv, c := startBankState(t, file)
	d := approved(t, srv, c, "AG1", 700) // 500000 fen
	at := time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)
	draw := bankapi.DrawNotice{DrawID: "D1", AgreementNo: "AG1", BankAgreementID: d.BankAgreementID, FixmedinsCode: "H11010100001",
		SetlID: "S-D1", AmountFen: 30000, At: at, DueDate: "2026-03-12"}
	if err := c.Draw(ctx, draw); err != nil {
		t.Fatal(err)
	}
	counter, err := srv.Sim.RepayAtCounter(ctx, "AG1", 5000)
	if counter == nil || !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("counter repayment %+v, %v", counter, err)
	}
	rp := bankapi.Repayment{RepayID: "R1", AgreementNo: "AG1", BankAgreementID: d.BankAgreementID, Channel: bankapi.ChannelWechat, AmountFen: 1000, PaidAt: at}
	if err := c.Repaid(ctx, rp); err != nil {
		t.Fatal(err)
	}
	srv.Sim.SetFaults(Faults{DayExtra: 1, DeclineAll: true})
	before := srv.Sim.State()
	srv.Close()

	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file %v, %v; want mode 0600", fi, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left in the folder: %v", ents)
	}

	srv, c = startBankState(t, file)
	if st, ok := srv.Sim.Agreement("AG1"); !ok || st != (bankapi.AgreementState{BankAgreementID: d.BankAgreementID, AgreementNo: "AG1",
		Status: bankapi.StatusActive, LimitFen: 500000, OutstandingFen: 24000}) {
		t.Fatalf("agreement after a restart: %+v, %v", st, ok)
	}
	after := srv.Sim.State()
	if f := after.Faults; !same(f, Faults{}) {
		t.Fatalf("faults survived a restart: %+v", f)
	}
	if len(after.Callbacks) != 0 {
		t.Fatalf("callbacks %+v", after.Callbacks)
	}
	before.Faults, before.Callbacks = Faults{}, []SentCallback{}
	if !same(before, after) {
		t.Fatalf("state before the restart\n%+v\nafter\n%+v", before, after)
	}
	if sc := srv.Sim.ScoreOf("P-AG1"); sc != 700 {
		t.Fatalf("score override after a restart: %d", sc)
	}

	// Replays are recognised.
	again, err := c.Apply(ctx, applyReq("AP-AG1", "AG1", "P-AG1", 0))
	if err != nil || !same(again, d) {
		t.Fatalf("same application after a restart: %+v, %v; want %+v", again, err, d)
	}
	if got, err := c.Application(ctx, "AP-AG1"); err != nil || !same(got, d) {
		t.Fatalf("GET application after a restart: %+v, %v", got, err)
	}
	_, err = c.Apply(ctx, applyReq("AP-AG1", "AG1", "P-AG1", 1))
	wantError(t, err, 409, bankapi.CodeDuplicateApplyID)
	if err := c.Draw(ctx, draw); err != nil {
		t.Fatalf("same draw after a restart: %v", err)
	}
	other := draw
	other.AmountFen++
	wantError(t, c.Draw(ctx, other), 409, bankapi.CodeDuplicateDrawID)
	if err := c.Repaid(ctx, rp); err != nil {
		t.Fatalf("same repayment after a restart: %v", err)
	}
	// The bank's own counter repayment is not the platform's to report.
	own := *counter
	wantError(t, c.Repaid(ctx, own), 409, bankapi.CodeDuplicateRepayID)
	st := srv.Sim.State()
	if len(st.Draws) != 1 || len(st.Repayments) != 2 || len(st.Applications) != 1 {
		t.Fatalf("replays recorded again: %d draws, %d repayments, %d applications", len(st.Draws), len(st.Repayments), len(st.Applications))
	}
	if ag, _ := srv.Sim.Agreement("AG1"); ag.OutstandingFen != 24000 {
		t.Fatalf("outstanding after replays %d, want 24000", ag.OutstandingFen)
	}

	// New changes keep being saved.
	draw2 := draw
	draw2.DrawID, draw2.SetlID, draw2.AmountFen = "D2", "S-D2", 1000
	if err := c.Draw(ctx, draw2); err != nil {
		t.Fatal(err)
	}
	if err := srv.Sim.Suspend(ctx, "AG1", "fraud check"); !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("suspend: %v", err)
	}
	srv.Close()
	srv, c = startBankState(t, file)
	if ag, _ := srv.Sim.Agreement("AG1"); ag.OutstandingFen != 25000 || ag.Status != bankapi.StatusSuspended {
		t.Fatalf("agreement after a second restart: %+v", ag)
	}
	if n := len(srv.Sim.State().Draws); n != 2 {
		t.Fatalf("%d draws after a second restart, want 2", n)
	}
}

func TestBadStateFile(t *testing.T) {
	dir := t.TempDir()
	o := Options{BankCode: "yhbank", Key: bankKey, PlatformKey: platformKey.Public()}

	corrupt := filepath.Join(dir, "corrupt.json")
	if err := os.WriteFile(corrupt, []byte(`{"version": 1, "agreements": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	o.StateFile = corrupt
	srv, err := Start(o, "127.0.0.1:0")
	if err == nil {
		srv.Close()
		t.Fatal("started on a corrupt state file")
	}
	if !errors.Is(err, ErrBadStateFile) || !strings.Contains(err.Error(), corrupt) {
		t.Fatalf("err = %v; want ErrBadStateFile naming %s", err, corrupt)
	}
	if _, err := NewWithState(o); !errors.Is(err, ErrBadStateFile) {
		t.Fatalf("NewWithState: %v", err)
	}
	// New starts empty and leaves the file alone.
	s := New(o)
	s.SetScore("P1", 700)
	if b, _ := os.ReadFile(corrupt); string(b) != `{"version": 1, "agreements": [` {
		t.Fatalf("New overwrote a corrupt state file: %s", b)
	}

	other := filepath.Join(dir, "other-bank.json")
	o.StateFile = other
	o.BankCode = "otherbank"
	New(o).SetScore("P1", 700)
	o.BankCode = "yhbank"
	if _, err := Start(o, "127.0.0.1:0"); !errors.Is(err, ErrBadStateFile) || !strings.Contains(err.Error(), "otherbank") {
		t.Fatalf("another bank's state file: %v", err)
	}

	// A missing file is an empty bank.
	o.StateFile = filepath.Join(dir, "missing", "state.json")
	srv, err = Start(o, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if st := srv.Sim.State(); len(st.Agreements) != 0 {
		t.Fatalf("agreements from nowhere: %+v", st.Agreements)
	}
}
