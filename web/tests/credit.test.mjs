// Browser test of credit payment (信用就医) across the three pages, in real
// headless Chromium:
//  - /app: the demo person with a credit agreement activates the
//    e-certificate and sees the active line; the last demo person reads the
//    consent, is refused while the box is unticked (nothing is created),
//    applies and sees the bank's reason for declining;
//  - /cashier: the first person's code is scanned, an inpatient stay opened,
//    the credit guarantee opened instead of a deposit (¥2,000 held), fee
//    lines added (the estimate follows), the patient discharged and the bill
//    settled on credit; an outpatient bill above what the line has left is
//    refused with credit_limit_exceeded and collected at the counter;
//  - /app again: the statement with the right amount and a due date ten days
//    on, repaid through WeChat Pay: nothing owed, the statement paid;
//  - /admin: the credit card's exposure table and SVG chart, the daily
//    settlement file with the bank ("matched"), the reminder/overdue cycle.
// Outcomes are checked through the API too; text contrast of the new parts
// and labels are checked; CSP refusals and page errors fail the test.
import { chromium } from "playwright-core";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { startDemo, root } from "./demo.mjs";
import { contrastProblems } from "./contrast.mjs";

const started = Date.now();
const results = join(root, "web", "test-results");
mkdirSync(results, { recursive: true });
const { base, dir, server, api } = await startDemo("credit");
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
const CREDIT_PSN = "37010000000000000002"; // the demo's credit holder (WeChat withholding agreement, ¥5,000 line at yhbank)
const shot = (page, name) => page.screenshot({ path: join(results, name), fullPage: true });
const addDays = (day, n) => new Date(Date.parse(day + "T00:00:00Z") + n * 86400e3).toISOString().slice(0, 10);
const chinaDay = (ts) => new Date(Date.parse(ts) + 8 * 3600e3).toISOString().slice(0, 10);
let failed = false;
try {
  const admin = (await api("POST", "/api/v1/auth/login", null, { username: "admin", password: "admin123" })).body.token;
  const reveal = async (psn) => (await api("GET", "/api/v1/persons/" + psn + "?reveal=true", admin)).body;
  const holder = await reveal(CREDIT_PSN);
  const everyone = (await api("GET", "/api/v1/persons?limit=500", admin)).body.items;
  assert.equal(everyone.length, 64, "the demo has 64 persons");
  const last = await reveal(everyone[everyone.length - 1].psn_no);
  const errors = [];
  const watch = (page, name) => {
    page.on("pageerror", (e) => errors.push(name + ": " + e.message));
    page.on("console", (m) => { if (/Content Security Policy/i.test(m.text())) errors.push(name + ": " + m.text()); });
  };

  // activate opens /app in a context of its own and activates a person's
  // e-certificate with the code from the demo's SMS outbox.
  async function activate(person, name) {
    const ctx = await browser.newContext({ viewport: { width: 420, height: 900 } });
    const page = await ctx.newPage();
    watch(page, name);
    await page.goto(base + "/app/");
    await page.fill("input[name=id_number]", person.id_number);
    await page.fill("input[name=name]", person.name);
    await page.click("#f-start button");
    await page.waitForSelector("#f-confirm:not([hidden])");
    const sms = (await api("GET", "/api/v1/ecert/dev/sms?limit=1", admin)).body.items[0].text;
    await page.fill("input[name=otp]", sms.match(/验证码 ([0-9]{6})/)[1]);
    await page.click("#f-confirm button");
    await page.waitForSelector("#qr svg");
    await page.waitForSelector("#credit-card:not([hidden])");
    return page;
  }
  // creditOf is GET /app/api/credit with the page's own session cookie.
  const creditOf = (page) => page.evaluate(async () => (await fetch("/app/api/credit", { credentials: "same-origin" })).json());
  const figure = (page, k) => page.textContent(`#credit-agreement dd[data-k=${k}]`);

  // ---- /app: the credit holder sees the active line. ----
  const app = await activate(holder, "app");
  await app.waitForSelector("#credit-agreement[data-status=active]");
  assert.ok(await app.isHidden("#f-credit"), "no application form with a live agreement");
  assert.equal(await figure(app, "limit"), "¥5000.00");
  assert.equal(await figure(app, "available"), "¥5000.00");
  assert.equal(await figure(app, "outstanding"), "¥0.00");
  assert.match(await figure(app, "interest_free_days"), /^10 天$/);
  assert.match(await app.textContent("#credit-agreement"), /医惠银行（模拟）/);
  const before = await creditOf(app);
  assert.equal(before.agreements.length, 1);
  assert.equal(before.agreements[0].status, "active");
  const agreementNo = before.agreements[0].agreement_no;
  assert.equal(await app.getAttribute("#credit-agreement", "data-agreement"), agreementNo);

  // ---- /app: the last demo person. Consent first: the full text, an
  // unticked box; applying without the tick is refused and creates nothing.
  const other = await activate(last, "app (declined)");
  await other.waitForSelector("#f-credit:not([hidden])");
  await other.waitForFunction(() => document.getElementById("cr-consent").textContent.includes("信用就医授权书"));
  const consentShown = await other.textContent("#cr-consent");
  assert.match(consentShown, /免息期/);
  assert.ok(consentShown.split("\n").length >= 6, "the consent is shown in full");
  assert.equal(await other.isChecked("#cr-accept"), false, "the consent box starts unticked");
  assert.equal(await other.textContent("label[for=cr-accept]"), "我已阅读并同意 / I have read and accept");
  await other.click("#cr-apply");
  await other.waitForFunction(() => document.getElementById("error").textContent !== "");
  assert.match(await other.textContent("#error"), /勾选“我已阅读并同意”/);
  assert.equal(await other.evaluate(() => document.activeElement.id), "cr-accept", "the focus goes to the box to tick");
  assert.equal((await creditOf(other)).agreements.length, 0, "nothing was created without consent");
  // The server refuses an application without acceptance as well.
  const noConsent = await other.evaluate(async (v) => {
    const r = await fetch("/app/api/credit/applications", { method: "POST", headers: { "Content-Type": "application/json" }, credentials: "same-origin",
      body: JSON.stringify({ bank_code: "yhbank", consent_version: v, accept: false }) });
    return { status: r.status, body: await r.json() };
  }, await other.getAttribute("#cr-consent", "data-version"));
  assert.equal(noConsent.body.code, "invalid_argument", JSON.stringify(noConsent.body));
  assert.equal(noConsent.body.field, "accept");
  assert.equal((await creditOf(other)).agreements.length, 0);
  // English: the consent comes in English too.
  await other.click("#lang");
  await other.waitForFunction(() => document.getElementById("cr-consent").textContent.startsWith("Credit payment consent"));
  assert.equal((await other.innerText("#credit-title")).trim(), "Credit payment");
  await other.click("#lang");
  await other.waitForFunction(() => document.getElementById("cr-consent").textContent.includes("信用就医授权书"));
  // Ticked: the (simulated) bank declines this person, and says why.
  await other.check("#cr-accept");
  await other.click("#cr-apply");
  await other.waitForSelector("#cr-status[data-status=declined]");
  const declined = (await creditOf(other)).agreements;
  assert.equal(declined.length, 1);
  assert.equal(declined[0].status, "declined");
  assert.ok(declined[0].reason, "the bank gave a reason");
  assert.ok((await other.textContent("#cr-status")).includes(declined[0].reason), "the reason is shown");
  assert.ok((await other.textContent(`#credit-history li[data-status=declined]`)).includes(declined[0].reason));
  assert.equal(await other.isVisible("#f-credit"), true, "a declined person may apply again later");
  assert.equal(await other.textContent("#error"), "");
  await shot(other, "app-credit-declined.png");
  await other.context().close();

  // ---- /cashier: an inpatient stay on a credit guarantee. ----
  const desk = await browser.newPage({ viewport: { width: 1100, height: 1200 } });
  watch(desk, "cashier");
  await desk.goto(base + "/cashier/");
  await desk.fill("#u", "cashier.h37010000001");
  await desk.fill("#p", "cashier123");
  await desk.press("#p", "Enter");
  await desk.waitForSelector("#desk:not([hidden])");
  const code = await app.getAttribute("#qr", "data-code");
  await desk.keyboard.type(code); // the scanner gun
  await desk.keyboard.press("Enter");
  await desk.waitForSelector("#patient:not([hidden])");
  await desk.selectOption("#vtype", "inpatient");
  await desk.click("#open");
  await desk.waitForSelector("#visit:not([hidden])");
  await desk.waitForSelector("#guarantee:not([hidden]) #g-open:not([hidden])");
  assert.equal(await desk.evaluate(() => document.activeElement.id), "g-open", "at admission the guarantee is offered first");
  assert.ok(await desk.isVisible("#discharge"));
  assert.ok(await desk.isDisabled("#presettle"), "an ongoing stay is not pre-settled before the discharge");
  const mdtrt = (await desk.textContent("#mdtrt")).trim();
  await desk.click("#g-open");
  await desk.waitForSelector("#g-status[data-status=open]");
  const gval = (k) => desk.textContent(`#g-figures tr[data-k=${k}] td.num`);
  assert.equal(await gval("held"), "¥2000.00");
  assert.match(await desk.textContent("#g-status"), /no deposit/);
  assert.match(await desk.textContent("#g-status"), /免交押金/);
  assert.equal(await gval("line_available"), "¥3000.00");
  const cashier = (await api("POST", "/api/v1/auth/login", null, { username: "cashier.h37010000001", password: "cashier123" })).body.token;
  const g1 = (await api("GET", "/api/v1/visits/" + mdtrt + "/credit-guarantee", cashier)).body;
  assert.equal(g1.held, "2000.00");
  assert.equal(g1.status, "open");
  assert.equal(g1.agreement_no, agreementNo);
  // Fee lines: two lines of a class-A drug; the guarantee's estimate follows.
  const drug = (await api("GET", "/api/v1/catalog?class=A&kind=drug&limit=1", admin)).body.items[0];
  async function addLine(price, qty, n) {
    await desk.fill("#price", price);
    await desk.fill("#qty", qty);
    await desk.fill("#q", drug.code);
    await desk.waitForSelector("#hits li");
    await desk.click("#hits li");
    await desk.waitForFunction((k) => document.querySelectorAll("#lines tbody tr").length === k, n);
  }
  await addLine("480.00", "3", 1);
  await desk.waitForFunction(() => document.querySelector("#g-figures tr[data-k=estimated_self_pay] td.num")?.textContent !== "¥0.00");
  const est1 = await gval("estimated_self_pay");
  await addLine("480.00", "2", 2);
  await desk.waitForFunction((e) => document.querySelector("#g-figures tr[data-k=estimated_self_pay] td.num")?.textContent !== e, est1);
  assert.equal(await gval("shortfall"), "¥0.00");
  assert.ok(await desk.isHidden("#g-warn"), "no shortfall warning while the line holds enough");
  assert.equal(await gval("held"), "¥2000.00", "the estimate is within the guarantee");
  await shot(desk, "cashier-credit-guarantee.png");
  // Discharge, pre-settle (no personal account: the line pays the whole
  // out-of-pocket part) and settle on credit.
  await desk.click("#discharge");
  await desk.waitForSelector("#presettle:not([disabled])");
  assert.ok(await desk.isHidden("#discharge"));
  assert.equal(await desk.evaluate(() => document.activeElement.id), "presettle");
  await desk.uncheck("#acct");
  await desk.click("#presettle");
  await desk.waitForSelector("#settle:not([disabled])");
  await desk.selectOption("#paywith", "credit");
  await desk.click("#settle");
  await desk.waitForSelector("#result[data-status=paid]", { timeout: 30000 });
  assert.match(await desk.textContent("#result"), /credit/);
  await desk.waitForSelector("#legs tr[data-leg=self][data-status=paid]");
  await desk.waitForSelector("#guarantee[data-status=settled]");
  const orderId = (await desk.textContent("#result")).match(/PO\w+/)[0];
  const order = (await api("GET", "/api/v1/payments/" + orderId, cashier)).body;
  assert.equal(order.status, "paid");
  assert.equal(order.channel, "credit");
  assert.equal(order.agreement_no, agreementNo);
  assert.equal(order.medfee_sumamt, "2400.00");
  const owed = order.self_pay;
  assert.ok(parseFloat(owed) > 0 && parseFloat(owed) < 2000, "the out-of-pocket part fits the WeChat agreement's ¥2,000 per payment: " + owed);
  const guaranteeDesk = await desk.evaluate(contrastProblems, "#guarantee");
  await shot(desk, "cashier-credit-paid.png");

  // ---- /app: the statement, then the repayment through WeChat Pay. ----
  await app.waitForSelector("#credit-statements li[data-status=open]", { timeout: 20000 });
  const stmtLi = "#credit-statements li[data-status=open]";
  assert.equal(await app.textContent(stmtLi + " .st-amount"), "¥" + owed);
  const settledDay = chinaDay(order.paid_at);
  assert.equal(await app.getAttribute(stmtLi + " .st-due", "data-due"), addDays(settledDay, 10), "due ten days after the settlement");
  await app.click(stmtLi + " summary");
  await app.waitForSelector(stmtLi + " details[open] .st-lines tbody tr");
  assert.equal((await app.$$(stmtLi + " .st-lines tbody tr")).length, 2, "the statement lists both fee lines");
  assert.equal(await app.textContent(stmtLi + " .st-totals tr[data-k=medfee] td.num"), "¥2400.00");
  await app.waitForFunction((o) => document.querySelector("#credit-agreement dd[data-k=outstanding]")?.textContent === "¥" + o, owed);
  const st1 = await creditOf(app);
  assert.equal(st1.statements.length, 1);
  assert.equal(st1.statements[0].amount, owed);
  assert.equal(st1.statements[0].due_date, addDays(settledDay, 10));
  assert.equal(st1.statements[0].setl_id, order.setl_id);
  assert.equal(st1.agreements[0].outstanding, owed);
  assert.equal(await app.inputValue("#cr-amount"), owed, "the repay amount starts as everything owed");
  await app.waitForSelector("#credit-notices li[data-kind=guarantee]");
  await app.waitForSelector("#credit-notices li[data-kind=statement]");
  await shot(app, "app-credit-statement.png");
  await app.selectOption("#cr-wallet", "wechat");
  await app.click("#cr-repay");
  await app.waitForSelector("#cr-status[data-status=applied]", { timeout: 20000 });
  await app.waitForSelector("#credit-statements li[data-status=paid]");
  assert.equal(await figure(app, "outstanding"), "¥0.00");
  assert.equal(await figure(app, "available"), "¥5000.00");
  const st2 = await creditOf(app);
  assert.equal(st2.agreements[0].outstanding, "0.00");
  assert.equal(st2.statements[0].status, "paid");
  assert.equal(st2.statements[0].repaid, owed);
  assert.equal(st2.repayments[0].status, "applied");
  assert.equal(st2.repayments[0].channel, "wechat");
  assert.equal(st2.repayments[0].applied, owed);
  await app.waitForSelector("#credit-repayments li[data-status=applied]");
  const appContrast = await app.evaluate(contrastProblems, "#credit-card");
  await shot(app, "app-credit-repaid.png");
  // English and large text keep working for the section.
  await app.click("#lang");
  await app.click("#large");
  await app.waitForFunction(() => document.getElementById("cr-state").textContent.startsWith("Active"));
  assert.match(await app.textContent("#credit-statements li[data-status=paid] .st-state"), /^paid$/);
  assert.ok(await app.evaluate(() => parseFloat(getComputedStyle(document.querySelector(".cr-figures")).fontSize)) >= 19, "large text reaches the credit card");
  const appContrastEn = await app.evaluate(contrastProblems, "#credit-card");
  await shot(app, "app-credit-en-large.png");
  await app.click("#lang");
  await app.click("#large");

  // ---- /cashier: a bill above what the line has left is refused on
  // credit, nothing is settled, and the counter collects instead. ----
  await app.click("#refresh");
  await app.waitForFunction((old) => document.getElementById("qr").dataset.code !== old, code);
  const code2 = await app.getAttribute("#qr", "data-code");
  await desk.fill("#scan", code2);
  await desk.press("#scan", "Enter");
  await desk.waitForFunction(() => document.activeElement.id === "vtype");
  await desk.selectOption("#vtype", "general_outpatient");
  await desk.click("#open");
  await desk.waitForFunction((m) => document.getElementById("mdtrt").textContent !== m, mdtrt);
  assert.ok(await desk.isHidden("#guarantee"), "no guarantee panel for an outpatient");
  const service = (await api("GET", "/api/v1/catalog?class=C&kind=service&limit=1", admin)).body.items[0];
  await desk.fill("#price", "3000.00");
  await desk.fill("#qty", "2");
  await desk.fill("#q", service.code);
  await desk.waitForSelector("#hits li");
  await desk.click("#hits li");
  await desk.waitForSelector("#lines tbody tr");
  await desk.uncheck("#acct");
  await desk.click("#presettle");
  await desk.waitForSelector("#settle:not([disabled])");
  await desk.selectOption("#paywith", "credit");
  await desk.click("#settle");
  await desk.waitForSelector("#credit-refused:not([hidden])");
  assert.match(await desk.textContent("#credit-why"), /credit_limit_exceeded/);
  assert.match(await desk.textContent("#credit-why"), /Not enough left on the credit line/);
  assert.equal(await desk.evaluate(() => document.activeElement.id), "to-counter");
  const refusedContrast = await desk.evaluate(contrastProblems, "#visit");
  const mdtrt2 = (await desk.textContent("#mdtrt")).trim();
  assert.equal((await api("GET", "/api/v1/visits/" + mdtrt2, cashier)).body.settlements, 0, "nothing was settled");
  assert.equal((await creditOf(app)).agreements[0].outstanding, "0.00", "nothing was drawn");
  await shot(desk, "cashier-credit-refused.png");
  await desk.keyboard.press("Enter");
  await desk.waitForSelector("#result[data-status=paid]", { timeout: 30000 });
  assert.match(await desk.textContent("#result"), /counter/);
  assert.ok(await desk.isHidden("#credit-refused"));

  // ---- /admin: exposure, chart, settlement file, cycle. ----
  const adm = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  watch(adm, "admin");
  await adm.goto(base + "/admin/");
  await adm.fill("#u", "admin");
  await adm.fill("#p", "admin123");
  await adm.press("#p", "Enter");
  await adm.waitForSelector("#cr-exposure tr[data-bank=yhbank]");
  const ex = (await api("GET", "/api/v1/credit/exposure", admin)).body;
  const yh = ex.banks.find((b) => b.bank_code === "yhbank");
  assert.equal(await adm.textContent("#cr-exposure tr[data-bank=yhbank] td[data-k=agreements]"), String(yh.agreements));
  assert.equal(await adm.textContent("#cr-exposure tr[data-bank=yhbank] td[data-k=outstanding]"), "¥" + yh.outstanding);
  assert.equal(yh.outstanding, "0.00");
  assert.match(await adm.textContent("#cr-exposure tr[data-bank=yhbank] td[data-k=overdue_rate]"), /^0\.0%$/);
  assert.match(await adm.textContent("#cr-summary"), /overdue rate/);
  const today = ex.days[ex.days.length - 1];
  assert.equal(today.draws, owed);
  assert.equal(today.repayments, owed);
  const rects = await adm.$$eval("#chart-credit rect", (rs) => rs.map((r) => ({ cls: r.getAttribute("class"), h: Number(r.getAttribute("height")), title: r.textContent })));
  assert.equal(rects.length, 2 * ex.days.length, "a draw bar and a repayment bar per day");
  const drawBar = rects.filter((r) => r.cls === "bar").pop(), repayBar = rects.filter((r) => r.cls === "bar2").pop();
  assert.ok(drawBar.h > 0 && repayBar.h > 0, "today's bars are drawn");
  assert.ok(drawBar.title.includes(String(parseFloat(owed))), drawBar.title);
  await adm.click("#cr-send");
  await adm.waitForSelector("#cr-file-status[data-status]");
  assert.equal(await adm.getAttribute("#cr-file-status", "data-status"), "matched", await adm.textContent("#cr-file-status"));
  assert.match(await adm.textContent("#cr-file-status"), /matched/);
  await adm.waitForSelector("#cr-reports tr[data-status=matched][data-bank=yhbank]");
  const files = (await api("GET", "/api/v1/credit/settlement-files", admin)).body.items;
  assert.equal(files[0].status, "matched");
  assert.equal(files[0].draws, owed);
  assert.equal(files[0].repayments, owed);
  assert.ok(await adm.isHidden("#cr-diffs"), "no differences to list");
  await adm.click("#cr-cycle");
  await adm.waitForSelector("#cr-cycle-status[data-done]");
  assert.match(await adm.textContent("#cr-cycle-status"), /reminded \d+ · 转为逾期 now overdue \d+ · 已暂停 suspended \d+/);
  const unlabelled = await adm.evaluate(() => [...document.querySelectorAll("#credit input, #credit select")]
    .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id));
  assert.deepEqual(unlabelled, []);
  const adminContrast = await adm.evaluate(contrastProblems, "#credit");
  await adm.$eval("#credit", (el) => el.scrollIntoView());
  await adm.locator("#credit").screenshot({ path: join(results, "admin-credit.png") });
  assert.equal(await adm.textContent("#error"), "");

  assert.deepEqual(guaranteeDesk, [], "contrast of the guarantee panel");
  assert.deepEqual(refusedContrast, [], "contrast of the refused credit payment");
  assert.deepEqual(appContrast, [], "contrast of the credit section");
  assert.deepEqual(appContrastEn, [], "contrast of the credit section (English, large text)");
  assert.deepEqual(adminContrast, [], "contrast of the admin credit card");
  assert.deepEqual(errors, []);
  console.log(`ok  credit payment: active line shown in /app; consent required (nothing created) and the last person declined with the bank's reason; ` +
    `inpatient stay on a ¥2000.00 credit guarantee (no deposit), discharged and settled on credit (¥${owed}); statement due ${addDays(settledDay, 10)} repaid via WeChat; ` +
    `a bill over the line refused (credit_limit_exceeded) and collected at the counter; admin exposure, chart, settlement file matched, cycle run ` +
    `(${((Date.now() - started) / 1000).toFixed(0)} s)`);
} catch (e) {
  failed = true;
  console.error("FAIL credit:", e);
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    const shown = await p.evaluate(() => document.getElementById("error")?.textContent).catch(() => null);
    if (shown) console.error("  " + p.url() + " shows the error: " + shown);
  }
} finally {
  await browser.close();
  server.kill("SIGINT");
  if (server.exitCode === null) await new Promise((r) => { server.on("exit", r); setTimeout(r, 10000); });
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
