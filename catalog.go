package yibao

import (
	"time"

	"yibao/money"
)

// ItemKind says what a catalog item is.
type ItemKind string

// Catalog item kinds.
const (
	ItemDrug     ItemKind = "drug"
	ItemService  ItemKind = "service"
	ItemMaterial ItemKind = "material"
)

// ItemClass is the reimbursement class of a catalog item.
type ItemClass string

// Catalog classes: 甲 is fully in policy range, 乙 after a self-pay share,
// 丙 not covered.
const (
	ClassA ItemClass = "A" // 甲
	ClassB ItemClass = "B" // 乙
	ClassC ItemClass = "C" // 丙
)

// ParseItemClass accepts A/B/C and 甲/乙/丙.
func ParseItemClass(s string) (ItemClass, bool) {
	switch s {
	case "A", "甲", "甲类":
		return ClassA, true
	case "B", "乙", "乙类":
		return ClassB, true
	case "C", "丙", "丙类":
		return ClassC, true
	}
	return "", false
}

// Label returns the Chinese name of the class.
func (c ItemClass) Label() string {
	switch c {
	case ClassA:
		return "甲"
	case ClassB:
		return "乙"
	case ClassC:
		return "丙"
	}
	return "?"
}

// CatalogItem is a drug, service or material in the region's catalog.
type CatalogItem struct {
	Code         string      `json:"code"`
	Name         string      `json:"name"`
	Kind         ItemKind    `json:"kind"`
	Class        ItemClass   `json:"class"`
	SelfPayRatio money.Ratio `json:"self_pay_ratio"` // 乙类先行自付比例; 0 for 甲 and 丙
	PriceCap     *money.Fen  `json:"price_cap,omitempty"`
	Unit         string      `json:"unit"`
	Spec         string      `json:"spec"`
	Category     string      `json:"category"`
	Restriction  string      `json:"restriction"`
	ValidFrom    string      `json:"valid_from"`
	ValidTo      string      `json:"valid_to,omitempty"`
	CreatedAt    time.Time   `json:"created_at"`
	UpdatedAt    time.Time   `json:"updated_at"`
}

// Validate checks the item's fields.
func (c *CatalogItem) Validate() error {
	if !codeRe.MatchString(c.Code) {
		return FieldError("code", "must be 2–50 letters, digits, '.', '_' or '-'")
	}
	if n := []rune(c.Name); len(n) == 0 || len(n) > 200 {
		return FieldError("name", "is required (at most 200 characters)")
	}
	switch c.Kind {
	case ItemDrug, ItemService, ItemMaterial:
	default:
		return FieldError("kind", "must be drug, service or material")
	}
	switch c.Class {
	case ClassA, ClassC:
		if !c.SelfPayRatio.IsZero() {
			return FieldError("self_pay_ratio", "only class B (乙) items have a self-pay share")
		}
	case ClassB:
		if c.SelfPayRatio.Cmp(money.One) > 0 {
			return FieldError("self_pay_ratio", "must be between 0 and 1")
		}
	default:
		return FieldError("class", "must be A (甲), B (乙) or C (丙)")
	}
	if c.PriceCap != nil && *c.PriceCap <= 0 {
		return FieldError("price_cap", "must be positive when set")
	}
	if c.Unit == "" || len(c.Unit) > 20 {
		return FieldError("unit", "is required (at most 20 bytes)")
	}
	from, err := time.Parse(DateLayout, c.ValidFrom)
	if err != nil {
		return FieldError("valid_from", "must be a date YYYY-MM-DD")
	}
	if c.ValidTo != "" {
		to, err := time.Parse(DateLayout, c.ValidTo)
		if err != nil {
			return FieldError("valid_to", "must be a date YYYY-MM-DD")
		}
		if to.Before(from) {
			return FieldError("valid_to", "must not be before valid_from")
		}
	}
	return nil
}
