package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"yibao"
	"yibao/credit"
	"yibao/credit/bankapi"
	"yibao/demo"
	"yibao/gmcrypto"
	"yibao/gmcrypto/keystore"
	"yibao/sim/banksim"
)

// DemoBankName is the simulated partner bank's name.
const DemoBankName = "医惠银行（模拟）"

// openCredit builds the credit service and connects the partner bank:
// the in-process bank simulator when configured so, or a `yibao sim bank`
// server at a URL. The client is the production code path either way.
// The platform's bank-facing SM2 key is the active bank-request key of the
// key catalog (its private half stays in the key store); its public half
// is written to bank_keys/platform-public.pem for a standalone simulator.
func (a *App) openCredit(ctx context.Context) error {
	cfg := a.Config
	a.Credit = credit.New(a.DB, a.Ledger, a.Settle, credit.Config{RefKey: gmcrypto.DeriveKey(a.master, "yibao/credit/psn-ref", 32)}, a.Log)
	a.Credit.Audit = a.Audit
	a.Pay.SetCredit(a.Credit)
	if cfg.Banks == "off" {
		return nil
	}
	platform, err := a.signingKey(ctx, keystore.PurposeBankRequest)
	if err != nil {
		return fmt.Errorf("bank-request key: %w", err)
	}
	if err := os.MkdirAll(cfg.BankKeys, 0o700); err != nil {
		return err
	}
	pub, err := gmcrypto.MarshalPublicKeyPEM(platform.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.BankKeys, "platform-public.pem"), pub, 0o644); err != nil {
		return err
	}
	keys, err := banksim.LoadKeys(cfg.BankKeys)
	if err != nil {
		return fmt.Errorf("bank keys: %w", err)
	}
	base := strings.TrimSuffix(cfg.Banks, "/")
	if cfg.Banks == "sim" {
		a.Bank, err = banksim.Start(banksim.Options{Key: keys.Bank, PlatformKey: platform.Public(),
			CallbackURL: a.creditNotifyURL(), StateFile: filepath.Join(cfg.BankKeys, "bank-state.json")}, "127.0.0.1:0")
		if err != nil {
			return err
		}
		base = a.Bank.URL
	}
	bankPub, err := gmcrypto.MarshalPublicKeyPEM(keys.Bank.Public())
	if err != nil {
		return err
	}
	admin := yibao.WithPrincipal(ctx, yibao.System("bootstrap"))
	if _, err := a.Credit.RegisterBank(admin, credit.BankInfo{BankCode: banksim.DefaultBankCode, Name: DemoBankName, KeyID: banksim.DefaultBankKeyID,
		PublicKey: string(bankPub), BaseURL: base, InterestFreeDays: 10}); err != nil {
		return fmt.Errorf("registering the bank: %w", err)
	}
	a.Credit.Connect(banksim.DefaultBankCode, &bankapi.Client{BaseURL: base, KeyID: banksim.DefaultPlatformKeyID, Key: platform,
		BankKeyID: banksim.DefaultBankKeyID, BankKey: keys.Bank.Public()})
	return nil
}

// creditNotifyURL is where banks send callbacks.
func (a *App) creditNotifyURL() string {
	if a.Config.PublicURL == "" {
		return ""
	}
	return strings.TrimSuffix(a.Config.PublicURL, "/") + "/api/v1/credit/notify/" + banksim.DefaultBankCode
}

// DemoCreditScore is the simulated credit score the demo persons get at
// the simulated bank (band ¥5,000); DemoDeclinedScore the one person the
// bank turns down, so both answers can be seen.
const (
	DemoCreditScore   = 720
	DemoDeclinedScore = 580
)

// RestoreBankScores gives the demo persons their simulated credit scores
// (the in-process bank keeps them in memory). The last demo person is
// declined.
func (a *App) RestoreBankScores(d *demo.Dataset) {
	if a.Bank == nil {
		return
	}
	for i, p := range d.Persons {
		score := DemoCreditScore
		if i == len(d.Persons)-1 {
			score = DemoDeclinedScore
		}
		a.Bank.Sim.SetScore(a.Credit.PsnRef(banksim.DefaultBankCode, p.PsnNo), score)
	}
}

// seedCredit gives the first wallet-agreement holder an active credit
// agreement, so credit payment works at once in the demo.
func (a *App) seedCredit(ctx context.Context, d *demo.Dataset, r *SeedReport) error {
	a.RestoreBankScores(d)
	holders := demo.AgreementHolders(d)
	if len(holders) == 0 {
		return nil
	}
	ag, err := a.Credit.Apply(ctx, holders[0], credit.ApplyRequest{BankCode: banksim.DefaultBankCode, ConsentVersion: credit.ConsentVersion, Accept: true})
	if err != nil {
		return fmt.Errorf("seed credit agreement: %w", err)
	}
	if ag.Status != credit.StatusActive {
		return fmt.Errorf("seed credit agreement: the simulated bank answered %s (%s)", ag.Status, ag.Reason)
	}
	r.CreditAgreements++
	return nil
}
