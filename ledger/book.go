package ledger

import (
	"fmt"
)

// Book is an in-memory working set of accounts and transfers on which
// batches are applied. It is not safe for concurrent use; the engine's one
// writer owns it. Everything a batch changes can be rolled back to a
// checkpoint, which is how linked chains and units stay all-or-nothing.
type Book struct {
	accounts  map[string]*Account
	transfers map[string]*Transfer
	loadedTr  map[string]bool // transfer ids looked up in storage (found or not)
	loadedAcc map[string]bool // account ids looked up in storage (found or not)
	nextSeq   int64

	// Changes since the last TakeChanges.
	created     []*Transfer         // new transfers, in order
	newAccounts []*Account          // new accounts, in order
	dirty       map[string]*Account // accounts whose amounts changed
	resolved    map[string]*Transfer

	saves []*save // checkpoint stack
}

// save records what to restore on rollback.
type save struct {
	accounts    map[string]*Account // id → copy before the first change (nil: did not exist)
	transfers   map[string]*Transfer
	dirtyAdded  []string
	resolvAdded []string
	createdLen  int
	newAccLen   int
	nextSeq     int64
}

// NewBook returns an empty book whose next transfer gets sequence number
// nextSeq.
func NewBook(nextSeq int64) *Book {
	b := &Book{nextSeq: nextSeq}
	b.reset()
	return b
}

func (b *Book) reset() {
	b.accounts = map[string]*Account{}
	b.transfers = map[string]*Transfer{}
	b.loadedTr = map[string]bool{}
	b.loadedAcc = map[string]bool{}
	b.dirty = map[string]*Account{}
	b.resolved = map[string]*Transfer{}
}

// NextSeq is the sequence number the next new transfer will get.
func (b *Book) NextSeq() int64 { return b.nextSeq }

// Load adds accounts and transfers read from storage, and marks every id in
// accIDs and trIDs as looked up (so absent ones are not asked for again).
func (b *Book) Load(accounts []Account, transfers []Transfer, accIDs, trIDs []string) {
	for i := range accounts {
		a := accounts[i]
		b.accounts[a.ID] = &a
	}
	for i := range transfers {
		t := transfers[i]
		b.transfers[t.ID] = &t
	}
	for _, id := range accIDs {
		b.loadedAcc[id] = true
	}
	for _, id := range trIDs {
		b.loadedTr[id] = true
	}
}

// Missing lists the account and transfer ids a batch refers to that the
// book has not looked up yet.
func (b *Book) Missing(accounts []Account, ts []Transfer) (accIDs, trIDs []string) {
	seenA, seenT := map[string]bool{}, map[string]bool{}
	needA := func(id string) {
		if id != "" && !b.loadedAcc[id] && b.accounts[id] == nil && !seenA[id] {
			seenA[id] = true
			accIDs = append(accIDs, id)
		}
	}
	needT := func(id string) {
		if id != "" && !b.loadedTr[id] && b.transfers[id] == nil && !seenT[id] {
			seenT[id] = true
			trIDs = append(trIDs, id)
		}
	}
	for _, a := range accounts {
		needA(a.ID)
	}
	for _, t := range ts {
		needA(t.DebitAccountID)
		needA(t.CreditAccountID)
		needT(t.ID)
		needT(t.PendingID)
	}
	return accIDs, trIDs
}

// Account returns the book's account, or nil.
func (b *Book) Account(id string) *Account { return b.accounts[id] }

// Transfer returns the book's transfer, or nil.
func (b *Book) Transfer(id string) *Transfer { return b.transfers[id] }

// Size reports how many accounts and transfers the book holds.
func (b *Book) Size() (accounts, transfers int) { return len(b.accounts), len(b.transfers) }

// Forget drops cached transfers (keeping accounts), or everything when all
// is set; the engine calls it between batches to bound memory.
func (b *Book) Forget(all bool) {
	if all {
		b.reset()
		return
	}
	b.transfers = map[string]*Transfer{}
	b.loadedTr = map[string]bool{}
}

// Changes is what a batch changed, for the engine to persist.
type Changes struct {
	Transfers []*Transfer // new transfers in sequence order
	Accounts  []*Account  // new accounts
	Dirty     []*Account  // accounts whose amounts changed (new ones included)
	Resolved  []*Transfer // pending transfers whose status changed
}

// TakeChanges returns and clears the changes since the last call. There
// must be no open checkpoint.
func (b *Book) TakeChanges() Changes {
	if len(b.saves) > 0 {
		panic("ledger: TakeChanges with an open checkpoint")
	}
	c := Changes{Transfers: b.created, Accounts: b.newAccounts}
	for _, a := range b.dirty {
		c.Dirty = append(c.Dirty, a)
	}
	for _, t := range b.resolved {
		c.Resolved = append(c.Resolved, t)
	}
	b.created, b.newAccounts = nil, nil
	b.dirty, b.resolved = map[string]*Account{}, map[string]*Transfer{}
	return c
}

