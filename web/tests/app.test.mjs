// Browser test of /app, the official-app channel's patient page, in real
// headless Chromium: activate with the one-time code from the demo's SMS
// outbox, show the dynamic code (made and signed in the browser), and have
// a hospital cashier resolve it — once, and only once.
import { chromium } from "playwright-core";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { startDemo, root } from "./demo.mjs";

const { base, bin, dir, server, api } = await startDemo("app");
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
let failed = false;
try {
  const admin = (await api("POST", "/api/v1/auth/login", null, { username: "admin", password: "admin123" })).body.token;
  const cashier = (await api("POST", "/api/v1/auth/login", null, { username: "cashier.h37010000001", password: "cashier123" })).body.token;
  const list = (await api("GET", "/api/v1/persons?category=active&limit=1", admin)).body.items;
  const person = (await api("GET", "/api/v1/persons/" + list[0].psn_no + "?reveal=true", admin)).body;

  const page = await browser.newPage({ viewport: { width: 420, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base + "/app/");
  await page.fill("input[name=id_number]", person.id_number);
  await page.fill("input[name=name]", person.name);
  await page.click("#f-start button");
  await page.waitForSelector("#f-confirm:not([hidden])");
  assert.match(await page.textContent("#sent"), /\*\*\*\*/);
  const sms = (await api("GET", "/api/v1/ecert/dev/sms?limit=1", admin)).body.items[0].text;
  const otp = sms.match(/验证码 ([0-9]{6})/)[1];
  await page.fill("input[name=otp]", otp);
  await page.click("#f-confirm button");
  await page.waitForSelector("#qr svg");
  const code = await page.getAttribute("#qr", "data-code");
  assert.match(code, /^YB1:[0-9A-Z $%*+\-./:]{339}$/);
  // The device key stayed in the browser: the page sent only the public half.
  const stored = JSON.parse(await page.evaluate(() => localStorage.getItem("yibao.ecert.device")));
  assert.equal(stored.privateKey.length, 64);
  await page.waitForSelector("#limits .limit");
  mkdirSync(join(root, "web", "test-results"), { recursive: true });
  await page.screenshot({ path: join(root, "web", "test-results", "app.png"), fullPage: true });

  // The patient lets yibao charge a WeChat Pay wallet (the simulator) for
  // out-of-pocket amounts up to 2,000 yuan per payment.
  await page.selectOption("#ag-channel", "wechat");
  await page.fill("#ag-limit", "2000.00");
  await page.click("#f-agree button");
  await page.waitForSelector("#agreements li[data-channel=wechat]");

  // The cashier, at /cashier, types the code as a scanner gun would
  // (the characters and Enter), opens the visit, adds a drug, sees the
  // split and settles — keyboard and clicks in a real browser.
  const desk = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  desk.on("pageerror", (e) => errors.push("cashier: " + e.message));
  await desk.goto(base + "/cashier/");
  await desk.fill("#u", "cashier.h37010000001");
  await desk.fill("#p", "cashier123");
  await desk.press("#p", "Enter");
  await desk.waitForSelector("#desk:not([hidden])");
  assert.equal(await desk.evaluate(() => document.activeElement.id), "scan", "the scan field has the focus");
  await desk.keyboard.type(code);
  await desk.keyboard.press("Enter");
  await desk.waitForSelector("#patient:not([hidden])");
  assert.match(await desk.textContent("#p-name"), /\*/);
  await desk.click("#open");
  await desk.waitForSelector("#visit:not([hidden])");
  const drug = (await api("GET", "/api/v1/catalog?class=A&kind=drug&limit=1", admin)).body.items[0];
  await desk.fill("#price", "480.00");
  await desk.fill("#qty", "3");
  await desk.fill("#q", drug.code);
  await desk.waitForSelector("#hits li");
  await desk.click("#hits li");
  await desk.waitForSelector("#lines tbody tr");
  await desk.uncheck("#acct"); // the wallet pays the whole self-pay part
  await desk.click("#presettle");
  await desk.waitForSelector("#split:not([hidden])");
  // One-code payment: settle and charge the wallet in one step; every
  // leg shows its status.
  assert.equal(await desk.inputValue("#paywith"), "auto");
  await desk.click("#settle");
  await desk.waitForSelector("#result[data-status=paid]", { timeout: 30000 });
  await desk.waitForSelector("#legs tr[data-leg=self][data-status=paid]");
  await desk.waitForSelector("#legs tr[data-leg=fund][data-status=paid]");
  await desk.screenshot({ path: join(root, "web", "test-results", "cashier.png"), fullPage: true });
  // Labels: every input of the counter has one.
  const unlabelled = await desk.evaluate(() => [...document.querySelectorAll("input, select")]
    .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id));
  assert.deepEqual(unlabelled, []);
  // The code was used by the counter: a second use anywhere is refused.
  const again = await api("POST", "/api/v1/ecert/resolve", cashier, { code });
  assert.equal(again.status, 409);
  assert.match(again.body.message, /^code_replayed/);
  // A new code from the page works again.
  await page.click("#refresh");
  await page.waitForFunction((old) => document.getElementById("qr").dataset.code !== old, code);
  const next = await page.getAttribute("#qr", "data-code");
  const first = await api("POST", "/api/v1/ecert/resolve", cashier, { code: next });
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(first.body.person.psn_no, person.psn_no);
  assert.ok(first.body.ec_token.length <= 40);
  // Mobile payment: the hospital pushes a bill to the patient's phone;
  // the patient confirms it in /app with a fresh signed code and pays the
  // out-of-pocket part in the (simulated) Alipay wallet page.
  const visit = (await api("POST", "/api/v1/visits", cashier, { psn_no: person.psn_no, fixmedins_code: "H37010000001", visit_type: "general_outpatient" })).body;
  const withLines = (await api("POST", "/api/v1/visits/" + visit.mdtrt_id + "/fee-lines", cashier,
    { lines: [{ feedetl_sn: "1", catalog_code: drug.code, unit_price: "260.00", quantity: "2" }] })).body;
  const bill = await api("POST", "/api/v1/mobile-payments", cashier, { mdtrt_id: visit.mdtrt_id, med_org_ord: "HIS-" + visit.mdtrt_id,
    medfee_sumamt: withLines.fee_lines[0].amount, acct_used_flag: false });
  assert.equal(bill.status, 201, JSON.stringify(bill.body));
  await page.reload();
  await page.waitForSelector("#bills li[data-status=awaiting_patient] button", { timeout: 20000 });
  await page.selectOption("#bill-channel", "alipay");
  await page.click("#bills li[data-status=awaiting_patient] button");
  await page.waitForSelector("#pay-link:not([hidden])");
  const wallet = await browser.newPage({ viewport: { width: 420, height: 700 } });
  await wallet.goto(await page.getAttribute("#pay-link", "href"));
  await wallet.click("button[type=submit]");
  await page.waitForSelector("#bills li[data-status=paid][data-id='" + bill.body.pay_ord_id + "']", { timeout: 30000 });
  await page.screenshot({ path: join(root, "web", "test-results", "app-bills.png"), fullPage: true });
  await wallet.close();

  // The patient sees the receipts: the one-code bill from the counter
  // with each fee line, and the totals.
  await page.waitForSelector("#receipts li.receipt-row button");
  const receipts = await page.$$("#receipts li.receipt-row");
  assert.ok(receipts.length >= 2, "both settlements are listed");
  await page.click("#receipts li.receipt-row button:has-text('¥1440.00')");
  await page.waitForSelector("#receipt:not([hidden]) #r-lines tbody tr");
  assert.match(await page.textContent("#r-totals"), /¥1440\.00/);
  // The receipt's proof: downloaded from the page, checked offline by
  // `yibao verify` with only the keys the log publishes.
  const proofURL = await page.getAttribute("#r-proof", "href");
  let proof = null;
  for (let i = 0; i < 30 && !proof; i++) {
    const r = await page.evaluate(async (u) => { const x = await fetch(u); return { ok: x.ok, text: await x.text() }; }, proofURL);
    if (r.ok) proof = r.text; else await new Promise((res) => setTimeout(res, 500));
  }
  assert.ok(proof, "the receipt's proof is ready within 15 s");
  const proofFile = join(dir, "receipt.json");
  writeFileSync(proofFile, proof);
  const logInfo = await (await fetch(base + "/api/v1/audit/log")).json();
  const verified = execFileSync(bin, ["verify", ...logInfo.verifier_keys.flatMap((k) => ["--key", k]), proofFile]).toString();
  assert.match(verified, /^ok {2}entry settlement:ST\w+:completed/);
  const forged = JSON.parse(proof);
  forged.receipt.data = Buffer.from(Buffer.from(forged.receipt.data, "base64").toString().replace("1440.00", "1.00")).toString("base64");
  writeFileSync(proofFile, JSON.stringify(forged));
  assert.throws(() => execFileSync(bin, ["verify", ...logInfo.verifier_keys.flatMap((k) => ["--key", k]), proofFile], { stdio: "pipe" }),
    "an edited receipt does not verify");

  // Booking: the patient takes the first free slot of the first hospital;
  // the hospital sees the visit registered in that department.
  await page.waitForSelector("#slots li.slot button:not([disabled])");
  await page.click("#slots li.slot button:not([disabled])");
  await page.waitForSelector("#book-status[data-mdtrt]");
  const booked = await page.getAttribute("#book-status", "data-mdtrt");
  const bv = await api("GET", "/api/v1/visits/" + booked, admin);
  assert.equal(bv.status, 200, JSON.stringify(bv.body));
  assert.equal(bv.body.psn_no, person.psn_no);
  assert.ok(bv.body.slot_id && bv.body.dept_name, "the visit is registered in the slot's department");

  await page.waitForSelector("#family li");

  // English and large text, for the patient who wants them.
  await page.click("#lang");
  assert.equal(await page.evaluate(() => document.documentElement.lang), "en");
  assert.equal((await page.innerText("header h1")).trim(), "Medical-insurance e-certificate");
  await page.click("#large");
  assert.ok(await page.evaluate(() => parseFloat(getComputedStyle(document.body).fontSize)) >= 21, "large text is larger");
  await page.screenshot({ path: join(root, "web", "test-results", "app-receipt-en-large.png"), fullPage: true });
  await page.click("#lang");
  await page.click("#large");
  assert.equal((await page.innerText("header h1")).trim(), "医保电子凭证");

  // The bureau console: the dashboard charts, a new policy version drafted
  // from an existing one, replayed over this month's bills, submitted, and
  // approved by a second administrator.
  const adm = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  adm.on("pageerror", (e) => errors.push("admin: " + e.message));
  await adm.goto(base + "/admin/");
  await adm.fill("#u", "admin");
  await adm.fill("#p", "admin123");
  await adm.press("#p", "Enter");
  await adm.waitForSelector("#chart-days rect", { state: "attached" });
  assert.ok((await adm.$$("#chart-groups rect")).length > 0, "fund-by-level chart has bars");
  await adm.click("#policies tr[data-version='370100-2027.1'] button");
  await adm.waitForFunction(() => document.getElementById("draft").value.includes("370100-2027.1"));
  const draft = (await adm.inputValue("#draft")).replaceAll("370100-2027.1", "370100-2028.1").replaceAll("2027-", "2028-");
  await adm.fill("#draft", draft);
  await adm.click("#save-draft");
  await adm.waitForSelector("#policies tr[data-version='370100-2028.1']");
  await adm.fill("#rv", "370100-2028.1");
  await adm.click("#replay");
  await adm.waitForSelector("#replay-rows tbody tr");
  await adm.click("#policies tr[data-version='370100-2028.1'] button:has-text('Submit')");
  await adm.waitForFunction(() => document.querySelector("#policies tr[data-version='370100-2028.1']").textContent.includes("submitted"));
  // Today's WeChat Pay bill against the orders: the one-code payment above
  // is in both, so nothing differs; the chart compares the two sides.
  await adm.selectOption("#rc-channel", "wechat");
  await adm.click("#reconcile");
  await adm.waitForSelector("#rc-summary[data-differences]");
  assert.match(await adm.textContent("#rc-summary"), /wechat \d{4}-\d{2}-\d{2}: all [1-9]\d* rows match/);
  assert.ok((await adm.$$("#chart-recon rect")).length === 4, "reconciliation chart has four bars");
  // Smart review: the demo's person seen at three hospitals today is in
  // the review queue; the bureau confirms the alert.
  await adm.waitForSelector("#alerts tr[data-kind=multi_institution][data-status=open] button");
  await adm.click("#alerts tr[data-kind=multi_institution][data-status=open] button");
  await adm.waitForSelector("#alerts tr[data-kind=multi_institution][data-status=confirmed]");
  assert.match(await adm.textContent("#rule-stats"), /rules in force/);
  // The region adopts age restrictions: from a warning to self-pay.
  assert.equal(await adm.inputValue("#act-age"), "warn");
  await adm.selectOption("#act-age", "self_pay");
  await adm.waitForSelector("#review-actions tr[data-kind=age][data-saved=self_pay]");
  // A recovery for it, proposed here and approved by the second
  // administrator below (dual control).
  await adm.waitForFunction(() => document.getElementById("rc-alert").options.length > 0);
  await adm.fill("#rc-inst", "H37010000001");
  await adm.fill("#rc-amount", "88.00");
  await adm.fill("#rc-reason", "三家医院同日结算 settled at three hospitals the same day");
  await adm.click("#rc-propose");
  await adm.waitForSelector("#recoveries tr[data-status=proposed]");
  assert.ok((await adm.$$("#chart-review rect")).length === 6, "six months in the findings chart");

  // The audit log: the counter bill's entry is proven in the browser
  // against the log's published key.
  await adm.selectOption("#audit-kind", "settlement");
  await adm.click("#audit-load");
  await adm.waitForSelector("#audit tbody tr td button");
  await adm.click("#audit tbody tr td button");
  await adm.waitForSelector("#audit td[data-verified]");
  assert.equal(await adm.getAttribute("#audit td[data-verified]", "data-verified"), "true", await adm.textContent("#audit td[data-verified]"));
  await adm.screenshot({ path: join(root, "web", "test-results", "admin.png"), fullPage: true });
  await adm.click("#logout");
  await adm.fill("#u", "auditor");
  await adm.fill("#p", "auditor123");
  await adm.press("#p", "Enter");
  await adm.waitForSelector("#policies tr[data-version='370100-2028.1']");
  await adm.click("#recoveries tr[data-status=proposed] button:has-text('Approve')");
  await adm.waitForSelector("#recoveries tr[data-status=approved]");
  await adm.click("#policies tr[data-version='370100-2028.1'] button:has-text('Approve')");
  await adm.waitForFunction(() => document.querySelector("#policies tr[data-version='370100-2028.1']").textContent.includes("published"));
  const unlabelledAdmin = await adm.evaluate(() => [...document.querySelectorAll("input, textarea, select")]
    .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id));
  assert.deepEqual(unlabelledAdmin, []);
  assert.deepEqual(errors, []);
  console.log("ok  /app + /cashier + /admin: activated in Chromium, wallet agreement signed, code scanned at the counter, one-code payment charged the wallet, replay refused, refresh works, a mobile bill paid from the phone; a policy drafted, replayed, submitted and approved by a second administrator");
} catch (e) {
  failed = true;
  console.error("FAIL /app:", e);
} finally {
  await browser.close();
  server.kill("SIGINT");
}
process.exit(failed ? 1 : 0);
