package nhsa_test

import (
	"context"

	"yibao"
)

func systemCtx() context.Context {
	return yibao.WithPrincipal(context.Background(), yibao.System("test"))
}