// Checkpoint opens a point to roll back to; checkpoints nest.
func (b *Book) Checkpoint() {
	b.saves = append(b.saves, &save{accounts: map[string]*Account{}, transfers: map[string]*Transfer{},
		createdLen: len(b.created), newAccLen: len(b.newAccounts), nextSeq: b.nextSeq})
}

// Release closes the innermost checkpoint, keeping its changes (they
// become part of the enclosing checkpoint, if any).
func (b *Book) Release() {
	n := len(b.saves)
	top := b.saves[n-1]
	b.saves = b.saves[:n-1]
	if n == 1 {
		return
	}
	outer := b.saves[n-2]
	for id, a := range top.accounts {
		if _, ok := outer.accounts[id]; !ok {
			outer.accounts[id] = a
		}
	}
	for id, t := range top.transfers {
		if _, ok := outer.transfers[id]; !ok {
			outer.transfers[id] = t
		}
	}
	outer.dirtyAdded = append(outer.dirtyAdded, top.dirtyAdded...)
	outer.resolvAdded = append(outer.resolvAdded, top.resolvAdded...)
}

// Rollback undoes everything since the innermost checkpoint and closes it.
func (b *Book) Rollback() {
	n := len(b.saves)
	top := b.saves[n-1]
	b.saves = b.saves[:n-1]
	for id, prev := range top.accounts {
		if prev == nil {
			delete(b.accounts, id)
		} else {
			*b.accounts[id] = *prev
		}
	}
	for id, prev := range top.transfers {
		if prev == nil {
			delete(b.transfers, id)
		} else {
			*b.transfers[id] = *prev
		}
	}
	for _, id := range top.dirtyAdded {
		delete(b.dirty, id)
	}
	for _, id := range top.resolvAdded {
		delete(b.resolved, id)
	}
	b.created = b.created[:top.createdLen]
	b.newAccounts = b.newAccounts[:top.newAccLen]
	b.nextSeq = top.nextSeq
}

// touchAccount records a's state before its first change in the current
// checkpoint and marks it dirty.
func (b *Book) touchAccount(a *Account, isNew bool) {
	if n := len(b.saves); n > 0 {
		s := b.saves[n-1]
		if _, ok := s.accounts[a.ID]; !ok {
			if isNew {
				s.accounts[a.ID] = nil
			} else {
				c := *a
				s.accounts[a.ID] = &c
			}
		}
		if _, ok := b.dirty[a.ID]; !ok {
			s.dirtyAdded = append(s.dirtyAdded, a.ID)
		}
	}
	b.dirty[a.ID] = a
}

func (b *Book) touchTransfer(t *Transfer, isNew bool) {
	if n := len(b.saves); n > 0 {
		s := b.saves[n-1]
		if _, ok := s.transfers[t.ID]; !ok {
			if isNew {
				s.transfers[t.ID] = nil
			} else {
				c := *t
				s.transfers[t.ID] = &c
			}
		}
		if !isNew {
			if _, ok := b.resolved[t.ID]; !ok {
				s.resolvAdded = append(s.resolvAdded, t.ID)
			}
		}
	}
	if !isNew {
		b.resolved[t.ID] = t
	}
}

// CreateAccount adds an account. Creating an account that exists with the
// same id, ledger, kind and flags succeeds and changes nothing.
func (b *Book) CreateAccount(a Account, now int64) error {
	bad := func(r Reason, d string) error { return &TransferError{ID: a.ID, Reason: r, Detail: d} }
	if a.ID == "" || len(a.ID) > 128 {
		return bad(ReasonBadAccount, "id must be 1–128 bytes")
	}
	if a.Ledger == "" || a.Kind == "" {
		return bad(ReasonBadAccount, "ledger and kind are required")
	}
	if a.Flags&DebitsMustNotExceedCredits != 0 && a.Flags&CreditsMustNotExceedDebits != 0 {
		return bad(ReasonFlagsConflict, "an account cannot constrain both sides")
	}
	if a.DebitsPending != 0 || a.DebitsPosted != 0 || a.CreditsPending != 0 || a.CreditsPosted != 0 {
		return bad(ReasonBadAccount, "a new account starts at zero; fund it with a transfer")
	}
	if old := b.accounts[a.ID]; old != nil {
		if old.Ledger != a.Ledger || old.Kind != a.Kind || old.Flags != a.Flags {
			return bad(ReasonAccountExists, fmt.Sprintf("exists as %s/%s/%d", old.Ledger, old.Kind, old.Flags))
		}
		return nil
	}
	a.CreatedAt = now
	acc := &a
	b.accounts[a.ID] = acc
	b.newAccounts = append(b.newAccounts, acc)
	b.touchAccount(acc, true)
	return nil
}

