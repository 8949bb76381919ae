package ledger

// The chart of accounts: every registry entity that holds or owes money has
// its accounts, named by a stable id derived from the entity's code. All
// amounts are CNY fen in the ledger "CNY".

// CNY is the ledger (currency book) of every account today.
const CNY = "CNY"

// FundPool is the pooling fund of a region and scheme (e.g. 370100, 310).
func FundPool(admdvs, insutype string) Account {
	return Account{ID: "fund:" + admdvs + ":" + insutype, Ledger: CNY, Kind: KindFundPool, Flags: DebitsMustNotExceedCredits}
}

// LayerFund is a supplementary layer of a region: large-amount (330),
// civil-servant (320) or critical-illness (392) insurance.
func LayerFund(admdvs, insutype string, kind AccountKind) Account {
	return Account{ID: "fund:" + admdvs + ":" + insutype, Ledger: CNY, Kind: kind, Flags: DebitsMustNotExceedCredits}
}

// AssistanceFund is a region's medical-assistance fund.
func AssistanceFund(admdvs string) Account {
	return Account{ID: "assist:" + admdvs, Ledger: CNY, Kind: KindAssistanceFund, Flags: DebitsMustNotExceedCredits}
}

// FundIncome is where a fund's money comes from (contributions, fiscal
// allocations): the outside world, unconstrained.
func FundIncome(fundID string) Account {
	return Account{ID: "income:" + fundID, Ledger: CNY, Kind: KindFundIncome}
}

// PersonalAccount is an insured person's personal account (个人账户); it
// can never go below zero.
func PersonalAccount(psnNo string) Account {
	return Account{ID: "acct:" + psnNo, Ledger: CNY, Kind: KindPersonalAccount, Flags: DebitsMustNotExceedCredits}
}

// HospitalReceivable is what the funds and patients owe an institution
// for settled bills, until it is paid out.
func HospitalReceivable(fixmedinsCode string) Account {
	return Account{ID: "recv:" + fixmedinsCode, Ledger: CNY, Kind: KindHospitalReceivable}
}

// HospitalBank is the institution's bank account outside the platform;
// paying a receivable out moves money there.
func HospitalBank(fixmedinsCode string) Account {
	return Account{ID: "bank:" + fixmedinsCode, Ledger: CNY, Kind: KindHospitalBank}
}

// PatientCash is out-of-pocket money patients paid at an institution's
// counter (cash, card): the outside world.
func PatientCash(fixmedinsCode string) Account {
	return Account{ID: "cash:" + fixmedinsCode, Ledger: CNY, Kind: KindPatientCash}
}

// ChannelClearing is a wallet provider's clearing account (wechat, alipay).
func ChannelClearing(channel string) Account {
	return Account{ID: "clear:" + channel, Ledger: CNY, Kind: KindChannelClearing}
}

// CreditLine is a bank credit agreement: the bank pays out-of-pocket
// amounts up to the limit it funds the line with.
func CreditLine(agreementID string) Account {
	return Account{ID: "credit:" + agreementID, Ledger: CNY, Kind: KindCreditLine, Flags: DebitsMustNotExceedCredits}
}

// CreditLimits is where a bank's credit lines are funded from and
// return to: granting a limit moves it to the line, lowering one moves it
// back. The bank's side of the books (outside world), unconstrained.
func CreditLimits(bank string) Account {
	return Account{ID: "creditlimit:" + bank, Ledger: CNY, Kind: KindCreditLimits}
}

// BankRepayments is money patients repaid to a bank directly (at its
// counter, in its app): the outside world a repayment comes from when no
// wallet of ours collected it.
func BankRepayments(bank string) Account {
	return Account{ID: "repaid:" + bank, Ledger: CNY, Kind: KindBankRepayments}
}

// InterRegion is this node's position with the node of another region
// (admdvs is that region's 6-digit code): the treating node debits it
// for what the insured region's funds owe (异地垫付), the insured node
// credits it for what its funds owe the treating region. Monthly clearing
// brings it back to zero.
func InterRegion(admdvs string) Account {
	return Account{ID: "xr:" + admdvs, Ledger: CNY, Kind: KindInterRegion}
}

// ClearingHouse is the national hub as seen from a node, or a region as
// seen from the hub: the money monthly clearing moves.
func ClearingHouse(id string) Account {
	return Account{ID: "xrclear:" + id, Ledger: CNY, Kind: KindClearingHouse}
}

// InstitutionAccounts are the accounts every institution gets.
func InstitutionAccounts(fixmedinsCode string) []Account {
	return []Account{HospitalReceivable(fixmedinsCode), HospitalBank(fixmedinsCode), PatientCash(fixmedinsCode)}
}
