// Browser test of /admin, the bureau console, in real headless Chromium:
// persons search (masked), a catalog CSV import through the file input with
// its progress bar (a file with bad lines refused whole, then the corrected
// file imported), a policy diff between two versions; key changes under
// dual control, with a second administrator (auditor) in a browser of
// their own: an institution key prepared by admin, approved by the auditor
// (the secret shown once, to the approver; it signs a request), its
// revocation likewise, an e-certificate channel suspended and reactivated
// from the keyboard; fund operations: a contribution file with bad lines
// refused, a good one checked with a progress bar, crediting and payout of
// the month (each prepared by admin, who cannot approve it, and approved
// by the auditor), the bank file downloaded, the simulated bank's
// confirmation, the statements, a correction rejected, and the fund
// dashboard's figures and chart. Also labels on every form control and
// WCAG contrast of the text.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
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

const fen = (s) => { const [i, f = ""] = String(s).replace("-", "").split("."); return (String(s).startsWith("-") ? -1 : 1) * (Number(i) * 100 + Number(f.padEnd(2, "0"))); };
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
let failed = false;
try {
  const admin = (await api("POST", "/api/v1/auth/login", null, { username: "admin", password: "admin123" })).body.token;
  const first = (await api("GET", "/api/v1/persons?category=active&admdvs=370100&limit=1", admin)).body.items[0];
  const person = (await api("GET", "/api/v1/persons/" + first.psn_no + "?reveal=true", admin)).body;

  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  const errors = [];
  // Console errors include CSP violations; the browser's own favicon probe
  // is not the page's, nor the 403 of an approval its preparer tries (the
  // test's own dual-control checks).
  const watch = (p, who) => {
    p.on("pageerror", (e) => errors.push(who + ": " + e.message));
    p.on("console", (m) => {
      const url = m.location().url || "";
      if (m.type() !== "error" || /favicon/.test(url) || (/status of 403/.test(m.text()) && /\/approve$/.test(url))) return;
      errors.push(who + " console: " + m.text() + " " + url);
    });
  };
  watch(page, "admin");
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

  // The second administrator, in a browser of their own: the console's
  // login form, as auditor.
  const audCtx = await browser.newContext({ viewport: { width: 1100, height: 1400 }, acceptDownloads: true });
  const aud = await audCtx.newPage();
  watch(aud, "auditor");
  await aud.goto(base + "/admin/");
  await aud.fill("#u", "auditor");
  await aud.fill("#p", "auditor123");
  await aud.press("#p", "Enter");
  await aud.waitForSelector("#persons tbody tr[data-psn]");
  await aud.waitForSelector("#approvals tbody tr");
  const approveOn = async (p, id) => {
    await p.click("#ap-refresh");
    await p.click(`#approvals tr[data-id='${id}'][data-status=prepared] button:has-text('Approve')`);
    await p.waitForSelector(`#ap-status[data-approval='${id}'][data-status=approved]`);
  };

  // Institution keys under dual control: admin prepares a new HMAC-SM3
  // key (no secret yet), cannot approve it, the auditor approves it and is
  // shown the secret once; the key signs a request. Revoking it waits for
  // the auditor's approval too; then it is refused.
  await page.selectOption("#k-inst", "H37010000002");
  await page.waitForSelector("#keys tr[data-id=ak_demo_h37010000002]");
  await page.click("#k-create");
  await page.waitForSelector("#k-pending[data-status=prepared]");
  const issueID = await page.getAttribute("#k-pending", "data-approval");
  assert.match(issueID, /^AP[0-9A-F]{16}$/);
  assert.match(await page.textContent("#k-pending"), new RegExp("已提交，待另一位管理员批准 submitted — another administrator must approve: " + issueID));
  assert.equal(await page.isHidden("#k-secret"), true);
  const issueRow = await page.textContent(`#approvals tr[data-id='${issueID}'][data-status=prepared]`);
  for (const s of ["签发机构密钥", "POST /api/v1/institutions/H37010000002/keys", "alg=HMAC-SM3", "user:admin"]) assert.ok(issueRow.includes(s), s + " in " + issueRow);
  const keysBefore = (await api("GET", "/api/v1/institutions/H37010000002/keys", admin)).body.items.length;
  await page.click(`#approvals tr[data-id='${issueID}'] button:has-text('Approve')`);
  await page.waitForSelector("#ap-status[data-status=refused]");
  assert.match(await page.textContent("#error"), /permission_denied: dual_control/);
  assert.equal((await api("GET", "/api/v1/institutions/H37010000002/keys", admin)).body.items.length, keysBefore, "nothing issued before approval");
  await approveOn(aud, issueID);
  await aud.waitForSelector("#k-secret:not([hidden])");
  const secret = await aud.inputValue("#k-secret-value");
  const keyID = await aud.getAttribute("#k-secret", "data-key");
  assert.match(secret, /^[0-9a-f]{64}$/);
  assert.match(await aud.textContent("#k-secret .warn"), /shown only once/);
  assert.equal(await aud.evaluate(() => document.activeElement.id), "k-secret-value", "the secret has the focus");
  await aud.waitForSelector(`#keys tr[data-id='${keyID}'][data-status=active]`);
  assert.equal(await aud.inputValue("#k-inst"), "H37010000002");
  assert.ok(!(await aud.textContent("#keys")).includes(secret), "the list never shows a secret");
  const listed = (await api("GET", "/api/v1/institutions/H37010000002/keys", admin)).body.items.find((k) => k.key_id === keyID);
  assert.equal(listed.secret, undefined);
  assert.equal((await api("GET", "/api/v1/approvals", admin)).body.items.find((a) => a.approval_id === issueID).result, undefined, "a listed approval has no secret");
  const signed = await signedGet("/api/v1/institutions/H37010000002", keyID, secret);
  assert.equal(signed.status, 200, JSON.stringify(signed.body));
  await aud.click("#k-secret-done");
  assert.equal(await aud.isHidden("#k-secret"), true);
  assert.ok(!(await aud.content()).includes(secret), "the secret is gone from the approver's page");
  assert.ok(!(await page.content()).includes(secret), "the preparer never saw the secret");
  // Revoke: prepared by admin, the key still works until the auditor approves.
  await page.click("#ap-refresh");
  await page.waitForSelector(`#keys tr[data-id='${keyID}'][data-status=active]`);
  page.once("dialog", (d) => d.accept());
  await page.click(`#keys tr[data-id='${keyID}'] button`);
  await page.waitForSelector(`#keys tr[data-id='${keyID}'][data-pending]`);
  const revokeID = await page.getAttribute(`#keys tr[data-id='${keyID}']`, "data-pending");
  assert.equal(await page.getAttribute("#k-pending", "data-approval"), revokeID);
  assert.match(await page.textContent("#k-pending"), /待另一位管理员批准/);
  assert.equal((await signedGet("/api/v1/institutions/H37010000002", keyID, secret)).status, 200, "not revoked before approval");
  await approveOn(aud, revokeID);
  await aud.waitForSelector(`#keys tr[data-id='${keyID}']`, { state: "detached" });
  assert.ok(await aud.$("#keys tr[data-id=ak_demo_h37010000002]"), "the other key stays");
  assert.equal((await api("GET", "/api/v1/institutions/H37010000002/keys", admin)).body.items.find((k) => k.key_id === keyID).status, "revoked");
  assert.equal((await signedGet("/api/v1/institutions/H37010000002", keyID, secret)).status, 401);
  await page.click("#ap-refresh");
  await page.waitForSelector(`#keys tr[data-id='${keyID}']`, { state: "detached" });
  await page.check("#k-revoked");
  await page.waitForSelector(`#keys tr[data-id='${keyID}'][data-status=revoked]`);
  await page.uncheck("#k-revoked");
  await page.waitForSelector(`#keys tr[data-id='${keyID}']`, { state: "detached" });

  // Channels: admin suspends WeChat with a click (prepared; the focus stays
  // on the row's button), the auditor approves; the auditor reactivates it
  // from the keyboard, and admin approves that.
  const channelStatus = async (id) => (await api("GET", "/api/v1/ecert/channels", admin)).body.items.find((c) => c.channel_id === id).status;
  await page.click("#channels tr[data-id=ch_wechat] button");
  await page.waitForSelector("#channels tr[data-id=ch_wechat][data-pending]");
  const suspendID = await page.getAttribute("#channels tr[data-id=ch_wechat]", "data-pending");
  assert.equal(await page.getAttribute("#ch-pending", "data-approval"), suspendID);
  assert.match(await page.textContent("#ch-pending"), /已提交，待另一位管理员批准 submitted — another administrator must approve/);
  assert.equal(await page.evaluate(() => document.activeElement.closest("tr")?.dataset.id), "ch_wechat");
  assert.equal(await channelStatus("ch_wechat"), "active", "not suspended before approval");
  await approveOn(aud, suspendID);
  await aud.waitForSelector("#channels tr[data-id=ch_wechat][data-status=suspended]:not([data-pending])");
  assert.equal(await channelStatus("ch_wechat"), "suspended");
  await aud.focus("#channels tr[data-id=ch_wechat] button");
  await aud.keyboard.press("Enter");
  await aud.waitForSelector("#channels tr[data-id=ch_wechat][data-pending]");
  assert.equal(await aud.evaluate(() => document.activeElement.closest("tr")?.dataset.id), "ch_wechat");
  const reactivateID = await aud.getAttribute("#channels tr[data-id=ch_wechat]", "data-pending");
  assert.match(await aud.textContent(`#approvals tr[data-id='${reactivateID}']`), /status=active.*user:auditor/);
  await approveOn(page, reactivateID);
  await page.waitForSelector("#channels tr[data-id=ch_wechat][data-status=active]:not([data-pending])");
  assert.equal(await channelStatus("ch_wechat"), "active");
  const decided = (await api("GET", "/api/v1/approvals", admin)).body.items.filter((a) => [issueID, revokeID, suspendID, reactivateID].includes(a.approval_id));
  assert.deepEqual(decided.map((a) => [a.status, a.prepared_by, a.decided_by]).sort(), [
    ["approved", "user:admin", "user:auditor"], ["approved", "user:admin", "user:auditor"], ["approved", "user:admin", "user:auditor"],
    ["approved", "user:auditor", "user:admin"]]);

  // Fund operations. Contributions: a file with an unknown person and a
  // duplicate line lists both and prepares nothing; the corrected file
  // (three employees of 370100 with employee coverage this month) is
  // checked with a progress bar and prepared by admin, who cannot approve
  // it; the auditor approves it.
  const period = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 7), day1 = period + "-01";
  const employees = [];
  for (const p of (await api("GET", "/api/v1/persons?category=active&admdvs=370100&limit=20", admin)).body.items) {
    const covs = (await api("GET", "/api/v1/persons/" + p.psn_no + "/coverages", admin)).body.items;
    if (covs.some((c) => c.insutype === "310" && c.admdvs === "370100" && c.status === "active" && c.start_date <= day1 && (!c.end_date || c.end_date >= day1))) employees.push(p.psn_no);
    if (employees.length === 3) break;
  }
  assert.equal(employees.length, 3, "three employees of 370100");
  const cHeader = "psn_no,insutype,period,kind,amount";
  const cGood = employees.flatMap((psn, i) => [`${psn},310,${period},employer,${(560 + 70 * i).toFixed(2)}`, `${psn},310,${period},individual,${(160 + 20 * i).toFixed(2)}`]);
  const cBadFile = join(dir, "contributions-bad.csv"), cGoodFile = join(dir, "contributions.csv");
  writeFileSync(cBadFile, [cHeader, cGood[0], cGood[1], `99999999999999999999,310,${period},employer,100.00`, cGood[0]].join("\n") + "\n");
  writeFileSync(cGoodFile, [cHeader, ...cGood].join("\r\n") + "\r\n");
  const contributionRuns = async () => (await api("GET", "/api/v1/fund-runs?kind=contributions", admin)).body.items.length;
  const runsBefore = await contributionRuns();
  await page.waitForSelector("#fd-funds tr[data-account='fund:370100:310']");
  assert.equal(await page.inputValue("#fo-period"), period);
  await page.setInputFiles("#fc-file", cBadFile);
  await page.click("#fc-start");
  await page.waitForSelector("#fc-status[data-status=failed]", { timeout: 20000 });
  const cBad = await page.$$eval("#fc-errors tbody tr[data-line]", (trs) => trs.map((tr) => [tr.dataset.line, tr.cells[1].textContent, tr.cells[2].textContent]));
  assert.deepEqual(cBad.map((r) => r.slice(0, 2)), [["4", "psn_no"], ["5", "psn_no"]]);
  assert.match(cBad[0][2], /unknown person/);
  assert.match(cBad[1][2], /duplicate of line 2/);
  assert.match(await page.textContent("#fc-status"), /2 of 4 lines are bad; no run was prepared/);
  assert.equal(await contributionRuns(), runsBefore, "a bad file prepares no run");
  await page.evaluate(() => {
    const st = document.getElementById("fc-status");
    window.__fundJob = [];
    new MutationObserver(() => window.__fundJob.push(st.dataset.status + " " + document.getElementById("fc-progress").value + "/" +
      document.getElementById("fc-progress").max)).observe(st, { attributes: true, attributeFilter: ["data-status"], childList: true });
  });
  await page.setInputFiles("#fc-file", cGoodFile);
  await page.click("#fc-start");
  await page.waitForSelector("#fc-status[data-status=succeeded]", { timeout: 20000 });
  const jobSeen = await page.evaluate(() => window.__fundJob);
  assert.equal(jobSeen[0].split(" ")[0], "running", "the job was shown running first: " + jobSeen);
  assert.deepEqual(await page.$eval("#fc-progress", (p) => [p.value, p.max]), [6, 6]);
  assert.equal(await page.isHidden("#fc-errors"), true);
  const contribID = await page.getAttribute("#fc-status", "data-run");
  const cTotal = cGood.reduce((a, l) => a + Math.round(parseFloat(l.split(",")[4]) * 100), 0);
  const yuan = (f) => (f / 100).toFixed(2);
  assert.match(await page.textContent("#fc-status"), new RegExp(contribID + ".*6 行 lines · ¥" + yuan(cTotal) + " · 待另一位管理员批准"));
  await page.waitForSelector(`#fo-runs tr[data-run='${contribID}'][data-status=prepared]`);
  assert.equal(await page.$$eval("#fo-lines tbody tr[data-seq]", (trs) => trs.length), 6);
  await page.click(`#fo-runs tr[data-run='${contribID}'] button:has-text('Approve')`);
  await page.waitForSelector(`#fo-status[data-run='${contribID}'][data-status=refused]`);
  assert.match(await page.textContent("#error"), /dual_control/);
  const approveRun = async (id) => {
    await aud.click("#fo-refresh");
    await aud.click(`#fo-runs tr[data-run='${id}'][data-status=prepared] button:has-text('Approve')`);
    await aud.waitForSelector(`#fo-status[data-run='${id}'][data-status=done]`);
    await aud.waitForSelector(`#fo-runs tr[data-run='${id}'][data-status=done]`);
    const r = (await api("GET", "/api/v1/fund-runs/" + id, admin)).body.run;
    assert.deepEqual([r.status, r.posted, r.prepared_by, r.decided_by], ["done", r.lines, "user:admin", "user:auditor"]);
    return r;
  };
  await approveRun(contribID);

  // Crediting (划入) of this month, prepared by admin and approved by the auditor.
  await page.click("#fo-crediting");
  await page.waitForSelector(`#fo-status[data-status=prepared]:not([data-run='${contribID}'])`);
  const creditID = await page.getAttribute("#fo-status", "data-run");
  assert.equal((await api("GET", "/api/v1/fund-runs/" + creditID, admin)).body.run.kind, "crediting");
  const credited = await approveRun(creditID);
  assert.ok(credited.summary.employees >= 3, JSON.stringify(credited.summary));

  // The dashboard: per fund the balance, days of cover and this month's
  // flows as the API has them; the chart draws 12 months of income and
  // outgo bars and the month-end balance line.
  const board = (await api("GET", "/api/v1/funds/dashboard?admdvs=370100&months=12", admin)).body;
  const pool = board.funds.find((f) => f.account === "fund:370100:310");
  assert.ok(fen(pool.months[11].income) >= cTotal, "the contributions are this month's income: " + JSON.stringify(pool.months[11]));
  await aud.waitForFunction((b) => document.querySelector("#fd-funds tr[data-account='fund:370100:310'] td.balance")?.textContent === "¥" + b, pool.balance);
  const shownFunds = await aud.$$eval("#fd-funds tbody tr[data-account]", (trs) => trs.map((tr) => [tr.dataset.account, ...[...tr.cells].slice(2).map((c) => c.textContent)]));
  assert.deepEqual(shownFunds, board.funds.map((f) => [f.account, "¥" + f.balance, f.days_of_cover === null ? "— 无支出 no outgo" : f.days_of_cover + " 天 days",
    "¥" + f.months[11].income, "¥" + f.months[11].outgo]));
  assert.equal(await aud.getAttribute("#chart-fund", "data-account"), "fund:370100:310");
  const chart = await aud.$eval("#chart-fund", (svg) => ({ bars: svg.querySelectorAll("rect.bar").length, bars2: svg.querySelectorAll("rect.bar2").length,
    dots: svg.querySelectorAll("circle.dot").length, line: svg.querySelector("polyline.line")?.getAttribute("points").split(" ").length,
    titles: [...svg.querySelectorAll("rect.bar title, rect.bar2 title, circle.dot title")].map((t) => t.textContent) }));
  assert.deepEqual([chart.bars, chart.bars2, chart.dots, chart.line], [12, 12, 12, 12]);
  const m = pool.months[11], ml = m.month.slice(2);
  for (const t of [`${ml} 收入 income: ¥${m.income}`, `${ml} 支出 outgo: ¥${m.outgo}`, `${ml} 月末余额 balance: ¥${m.balance}`]) assert.ok(chart.titles.includes(t), t + " in " + chart.titles.slice(-3));

  // Payout (拨付) of this month: prepared by admin, approved by the
  // auditor; the bank file downloads; the simulated bank pays every line
  // and the statements show the payouts confirmed.
  await page.click("#fo-payout");
  await page.waitForSelector(`#fo-status[data-status=prepared]:not([data-run='${creditID}'])`);
  const payoutID = await page.getAttribute("#fo-status", "data-run");
  assert.notEqual(payoutID, creditID);
  await approveRun(payoutID);
  await aud.waitForSelector(`#fp-box[data-run='${payoutID}'] #fp-download:not([hidden])`);
  const bankCSV = (await api("GET", "/api/v1/fund-runs/" + payoutID + "/bank-file", admin)).body;
  const bankRows = bankCSV.trim().split("\n").slice(1);
  assert.ok(bankRows.length >= 1, "something to pay: " + bankCSV);
  const [download] = await Promise.all([aud.waitForEvent("download"), aud.click("#fp-download")]);
  assert.equal(download.suggestedFilename(), "payout-" + payoutID + ".csv");
  assert.equal(readFileSync(await download.path(), "utf8"), bankCSV);
  const payouts = (await api("GET", "/api/v1/fund-payouts?run_id=" + payoutID, admin)).body.items;
  assert.equal(payouts.length, bankRows.length);
  const stmtRows = async () => aud.$$eval("#fp-statements tbody tr[data-code]", (trs) => trs.map((tr) => [tr.dataset.code, tr.dataset.payout || "", tr.dataset.status,
    tr.querySelector("td.net").textContent]));
  const before = await stmtRows();
  for (const p of payouts) assert.deepEqual(before.find((r) => r[0] === p.fixmedins_code), [p.fixmedins_code, p.payout_id, "instructed", "¥" + p.amount]);
  await aud.click("#fp-simulate");
  await aud.waitForSelector("#fp-status[data-status=applied]");
  const cleared = payouts.reduce((a, p) => a + fen(p.amount), 0);
  assert.match(await aud.textContent("#fp-status"), new RegExp("confirmed " + payouts.length + " · 未付 failed 0 · .* ¥" + yuan(cleared)));
  await aud.waitForFunction((n) => document.querySelectorAll("#fp-statements tbody tr[data-status=confirmed]").length === n, payouts.length);
  const after = (await api("GET", "/api/v1/fund-payouts?run_id=" + payoutID, admin)).body.items;
  assert.deepEqual(after.map((p) => p.status), payouts.map(() => "confirmed"));
  const st0 = after[0].statement;
  const row0 = await aud.$eval(`#fp-statements tr[data-payout='${after[0].payout_id}']`, (tr) => [...tr.cells].slice(1, 9).map((c) => c.textContent));
  assert.deepEqual(row0, [st0.settled, st0.reversed, st0.recovered, st0.carried_in, st0.owed, st0.deposit_held, st0.review_held, st0.net].map((v) => "¥" + v));
  mkdirSync(join(root, "web", "test-results"), { recursive: true });
  await aud.locator("#funds").screenshot({ path: join(root, "web", "test-results", "admin-funds.png") });

  // A correction of one contribution line, prepared from the run's detail;
  // the auditor rejects it with a note.
  await page.click("#fo-refresh");
  await page.click(`#fo-runs tr[data-run='${contribID}'] button:has-text('Details')`);
  await page.waitForSelector(`#fo-detail[data-run='${contribID}'] #fo-lines tr[data-seq='1'][data-status=posted]`);
  await page.click("#fo-lines tr[data-seq='1'] button");
  assert.equal(await page.inputValue("#fx-transfer"), contribID + ":1");
  assert.equal(await page.evaluate(() => document.activeElement.id), "fx-reason");
  await page.fill("#fx-amount", "10.00");
  await page.fill("#fx-reason", "测试调账 test correction");
  await page.click("#fx-prepare");
  await page.waitForSelector("#fx-status[data-status=prepared]");
  const fixID = await page.getAttribute("#fx-status", "data-run");
  await aud.click("#fo-refresh");
  await aud.fill("#fo-note", "金额有误 wrong amount");
  await aud.click(`#fo-runs tr[data-run='${fixID}'] button:has-text('Reject')`);
  await aud.waitForSelector(`#fo-runs tr[data-run='${fixID}'][data-status=rejected]`);
  const fix = (await api("GET", "/api/v1/fund-runs/" + fixID, admin)).body.run;
  assert.deepEqual([fix.kind, fix.status, fix.total, fix.decided_by, fix.posted], ["correction", "rejected", "10.00", "user:auditor", 0]);

  // Accessibility: every form control has a label; text contrast ≥ 4.5
  // (on the preparer's page and on the approver's, which shows the fund
  // card's runs, statements and chart).
  for (const p of [page, aud]) {
    const unlabelled = await p.evaluate(() => [...document.querySelectorAll("input, select, textarea, progress")]
      .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id || el.outerHTML));
    assert.deepEqual(unlabelled, []);
  }
  const contrastOf = (p, sels) => p.evaluate((sels) => {
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
    for (const sel of sels) {
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
  }, sels);
  await page.check("#ap-decided");
  await page.waitForSelector("#approvals tbody tr[data-status=approved]");
  const contrast = (await contrastOf(page, ["body", "h2", "#persons tbody td", "#institutions tbody td", "label[for=ps-q]", ".hint", "#ps-summary", "#im-status",
    "#pd-rows tr.d-changed td.mark", "#pd-rows tr.d-changed td.old", "#pd-rows td.path", "#pd-rows td.new", "#pd-summary", "#channels td.st-active",
    "#keys td.st-active", "#k-summary", "#policies tbody td", "button#k-create", "header .en", "label[for=k-revoked]", "#k-pending", "#ch-pending",
    "#approvals td.st-approved", "#approvals td.code", "#approvals td.body", "#ap-summary", "#fc-status", "#fx-status", "#fo-lines td.path",
    "#fo-runs td.st-prepared", "#fo-runs td.st-done"])).concat(await contrastOf(aud, ["#fo-runs td.st-done", "#fo-runs td.st-rejected", "#fo-status",
    "#fd-funds td.balance", "#fd-summary", "#fd-caption", "#chart-fund text", "#fp-statements td.st-confirmed", "#fp-statements td small", "#fp-status",
    "#fp-download", "#fp-file-note", "#ap-status", "#approvals td.st-prepared", "button.waiting"]));
  const low = contrast.filter(([, r]) => !(r >= 4.5));
  assert.deepEqual(low, [], "contrast below 4.5: " + JSON.stringify(contrast));
  mkdirSync(join(root, "web", "test-results"), { recursive: true });
  await page.screenshot({ path: join(root, "web", "test-results", "admin-console.png"), fullPage: true });
  await page.locator("#approvals-card").screenshot({ path: join(root, "web", "test-results", "admin-approvals.png") });
  assert.deepEqual(errors, []);
  console.log("ok  /admin: persons found (masked), 320-row catalog CSV imported with a progress bar after a file with 2 bad lines was refused whole, policy diff 370100-2026.1 → 2027.1; " +
    "dual control: HMAC-SM3 key prepared by admin (who cannot approve it), approved by auditor (secret shown once to the approver, signs a request), revoked likewise, channel suspended and reactivated from the keyboard; " +
    "funds: contribution file with 2 bad lines refused, 6-line file prepared with a progress bar and approved, crediting and payout of " + period + " approved by the second administrator, bank file downloaded, " +
    payouts.length + " payout(s) confirmed by the simulated bank, statements shown, a correction rejected, dashboard figures and chart match the API; labels and contrast (min " +
    Math.min(...contrast.map(([, r]) => r)) + ") checked");
} catch (e) {
  failed = true;
  console.error("FAIL /admin:", e);
} finally {
  await browser.close();
  server.kill("SIGINT");
}
process.exit(failed ? 1 : 0);