// Result is the outcome of one transfer of a batch.
type Result struct {
	Transfer *Transfer // the stored transfer (the original one when Existed)
	Existed  bool      // the id was already applied with the same fields
	Err      error     // *TransferError, or nil
}

// Apply applies a batch in order at time now (unix µs). Linked chains
// succeed or fail as a whole; other transfers are independent. It returns
// one result per transfer. Every account and transfer the batch refers to
// must have been loaded (see Missing).
func (b *Book) Apply(ts []Transfer, now int64) []Result {
	res := make([]Result, len(ts))
	for start := 0; start < len(ts); {
		end := start
		for end < len(ts)-1 && ts[end].Flags&Linked != 0 {
			end++
		}
		if ts[end].Flags&Linked != 0 { // the batch ends inside a chain
			for i := start; i <= end; i++ {
				res[i].Err = &TransferError{Index: i, ID: ts[i].ID, Reason: ReasonLinkedChainOpen, Detail: "the last transfer of a batch cannot be linked"}
			}
			break
		}
		chain := end > start
		if chain {
			b.Checkpoint()
		}
		failed := -1
		for i := start; i <= end; i++ {
			res[i] = b.apply(ts[i], i, now)
			if res[i].Err != nil {
				failed = i
				break
			}
		}
		if chain {
			if failed >= 0 {
				b.Rollback()
				for i := start; i <= end; i++ {
					if i != failed {
						res[i] = Result{Err: &TransferError{Index: i, ID: ts[i].ID, Reason: ReasonLinkedEventFailed,
							Detail: fmt.Sprintf("transfer %s of the chain failed", ts[failed].ID)}}
					}
				}
			} else {
				b.Release()
			}
		}
		start = end + 1
	}
	return res
}

func (b *Book) apply(t Transfer, index int, now int64) Result {
	fail := func(r Reason, d string) Result {
		return Result{Err: &TransferError{Index: index, ID: t.ID, Reason: r, Detail: d}}
	}
	if t.ID == "" || len(t.ID) > 128 {
		return fail(ReasonMissingID, "every transfer needs a client-supplied id of 1–128 bytes")
	}
	kinds := 0
	for _, f := range []TransferFlags{Pending, PostPending, VoidPending} {
		if t.Flags&f != 0 {
			kinds++
		}
	}
	if kinds > 1 {
		return fail(ReasonFlagsConflict, "pending, post and void are exclusive")
	}
	if old := b.transfers[t.ID]; old != nil {
		req := t
		if req.Flags&PostPending != 0 && req.Amount == 0 {
			if p := b.transfers[req.PendingID]; p != nil {
				req.Amount = p.Amount // "post it all" means the pending amount
			}
		}
		if sameRequest(old, &req) {
			return Result{Transfer: old, Existed: true}
		}
		return fail(ReasonExistsDifferent, "a transfer with this id exists with other fields")
	}
	if t.Timeout < 0 || (t.Timeout > 0 && t.Flags&Pending == 0) {
		return fail(ReasonBadTimeout, "timeout is for pending transfers, in whole seconds ≥ 0")
	}
	if t.Flags&(PostPending|VoidPending) != 0 {
		return b.resolve(t, now, fail)
	}
	if t.Amount <= 0 {
		return fail(ReasonAmountNotPositive, fmt.Sprintf("amount %s", t.Amount))
	}
	if t.DebitAccountID == t.CreditAccountID {
		return fail(ReasonSameAccount, "")
	}
	dr, cr := b.accounts[t.DebitAccountID], b.accounts[t.CreditAccountID]
	if dr == nil {
		return fail(ReasonAccountNotFound, "debit account "+t.DebitAccountID)
	}
	if cr == nil {
		return fail(ReasonAccountNotFound, "credit account "+t.CreditAccountID)
	}
	if t.Ledger == "" {
		t.Ledger = dr.Ledger
	}
	if dr.Ledger != cr.Ledger || t.Ledger != dr.Ledger {
		return fail(ReasonLedgerMismatch, fmt.Sprintf("%s is in %s, %s in %s, transfer in %s", dr.ID, dr.Ledger, cr.ID, cr.Ledger, t.Ledger))
	}
	if dr.Flags&DebitsMustNotExceedCredits != 0 && dr.DebitsPending+dr.DebitsPosted+t.Amount > dr.CreditsPosted {
		return fail(ReasonExceedsCredits, fmt.Sprintf("%s has %s available, needs %s", dr.ID, dr.Available(), t.Amount))
	}
	if cr.Flags&CreditsMustNotExceedDebits != 0 && cr.CreditsPending+cr.CreditsPosted+t.Amount > cr.DebitsPosted {
		return fail(ReasonExceedsDebits, fmt.Sprintf("%s can take %s more, needs %s", cr.ID, cr.DebitsPosted-cr.CreditsPosted-cr.CreditsPending, t.Amount))
	}
	b.touchAccount(dr, false)
	b.touchAccount(cr, false)
	if t.Flags&Pending != 0 {
		dr.DebitsPending += t.Amount
		cr.CreditsPending += t.Amount
		t.Status = StatusPending
		if t.Timeout > 0 {
			t.ExpiresAt = now + t.Timeout*1_000_000
		}
	} else {
		dr.DebitsPosted += t.Amount
		cr.CreditsPosted += t.Amount
	}
	return Result{Transfer: b.add(t, now, dr, cr)}
}

