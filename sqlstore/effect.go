package sqlstore

import "context"

// Effect marks.
//
// An API call that commits a change and then dies before it answers leaves
// its caller not knowing what happened. The HTTP layer puts a mark function
// into the call's context; every write transaction made under that context
// (WriteTx, Exec, and ledger units through RunEffect) runs it as its last
// statement, so "this call changed something" commits atomically with the
// change itself. After a crash, a call whose mark never committed provably
// changed nothing and can safely run again.

type effectKey struct{}

// WithEffect returns ctx carrying mark.
func WithEffect(ctx context.Context, mark func(ctx context.Context, tx *Tx) error) context.Context {
	return context.WithValue(ctx, effectKey{}, mark)
}

// HasEffect reports whether ctx carries a mark.
func HasEffect(ctx context.Context) bool {
	_, ok := ctx.Value(effectKey{}).(func(context.Context, *Tx) error)
	return ok
}

// RunEffect runs ctx's mark, if any, inside tx.
func RunEffect(ctx context.Context, tx *Tx) error {
	if mark, ok := ctx.Value(effectKey{}).(func(context.Context, *Tx) error); ok {
		return mark(ctx, tx)
	}
	return nil
}

// withEffect wraps fn so that ctx's mark runs after it, in its transaction.
func withEffect(ctx context.Context, fn func(*Tx) error) func(*Tx) error {
	if !HasEffect(ctx) {
		return fn
	}
	return func(tx *Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return RunEffect(ctx, tx)
	}
}
