package app

import (
	"context"
	"fmt"
	"time"

	"yibao"
	"yibao/auth"
	"yibao/demo"
	"yibao/registry"
)

// SeedReport counts what Seed wrote.
type SeedReport struct {
	Regions, Schemes, Institutions, Catalog, Persons, Coverages, Users, APIKeys int
	Took                                                                        time.Duration
}

// Seed loads the demo dataset into an empty database through the same
// services the API uses, so every record passes the same validation. It
// refuses to touch a database that already has regions.
func (a *App) Seed(ctx context.Context, d *demo.Dataset) (*SeedReport, error) {
	start := time.Now()
	var n int
	if err := a.DB.QueryRow(ctx, `SELECT COUNT(*) FROM regions`).Scan(&n); err != nil {
		return nil, err
	}
	if n > 0 {
		return nil, yibao.Errorf(yibao.CodePrecondition, "the database already has data; seed only a fresh one")
	}
	ctx = yibao.WithPrincipal(ctx, yibao.System("seed"))
	r := &SeedReport{}
	for _, x := range d.Regions {
		if _, err := a.Registry.CreateRegion(ctx, x); err != nil {
			return nil, fmt.Errorf("seed region %s: %w", x.Admdvs, err)
		}
		r.Regions++
	}
	for _, x := range d.Schemes {
		if _, err := a.Registry.CreateScheme(ctx, x); err != nil {
			return nil, fmt.Errorf("seed scheme %s: %w", x.Insutype, err)
		}
		r.Schemes++
	}
	for _, x := range d.Institutions {
		if _, err := a.Registry.CreateInstitution(ctx, x); err != nil {
			return nil, fmt.Errorf("seed institution %s: %w", x.Code, err)
		}
		r.Institutions++
	}
	csv := demo.CatalogCSV(d.Catalog)
	items, err := a.Registry.ImportBytes(ctx, registry.ImportCatalog, csv)
	if err != nil {
		return nil, fmt.Errorf("seed catalog: %w", err)
	}
	r.Catalog = items
	covs, err := a.Registry.ImportBytes(ctx, registry.ImportPersons, demo.PersonsCSV(d.Persons, d.Coverages))
	if err != nil {
		return nil, fmt.Errorf("seed persons: %w", err)
	}
	r.Coverages = covs
	r.Persons = len(d.Persons)
	for _, u := range d.Users {
		if _, err := a.Auth.CreateUser(ctx, auth.NewUser{Username: u.Username, Password: u.Password, Role: yibao.Role(u.Role),
			FixmedinsCode: u.FixmedinsCode, DisplayName: u.DisplayName}); err != nil {
			return nil, fmt.Errorf("seed user %s: %w", u.Username, err)
		}
		r.Users++
	}
	for _, k := range d.APIKeys {
		if _, err := a.Auth.CreateAPIKey(ctx, k.FixmedinsCode, k.Alg, k.KeyID, k.Secret, nil); err != nil {
			return nil, fmt.Errorf("seed key %s: %w", k.KeyID, err)
		}
		r.APIKeys++
	}
	r.Took = time.Since(start)
	return r, nil
}