// add stores a new transfer with the next sequence number.
func (b *Book) add(t Transfer, now int64, dr, cr *Account) *Transfer {
	t.Seq, t.Timestamp = b.nextSeq, now
	t.DebitBalance, t.CreditBalance = dr.CreditBalance(), cr.CreditBalance()
	b.nextSeq++
	p := &t
	b.transfers[t.ID] = p
	b.touchTransfer(p, true)
	b.created = append(b.created, p)
	return p
}

func (b *Book) resolve(t Transfer, now int64, fail func(Reason, string) Result) Result {
	p := b.transfers[t.PendingID]
	if t.PendingID == "" || p == nil {
		return fail(ReasonPendingNotFound, "pending transfer "+t.PendingID)
	}
	if p.Flags&Pending == 0 {
		return fail(ReasonNotPending, t.PendingID+" is not a pending transfer")
	}
	switch p.Status {
	case StatusPosted:
		return fail(ReasonPendingPosted, t.PendingID)
	case StatusVoided:
		return fail(ReasonPendingVoided, t.PendingID)
	case StatusExpired:
		return fail(ReasonPendingExpired, t.PendingID)
	}
	expiring := t.Code == CodeExpiry
	if p.ExpiresAt != 0 && now >= p.ExpiresAt && !expiring {
		return fail(ReasonPendingExpired, fmt.Sprintf("%s expired; it will be released", t.PendingID))
	}
	if (t.DebitAccountID != "" && t.DebitAccountID != p.DebitAccountID) || (t.CreditAccountID != "" && t.CreditAccountID != p.CreditAccountID) ||
		(t.Ledger != "" && t.Ledger != p.Ledger) {
		return fail(ReasonPendingMismatch, "accounts and ledger must match the pending transfer or be empty")
	}
	amount := t.Amount
	if t.Flags&VoidPending != 0 {
		if amount != 0 && amount != p.Amount {
			return fail(ReasonExceedsPendingAmount, "a void releases the whole pending amount; send 0 or the pending amount")
		}
		amount = p.Amount
	} else {
		if amount == 0 {
			amount = p.Amount
		}
		if amount < 0 {
			return fail(ReasonAmountNotPositive, "")
		}
		if amount > p.Amount {
			return fail(ReasonExceedsPendingAmount, fmt.Sprintf("pending %s, post %s", p.Amount, amount))
		}
	}
	dr, cr := b.accounts[p.DebitAccountID], b.accounts[p.CreditAccountID]
	if dr == nil || cr == nil {
		return fail(ReasonAccountNotFound, "an account of the pending transfer is gone")
	}
	b.touchAccount(dr, false)
	b.touchAccount(cr, false)
	b.touchTransfer(p, false)
	dr.DebitsPending -= p.Amount
	cr.CreditsPending -= p.Amount
	switch {
	case t.Flags&PostPending != 0:
		dr.DebitsPosted += amount
		cr.CreditsPosted += amount
		p.Status = StatusPosted
	case expiring:
		p.Status = StatusExpired
	default:
		p.Status = StatusVoided
	}
	t.DebitAccountID, t.CreditAccountID, t.Ledger, t.Amount = p.DebitAccountID, p.CreditAccountID, p.Ledger, amount
	return Result{Transfer: b.add(t, now, dr, cr)}
}

// CodeExpiry marks the void the engine makes when a pending transfer's
// timeout passes.
const CodeExpiry = "pending_expiry"

// ExpiryTransfer is the void that releases an expired pending transfer.
// Its id is derived from the pending id, so it can happen only once.
func ExpiryTransfer(pendingID string) Transfer {
	return Transfer{ID: "expiry:" + pendingID, PendingID: pendingID, Flags: VoidPending, Code: CodeExpiry}
}
