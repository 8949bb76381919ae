package app

import (
	"bytes"
	"context"
	"strings"

	"yibao/demo"
	"yibao/review"
	"yibao/review/rules"
	"yibao/settlement"
)

// openReview loads the smart-review libraries (the NHSA "两库" data the
// demo ships) and puts the review in front of every settlement.
func (a *App) openReview(ctx context.Context) error {
	drugs, items, dups := demo.ReviewRules()
	var err error
	a.Review, err = review.New(ctx, a.DB, review.Sources{Drugs: bytes.NewReader(drugs), Items: bytes.NewReader(items),
		Duplicates: bytes.NewReader(dups)}, a.Log)
	if err != nil {
		return err
	}
	a.Review.Ledger = a.Ledger
	a.Settle.Review = a.reviewBill
	return nil
}

// reviewBill adapts a settlement's bill to the rule engine and its hits
// back.
func (a *App) reviewBill(ctx context.Context, b settlement.ReviewBill) ([]settlement.ReviewHit, error) {
	v := b.Visit
	rb := rules.Bill{VisitType: v.Type, Level: v.Level, Insutype: v.Insutype, Age: b.Age, Sex: b.Sex}
	for _, d := range strings.Split(v.DiseCodg, ",") {
		if d = strings.TrimSpace(d); d != "" {
			rb.Diagnoses = append(rb.Diagnoses, d)
		}
	}
	date := v.BeginDate
	for _, l := range b.Lines {
		q := float64(l.Quantity.Num()) / float64(l.Quantity.Den())
		ln := rules.Line{Sn: l.FeedetlSn, Code: l.CatalogCode, Name: l.Name, Quantity: q, Date: l.FeeDate, UnitPrice: int64(l.UnitPrice)}
		if l.PriceCap != nil {
			ln.PriceCap = int64(*l.PriceCap)
		}
		rb.Lines = append(rb.Lines, ln)
		date = l.FeeDate
	}
	hits, err := a.Review.Check(ctx, rb, v.PsnNo, v.FixmedinsCode, date)
	if err != nil {
		return nil, err
	}
	out := make([]settlement.ReviewHit, 0, len(hits))
	for _, h := range hits {
		out = append(out, settlement.ReviewHit{Rule: h.Rule, Kind: string(h.Kind), Sn: h.Sn, Action: string(h.Action), Message: h.Message, Evidence: h.Evidence})
	}
	return out, nil
}
