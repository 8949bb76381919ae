package rules

import (
	"fmt"
	"maps"
	"slices"
)

// Library is a set of rules indexed for checking, with the action of
// each kind. It is immutable once built.
type Library struct {
	rules    []*compiled
	byID     map[string]*compiled
	byCode   map[string][]*compiled
	byName   map[string][]*compiled // one rule per name, target and restriction
	actions  map[Kind]Action
	stats    map[Kind]int
	rejected []error
}

// NewLibrary indexes rules by code and by normalised name. actions
// override [DefaultActions] per kind ([ActionOff] switches a kind off).
// Rules that fail [Rule.Validate], repeat an ID, and actions for unknown
// kinds or with unknown values are left out and listed by
// [Library.Rejected]; the rest of the library works.
func NewLibrary(rules []Rule, actions map[Kind]Action) *Library {
	l := &Library{byID: map[string]*compiled{}, byCode: map[string][]*compiled{}, byName: map[string][]*compiled{},
		actions: DefaultActions(), stats: map[Kind]int{}}
	for _, k := range slices.Sorted(maps.Keys(actions)) {
		a := actions[k]
		switch {
		case kindIndex(k) == len(Kinds):
			l.rejected = append(l.rejected, fmt.Errorf("action for unknown kind %q", k))
		case !a.valid():
			l.rejected = append(l.rejected, fmt.Errorf("kind %s: unknown action %q", k, a))
		default:
			l.actions[k] = a
		}
	}
	named := map[string]bool{}
	for _, r := range rules {
		c, err := compile(r)
		if err != nil {
			l.rejected = append(l.rejected, err)
			continue
		}
		if l.byID[c.ID] != nil {
			l.rejected = append(l.rejected, fmt.Errorf("rule %q: duplicate id", c.ID))
			continue
		}
		c.seq = len(l.rules)
		l.rules = append(l.rules, c)
		l.byID[c.ID] = c
		l.stats[c.Kind]++
		if code := normCode(c.Code); code != "" {
			l.byCode[code] = append(l.byCode[code], c)
		}
		if n := normName(c.Name); n != "" {
			key := n + "\x00" + c.Target + "\x00" + c.dkey
			if !named[key] {
				named[key] = true
				l.byName[n] = append(l.byName[n], c)
			}
		}
	}
	return l
}

// Stats counts the rules in the library by kind (the built-in checks,
// KindSameDayElsewhere and the catalog price cap, are not counted).
func (l *Library) Stats() map[Kind]int { return maps.Clone(l.stats) }

// Len is the number of rules in the library.
func (l *Library) Len() int { return len(l.rules) }

// Rule returns the rule with the given ID.
func (l *Library) Rule(id string) (Rule, bool) {
	if c := l.byID[id]; c != nil {
		return c.Rule, true
	}
	return Rule{}, false
}

// Actions returns the action of every kind.
func (l *Library) Actions() map[Kind]Action { return maps.Clone(l.actions) }

// Rejected lists the rules and actions NewLibrary left out, and why.
func (l *Library) Rejected() []error { return slices.Clone(l.rejected) }

func (l *Library) action(c *compiled) Action {
	a := l.actions[c.Kind]
	if a == ActionOff || c.Action == "" {
		return a
	}
	return c.Action
}

type matched struct {
	c      *compiled
	byName bool
}

// lineTarget maps a line's kind to a rule target ("" = unknown).
func lineTarget(kind string) string {
	switch kind {
	case "item", TargetService:
		return TargetService
	}
	return kind
}

// match finds the rules of a line (code and name normalised): by code
// first, then by name; one rule per restriction (dkey).
func (l *Library) match(ln *Line, code, name string, buf []matched) []matched {
	buf = buf[:0]
	tgt := lineTarget(ln.Kind)
	ok := func(c *compiled) bool {
		if c.Target != "" && tgt != "" && c.Target != tgt {
			return false
		}
		for _, m := range buf {
			if m.c.dkey == c.dkey {
				return false
			}
		}
		return true
	}
	if code != "" {
		for _, c := range l.byCode[code] {
			if ok(c) {
				buf = append(buf, matched{c: c})
			}
		}
	}
	if name != "" {
		for _, c := range l.byName[name] {
			if ok(c) {
				buf = append(buf, matched{c: c, byName: code == "" || normCode(c.Code) != code})
			}
		}
	}
	return buf
}
