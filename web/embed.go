// Package web holds the platform's web pages as embedded files: /app, the
// patient page of the built-in official-app e-certificate channel, and
// /cashier, the counter.
package web

import "embed"

// App is the /app page: HTML, CSS, the page script, the code generator
// (ybcode.js) and the vendored SM2 library (sm-crypto 0.5.8, MIT).
//
//go:embed app
var App embed.FS

// Cashier is the /cashier page: the counter of a hospital or pharmacy.
//
//go:embed cashier
var Cashier embed.FS

// Admin is the /admin page: the bureau console.
//
//go:embed admin
var Admin embed.FS
