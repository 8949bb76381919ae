// Browser test of /admin, the bureau console, in real headless Chromium:
// persons search (masked), a catalog CSV import through the file input with
// its progress bar (a file with bad lines refused whole, then the corrected
// file imported), a policy diff between two versions, an institution key
// issued (secret shown once, and it signs a request), revoked, and an
// e-certificate channel suspended and reactivated from the keyboard. Also
// labels on every form control and WCAG contrast of the text.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import { startDemo, root } from "./demo.mjs";

const sm3 = createRequire(import.meta.url)("sm-crypto").sm3;
const { base, bin, dir, server, api } = await startDemo("admin");
// signedGet calls the API as an institution system would, with an HMAC-SM3
// key (docs/api.md: METHOD, URI, timestamp, nonce, hex SM3 of the body).
async function signedGet(path, keyID, secret) {
  const ts = String(Math.floor(Date.now() / 1000)), nonce = randomBytes(12).toString("hex");
  const msg = ["GET", path, ts, nonce, sm3("")].join("\n");
  const r = await fetch(base + path, { headers: { "X-Yibao-Key": keyID, "X-Yibao-Timestamp": ts, "X-Yibao-Nonce": nonce,
    "X-Yibao-Signature": sm3(msg, { key: secret }) } });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
let failed = false;
try {
  const admin = (await api("POST", "/api/v1/auth/login", null, { username: "admin", password: "admin123" })).body.token;
  const first = (await api("GET", "/api/v1/persons?category=active&admdvs=370100&limit=1", admin)).body.items[0];
  const person = (await api("GET", "/api/v1/persons/" + first.psn_no + "?reveal=true", admin)).body;

  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // Console errors include CSP violations; the browser's own favicon probe is not the page's.
  page.on("console", (m) => { if (m.type() === "error" && !/favicon/.test(m.location().url || "")) errors.push("console: " + m.text() + " " + (m.location().url || "")); });
  await page.goto(base + "/admin/");
  await page.fill("#u", "admin");
  await page.fill("#p", "admin123");
  await page.press("#p", "Enter");
  await page.waitForSelector("#persons tbody tr[data-psn]");

  // Persons: list by region and category, then find one by ID number
  // (typed, Enter submits); the table shows masked data only.
  await page.selectOption("#ps-admdvs", "370100");
  await page.selectOption("#ps-category", "active");
  await page.click("#ps-search");
  await page.waitForSelector(`#persons tr[data-psn='${person.psn_no}']`);
  const cats = await page.$$eval("#persons tbody tr[data-psn] td:nth-child(7)", (tds) => tds.map((td) => td.textContent));
  assert.ok(cats.length > 0 && cats.every((c) => c.includes("active")), "category filter: " + cats);
  await page.fill("#ps-q", person.id_number);
  await page.press("#ps-q", "Enter");
  await page.waitForSelector("#ps-summary[data-count='1']");
  assert.equal(await page.getAttribute("#persons tbody tr", "data-psn"), person.psn_no);
  const shownRow = await page.textContent("#persons tbody tr");
  assert.ok(shownRow.includes(person.id_number.slice(0, 6)) && shownRow.includes("*"), "masked ID shown: " + shownRow);
  assert.ok(!shownRow.includes(person.id_number) && !shownRow.includes(person.name), "no personal data in clear: " + shownRow);
  await page.fill("#ps-q", person.psn_no);
  await page.press("#ps-q", "Enter");
  await page.waitForFunction((p) => document.querySelector("#persons tbody tr")?.dataset.psn === p && document.getElementById("ps-summary").dataset.count === "1", person.psn_no);
  await page.fill("#ps-q", "");
  // Institutions with level and region.
  const h1 = await page.textContent("#institutions tr[data-code=H37010000001]");
  assert.match(h1, /三级/);
  assert.match(h1, /济南市 370100/);

  // Catalog import: 320 good rows and two bad ones. All or nothing: the
  // job fails, names the two lines, and writes nothing.
  const prefix = "ZZT" + Date.now().toString(36).toUpperCase();
  const header = "code,name,kind,class,self_pay_ratio,price_cap,unit,spec,category,restriction,valid_from,valid_to";
  const good = [];
  for (let i = 0; i < 320; i++) {
    const c = prefix + String(i).padStart(4, "0");
    good.push(i % 3 === 0 ? `${c},测试甲类药品${i},drug,甲,,,盒,片剂,TEST 测试,,2025-01-01,`
      : i % 3 === 1 ? `${c},测试乙类检查${i},service,乙,0.1,88.00,次,,TEST 测试,"限二级及以上医院，""门诊""使用",2025-01-01,2030-12-31`
      : `${c},测试丙类材料${i},material,C,,,个,,TEST,,2025-06-01,`);
  }
  const withBad = good.slice();
  withBad.splice(100, 0, `${prefix}BAD1,坏行一,pill,乙,0.1,,盒,,,,2025-01-01,`); // line 102: kind
  withBad.splice(250, 0, `${prefix}BAD2,坏行二,drug,甲,,,盒,,,,2025-13-01,`); // line 252: valid_from
  const badFile = join(dir, "catalog-bad.csv"), goodFile = join(dir, "catalog.csv");
  writeFileSync(badFile, [header, ...withBad].join("\r\n") + "\r\n");
  writeFileSync(goodFile, "\ufeff" + [header, ...good].join("\r\n") + "\r\n"); // with Excel's BOM
  await page.selectOption("#im-kind", "catalog");
  await page.setInputFiles("#im-file", badFile);
  await page.click("#im-start");
  await page.waitForSelector("#im-status[data-status=failed]", { timeout: 20000 });
  const badLines = await page.$$eval("#im-errors tbody tr[data-line]", (trs) => trs.map((tr) => [tr.dataset.line, tr.cells[1].textContent]));
  assert.deepEqual(badLines, [["102", "kind"], ["252", "valid_from"]]);
  assert.match(await page.textContent("#im-status"), /nothing was imported/);
  assert.equal((await api("GET", "/api/v1/catalog?q=" + prefix, admin)).body.items.length, 0, "a failed import writes nothing");
  assert.equal(await page.textContent("#error"), "", "a refused file is reported in the job, not as a page error");

  // The corrected file: the progress bar moves from 0 to its max.
  await page.evaluate(() => {
    const pr = document.getElementById("im-progress");
    window.__progress = [];
    new MutationObserver(() => window.__progress.push([pr.value, pr.max])).observe(pr, { attributes: true, attributeFilter: ["value", "max"] });
  });
  await page.setInputFiles("#im-file", goodFile);
  await page.click("#im-start");
  await page.waitForSelector("#im-status[data-status=succeeded]", { timeout: 30000 });
  assert.equal(await page.$eval("#im-progress", (p) => p.max), 320);
  assert.equal(await page.$eval("#im-progress", (p) => p.value), 320);
  const seen = await page.evaluate(() => window.__progress);
  assert.ok(seen.some(([v, m]) => m === 320 && v < 320), "progress started below its max: " + JSON.stringify(seen));
  assert.match(await page.textContent("#im-status"), /320 行 rows imported/);
  assert.equal(await page.isHidden("#im-errors"), true);
  const found = (await api("GET", "/api/v1/catalog?q=" + prefix + "0152", admin)).body.items;
  assert.equal(found.length, 1);
  assert.equal(found[0].name, "测试丙类材料152");
  const quoted = (await api("GET", "/api/v1/catalog/" + prefix + "0001", admin)).body;
  assert.equal(quoted.restriction, "限二级及以上医院，\"门诊\"使用");

  // Policy diff: 2026.1 against 2027.1 of 370100 (the same rules carried
  // into the next year), path by path.
  await page.selectOption("#pd-a", "370100/370100-2026.1");
  await page.selectOption("#pd-b", "370100/370100-2027.1");
  await page.click("#pd-run");
  await page.waitForSelector("#pd-rows tr[data-path=effective_from]");
  const eff = await page.$eval("#pd-rows tr[data-path=effective_from]", (tr) => [tr.dataset.change, ...[...tr.cells].slice(2).map((c) => c.textContent)]);
  assert.deepEqual(eff, ["changed", "2026-01-01", "2027-01-01"]);
  const ver = await page.$eval("#pd-rows tr[data-path=version]", (tr) => [...tr.cells].map((c) => c.textContent));
  assert.deepEqual(ver.slice(2), ["370100-2026.1", "370100-2027.1"]);
  assert.match(await page.textContent("#pd-summary"), /differences \(\d+ changed, 0 added, 0 removed\)/);
  // A row's Diff button compares the version with the region's one before
  // it; versions of two regions are not compared.
  await page.click("#policies tr[data-version='370200-2027.1'] button:has-text('Diff')");
  await page.waitForFunction(() => document.getElementById("pd-summary").textContent.startsWith("370200-2026.1 → 370200-2027.1"));
  assert.equal(await page.inputValue("#pd-a"), "370200/370200-2026.1");
  await page.selectOption("#pd-a", "370100/370100-2027.1");
  await page.selectOption("#pd-b", "370200/370200-2027.1");
  await page.click("#pd-run");
  await page.waitForFunction(() => document.getElementById("error").textContent.includes("same region"));
  await page.selectOption("#pd-a", "370100/370100-2026.1");
  await page.selectOption("#pd-b", "370100/370100-2027.1");
  await page.click("#pd-run");
  await page.waitForSelector("#pd-rows tr[data-path=effective_from]");
  assert.equal(await page.textContent("#error"), "");

  // Institution keys: issue an HMAC-SM3 key, see the secret once, sign a
  // request with it; revoke it and it is gone from the list and refused.
  await page.selectOption("#k-inst", "H37010000002");
  await page.waitForSelector("#keys tr[data-id=ak_demo_h37010000002]");
  await page.click("#k-create");
  await page.waitForSelector("#k-secret:not([hidden])");
  const secret = await page.inputValue("#k-secret-value");
  const keyID = await page.getAttribute("#k-secret", "data-key");
  assert.match(secret, /^[0-9a-f]{64}$/);
  assert.match(await page.textContent("#k-secret .warn"), /shown only once/);
  assert.equal(await page.evaluate(() => document.activeElement.id), "k-secret-value", "the secret has the focus");
  await page.waitForSelector(`#keys tr[data-id='${keyID}'][data-status=active]`);
  assert.ok(!(await page.textContent("#keys")).includes(secret), "the list never shows a secret");
  const listed = (await api("GET", "/api/v1/institutions/H37010000002/keys", admin)).body.items.find((k) => k.key_id === keyID);
  assert.equal(listed.secret, undefined);
  const signed = await signedGet("/api/v1/institutions/H37010000002", keyID, secret);
  assert.equal(signed.status, 200, JSON.stringify(signed.body));
  await page.click("#k-secret-done");
  assert.equal(await page.isHidden("#k-secret"), true);
  assert.ok(!(await page.content()).includes(secret), "the secret is gone from the page");
  page.once("dialog", (d) => d.accept());
  await page.click(`#keys tr[data-id='${keyID}'] button`);
  await page.waitForSelector(`#keys tr[data-id='${keyID}']`, { state: "detached" });
  assert.ok(await page.$("#keys tr[data-id=ak_demo_h37010000002]"), "the other key stays");
  assert.equal((await api("GET", "/api/v1/institutions/H37010000002/keys", admin)).body.items.find((k) => k.key_id === keyID).status, "revoked");
  assert.equal((await signedGet("/api/v1/institutions/H37010000002", keyID, secret)).status, 401);
  await page.check("#k-revoked");
  await page.waitForSelector(`#keys tr[data-id='${keyID}'][data-status=revoked]`);
  await page.uncheck("#k-revoked");
  await page.waitForSelector(`#keys tr[data-id='${keyID}']`, { state: "detached" });

  // Channels: suspend WeChat with a click, reactivate it from the keyboard
  // (the focus stays on the row's button).
  const channelStatus = async (id) => (await api("GET", "/api/v1/ecert/channels", admin)).body.items.find((c) => c.channel_id === id).status;
  await page.click("#channels tr[data-id=ch_wechat] button");
  await page.waitForSelector("#channels tr[data-id=ch_wechat][data-status=suspended]");
  assert.equal(await channelStatus("ch_wechat"), "suspended");
  assert.equal(await page.evaluate(() => document.activeElement.closest("tr")?.dataset.id), "ch_wechat");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#channels tr[data-id=ch_wechat][data-status=active]");
  assert.equal(await channelStatus("ch_wechat"), "active");

  // Accessibility: every form control has a label; text contrast ≥ 4.5.
  const unlabelled = await page.evaluate(() => [...document.querySelectorAll("input, select, textarea, progress")]
    .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id || el.outerHTML));
  assert.deepEqual(unlabelled, []);
  const contrast = await page.evaluate(() => {
    const rgba = (s) => { const p = s.match(/[\d.]+/g).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
    const over = (top, bottom) => [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat(1);
    const background = (el) => {
      const layers = [];
      for (let e = el; e; e = e.parentElement) {
        const c = rgba(getComputedStyle(e).backgroundColor);
        if (c[3] > 0) layers.push(c);
        if (c[3] >= 1) break;
      }
      return layers.reverse().reduce((acc, c) => over(c, acc), [255, 255, 255, 1]);
    };
    const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
    const out = [];
    for (const sel of ["body", "h2", "#persons tbody td", "#institutions tbody td", "label[for=ps-q]", ".hint", "#ps-summary", "#im-status",
      "#pd-rows tr.d-changed td.mark", "#pd-rows tr.d-changed td.old", "#pd-rows td.path", "#pd-rows td.new", "#pd-summary", "#channels td.st-active",
      "#keys td.st-active", "#k-summary", "#policies tbody td", "button#k-create", "header .en", "label[for=k-revoked]"]) {
      const el = document.querySelector(sel);
      if (!el) { out.push([sel, 0, "missing"]); continue; }
      let opacity = 1;
      for (let e = el; e; e = e.parentElement) opacity *= parseFloat(getComputedStyle(e).opacity);
      const bg = background(el), fg = rgba(getComputedStyle(el).color);
      fg[3] *= opacity;
      const a = lum(over(fg, bg)), b = lum(bg);
      out.push([sel, Math.round(100 * (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) / 100]);
    }
    return out;
  });
  const low = contrast.filter(([, r]) => !(r >= 4.5));
  assert.deepEqual(low, [], "contrast below 4.5: " + JSON.stringify(contrast));
  mkdirSync(join(root, "web", "test-results"), { recursive: true });
  await page.screenshot({ path: join(root, "web", "test-results", "admin-console.png"), fullPage: true });
  assert.deepEqual(errors, []);
  console.log("ok  /admin: persons found (masked), 320-row catalog CSV imported with a progress bar after a file with 2 bad lines was refused whole, policy diff 370100-2026.1 → 2027.1, HMAC-SM3 key issued (secret shown once, signs a request) and revoked, channel suspended and reactivated; labels and contrast (min " +
    Math.min(...contrast.map(([, r]) => r)) + ") checked");
} catch (e) {
  failed = true;
  console.error("FAIL /admin:", e);
} finally {
  await browser.close();
  server.kill("SIGINT");
}
process.exit(failed ? 1 : 0);
