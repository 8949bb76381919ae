// vendor-check: the third-party files the pages serve (embedded in the Go
// binary, no build step) are byte-for-byte the files of the npm packages
// pinned in package.json, at the version their names say, with the
// package's licence beside them. A vendor directory may hold nothing else.
// Run after `npm ci`: npm run vendor-check
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

const web = new URL(".", import.meta.url).pathname;
const vendored = [
  // [package, file in the package, vendored copy, licence in the package, vendored licence]
  ["sm-crypto", "dist/sm2.js", "app/vendor/sm2-0.5.8.js", "LICENCE_MIT", "app/vendor/sm-crypto-LICENCE_MIT"],
  ["sm-crypto", "dist/sm3.js", "app/vendor/sm3-0.5.8.js", "LICENCE_MIT", "app/vendor/sm-crypto-LICENCE_MIT"],
  ["jsqr", "dist/jsQR.js", "cashier/vendor/jsQR-1.4.0.js", "LICENSE", "cashier/vendor/jsQR-LICENCE_APACHE-2.0"],
];

const pinned = JSON.parse(readFileSync(join(web, "package.json"), "utf8")).devDependencies || {};
const problems = [];
const listed = new Set();
for (const [pkg, file, copy, licence, copyLicence] of vendored) {
  listed.add(copy); listed.add(copyLicence);
  const dir = join(web, "node_modules", pkg);
  let installed;
  try { installed = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).version; } catch (e) {
    problems.push(`${pkg}: not installed (run npm ci): ${e.message}`); continue;
  }
  const named = copy.match(/-(\d+\.\d+\.\d+)\.js$/)?.[1];
  if (pinned[pkg] !== installed) problems.push(`${pkg}: package.json pins ${JSON.stringify(pinned[pkg])} (want an exact version), node_modules has ${installed}`);
  if (named !== installed) problems.push(`${copy}: the name says ${named}, node_modules has ${pkg} ${installed}`);
  for (const [src, dst] of [[file, copy], [licence, copyLicence]]) {
    let a, b;
    try { a = readFileSync(join(dir, src)); b = readFileSync(join(web, dst)); } catch (e) { problems.push(e.message); continue; }
    if (!a.equals(b)) problems.push(`${dst} differs from ${pkg}@${installed}/${src}`);
  }
}
for (const d of ["app/vendor", "cashier/vendor"]) {
  for (const f of readdirSync(join(web, d))) {
    if (!listed.has(d + "/" + f)) problems.push(`${d}/${f} is not checked by vendor-check.mjs`);
  }
}
if (problems.length) {
  console.error("vendor-check FAILED:\n  " + problems.join("\n  "));
  process.exit(1);
}
console.log("vendor-check ok: " + vendored.map(([pkg, , copy]) => `${copy} = ${pkg}@${pinned[pkg]}`).join(", "));
