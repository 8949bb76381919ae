// Browser test of the console's cross-region card (异地就医) against three
// real province nodes and the national hub (`yibao demo --regions 3`):
// two Shandong (37) patients are settled at the Jiangsu (32) node's first
// hospital over REST, as a HIS does (HMAC-SM3 with the demo institution
// key, an Idempotency-Key per POST) — the first with the demo's long-term
// filing, the fifth with none. Then in Shandong's console: the first
// person's long-term filing is listed; a temporary filing for the fifth
// is refused without an end date (the message shown, the field marked),
// added with one and revoked; the month's positions show what Shandong
// owes 320100, equal to the fen to the fund and account parts of the two
// settlements, one bar pair for 320100 in the chart, and "books agree";
// an earlier month is empty and says so. In Jiangsu's console the same
// amount is receivable from 370100. Labels, contrast and no console
// errors; screenshots of the card go to web/test-results/.
import { chromium } from "playwright-core";
import { mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import { startRegions, root } from "./demo.mjs";
import { contrastProblems } from "./contrast.mjs";

const started = Date.now();
const sm3 = createRequire(import.meta.url)("sm-crypto").sm3;
const { server, dir, nodes, persons } = await startRegions("xregion");
const sd = nodes["37"], js = nodes["32"];

// his calls a node's API as the HIS of an institution does: signed with
// the demo key of the institution (its secret is derived from the key id,
// demo/demo.go: public, demo only), METHOD, URI, timestamp, nonce and
// the hex SM3 of the body (docs/api.md); each POST has its own
// Idempotency-Key.
function his(base, keyID) {
  const secret = createHash("sha256").update("yibao demo api key/" + keyID).digest("hex");
  return async (method, path, body) => {
    const text = body === undefined ? "" : JSON.stringify(body);
    const ts = String(Math.floor(Date.now() / 1000)), nonce = randomBytes(12).toString("hex");
    const headers = { "X-Yibao-Key": keyID, "X-Yibao-Timestamp": ts, "X-Yibao-Nonce": nonce,
      "X-Yibao-Signature": sm3([method, path, ts, nonce, sm3(text)].join("\n"), { key: secret }) };
    if (method !== "GET") { headers["Content-Type"] = "application/json"; headers["Idempotency-Key"] = "xr-his-" + randomBytes(8).toString("hex"); }
    const r = await fetch(base + path, { method, headers, body: method === "GET" ? undefined : text });
    const out = { status: r.status, body: await r.json().catch(() => ({})) };
    assert.ok(r.ok, method + " " + path + ": " + r.status + " " + JSON.stringify(out.body));
    return out.body;
  };
}
const fen = (s) => { const [i, f = ""] = String(s).replace("-", "").split("."); return (String(s).startsWith("-") ? -1 : 1) * (Number(i) * 100 + Number(f.padEnd(2, "0"))); };
const yuan = (f) => (f < 0 ? "-" : "") + Math.floor(Math.abs(f) / 100) + "." + String(Math.abs(f) % 100).padStart(2, "0");
const login = async (node) => (await node.api("POST", "/api/v1/auth/login", null, { username: "admin", password: "admin123" })).body.token;
const month = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 7), today = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"] });
let failed = false;
try {
  const sdAdmin = await login(sd), jsAdmin = await login(js);
  const longTerm = persons["37"].find((p) => p.filing === "long_term").psn_no;
  const unfiled = persons["37"].find((p) => p.filing === "").psn_no;
  assert.deepEqual([longTerm, unfiled], [persons["37"][0].psn_no, persons["37"][4].psn_no], "the demo's order: the first filed long-term, the fifth not");

  // The Jiangsu node's first hospital, its demo key, two catalog items of
  // Jiangsu's catalog (class A and B drugs without a restriction).
  const hospital = (await js.api("GET", "/api/v1/institutions?limit=50", jsAdmin)).body.items.find((i) => i.kind === "hospital");
  assert.equal(hospital.admdvs, "320100");
  const call = his(js.base, "ak_demo_" + hospital.fixmedins_code.toLowerCase());
  const pick = async (cls) => (await call("GET", "/api/v1/catalog?class=" + cls + "&kind=drug&limit=50")).items
    .find((it) => !it.restriction && it.valid_from <= today && (!it.valid_to || it.valid_to >= today));
  const items = [await pick("A"), await pick("B")];
  assert.ok(items[0] && items[1], "two catalog items");

  // Two cross-region bills, settled as a HIS would.
  const settled = [];
  for (const [psn, status] of [[longTerm, "long_term"], [unfiled, "unregistered"]]) {
    const v = await call("POST", "/api/v1/visits", { psn_no: psn, fixmedins_code: hospital.fixmedins_code, visit_type: "general_outpatient", dept_code: "A03" });
    assert.deepEqual([v.insu_admdvs, v.cross_status], ["370100", status], "the visit's insured region and filing status");
    await call("POST", "/api/v1/visits/" + v.mdtrt_id + "/fee-lines", { lines: [
      { feedetl_sn: "1", catalog_code: items[0].code, unit_price: "368.50", quantity: "3" },
      { feedetl_sn: "2", catalog_code: items[1].code, unit_price: "126.40", quantity: "5" }] });
    const st = await call("POST", "/api/v1/visits/" + v.mdtrt_id + "/settle", {});
    assert.deepEqual([st.status, st.insu_admdvs], ["completed", "370100"], JSON.stringify(st).slice(0, 400));
    settled.push(st);
  }
  const owed = settled.reduce((a, s) => a + fen(s.fund_pay_sumamt) + fen(s.acct_pay), 0);
  assert.ok(owed > 0, "the insured region owes something");
  // The hub delivers its decision to the insured node after answering the
  // treating node: wait until Shandong has both (its console shows them).
  for (let i = 0; ; i++) {
    const p = (await sd.api("GET", "/api/v1/xr/positions?clr_month=" + month, sdAdmin)).body;
    if (p.positions.some((x) => x.other === "320100" && x.settlements === 2)) break;
    assert.ok(i < 100, "Shandong never saw both commits: " + JSON.stringify(p));
    await new Promise((r) => setTimeout(r, 100));
  }

  const errors = [];
  const posts = [];
  const open = async (node, who) => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
    page.on("pageerror", (e) => errors.push(who + ": " + e.message));
    page.on("console", (m) => {
      const url = m.location().url || "";
      // The refused filing (422) is the test's own.
      if (m.type() !== "error" || /favicon/.test(url) || (/status of 422/.test(m.text()) && /\/filings$/.test(url))) return;
      errors.push(who + " console: " + m.text() + " " + url);
    });
    page.on("request", (r) => { if (r.method() === "POST" && /filings/.test(r.url())) posts.push([r.url(), r.headers()["idempotency-key"]]); });
    await page.goto(node.base + "/admin/");
    await page.fill("#u", "admin");
    await page.fill("#p", "admin123");
    await page.press("#p", "Enter");
    await page.waitForSelector("#xp-summary[data-month]");
    return page;
  };

  // --- Shandong, the insured node ---
  const page = await open(sd, "shandong");
  assert.equal(await page.inputValue("#xp-month"), month, "the month picker starts at this month (China time)");
  // The first person's long-term filing for the whole of Jiangsu.
  await page.fill("#xf-psn", longTerm);
  await page.press("#xf-psn", "Enter");
  await page.waitForSelector(`#xf-summary[data-psn='${longTerm}']`);
  const lt = await page.$$eval("#xf-list tbody tr[data-id]", (trs) => trs.map((tr) => ({ kind: tr.dataset.kind, status: tr.dataset.status,
    cells: [...tr.cells].map((c) => c.textContent) })));
  assert.equal(lt.length, 1, JSON.stringify(lt));
  assert.deepEqual([lt[0].kind, lt[0].status], ["long_term", "active"]);
  assert.equal(lt[0].cells[1], "异地长期居住 long-term residence");
  assert.match(lt[0].cells[2], /江苏 Jiangsu.*320000/);
  assert.deepEqual(lt[0].cells.slice(3, 5), [month + "-01", "长期 open-ended"]);
  assert.equal(lt[0].cells[6], "有效 active");
  assert.match(await page.textContent("#xf-summary"), /1 项有效备案 active filings/);

  // The fifth has none; a temporary filing for 320100 without an end date
  // is refused with the API's message and the field marked; with one it is
  // filed, then revoked.
  await page.fill("#xf-psn", unfiled);
  await page.click("#xf-find");
  await page.waitForSelector(`#xf-summary[data-psn='${unfiled}'][data-count='0']`);
  assert.match(await page.textContent("#xf-summary"), /no filings/);
  assert.match(await page.textContent("#xf-add-title"), new RegExp(unfiled));
  await page.selectOption("#xf-kind", "temporary");
  await page.fill("#xf-dest", "320100");
  assert.equal(await page.inputValue("#xf-begin"), today);
  await page.fill("#xf-reason", "外出探亲 visiting family");
  await page.click("#xf-add");
  await page.waitForSelector("#xf-status[data-status=refused]");
  assert.match(await page.textContent("#error"), /invalid_argument: end_date: a temporary filing needs an end date/);
  assert.match(await page.textContent("#xf-status"), /a temporary filing needs an end date/);
  assert.equal(await page.getAttribute("#xf-end", "aria-invalid"), "true");
  assert.equal(await page.evaluate(() => document.activeElement.id), "xf-end");
  const end = new Date(Date.now() + 8 * 3600e3 + 30 * 86400e3).toISOString().slice(0, 10);
  await page.fill("#xf-end", end);
  await page.click("#xf-add");
  await page.waitForSelector("#xf-status[data-status=created]");
  assert.equal(await page.textContent("#error"), "");
  const filingID = await page.getAttribute("#xf-status", "data-id");
  await page.waitForSelector(`#xf-list tr[data-id='${filingID}'][data-status=active]`);
  const added = await page.$eval(`#xf-list tr[data-id='${filingID}']`, (tr) => [...tr.cells].slice(1, 7).map((c) => c.textContent));
  assert.deepEqual(added, ["临时外出就医 temporary", "江苏 Jiangsu 320100", today, end, "外出探亲 visiting family", "有效 active"]);
  let listed = (await sd.api("GET", "/api/v1/persons/" + unfiled + "/filings", sdAdmin)).body.items;
  assert.deepEqual(listed.map((f) => [f.filing_id, f.kind, f.dest_admdvs, f.status, f.created_by]), [[filingID, "temporary", "320100", "active", "user:admin"]]);
  page.once("dialog", (d) => d.accept());
  await page.click(`#xf-list tr[data-id='${filingID}'] button`);
  await page.waitForSelector(`#xf-list tr[data-id='${filingID}'][data-status=revoked]`);
  assert.match(await page.textContent(`#xf-list tr[data-id='${filingID}'] td:nth-child(7)`), /^已撤销 revoked（user:admin /);
  assert.equal(await page.$(`#xf-list tr[data-id='${filingID}'] button`), null, "a revoked filing has no revoke button");
  assert.match(await page.textContent("#xf-status"), new RegExp("已撤销备案 filing revoked: " + filingID));
  listed = (await sd.api("GET", "/api/v1/persons/" + unfiled + "/filings", sdAdmin)).body.items;
  assert.deepEqual(listed.map((f) => [f.filing_id, f.status, f.revoked_by]), [[filingID, "revoked", "user:admin"]]);
  assert.equal(posts.length, 3, "refused add, add, revoke: " + JSON.stringify(posts));
  assert.ok(posts.every(([, k]) => k && k.length > 8) && new Set(posts.map(([, k]) => k)).size === 3, "each POST has its own Idempotency-Key");

  // This month's positions: Shandong owes 320100 the fund and account
  // parts of both bills, to the fen; one bar pair; the books agree.
  const sdRow = `#xp-rows tr[data-own='370100'][data-other='320100']`;
  await page.waitForSelector(sdRow);
  const sdCells = await page.$eval(sdRow, (tr) => [...tr.cells].map((c) => c.textContent));
  assert.deepEqual(sdCells, ["济南市 370100", "江苏 Jiangsu 320100", "2", "0", "¥0.00", "¥" + yuan(owed), "-¥" + yuan(owed)]);
  assert.equal(await page.$$eval("#xp-rows tbody tr", (trs) => trs.length), 1);
  assert.match(await page.textContent("#xp-summary"), new RegExp("结算 2 笔 settlements .* 应付 payable ¥" + yuan(owed).replace(".", "\\.") + " .*本节点应付 this node pays"));
  const chart = async (p) => p.$eval("#chart-xr", (svg) => ({ regions: svg.dataset.regions, bars: svg.querySelectorAll("rect.bar").length,
    bars2: svg.querySelectorAll("rect.bar2").length, titles: [...svg.querySelectorAll("rect title")].map((t) => t.textContent),
    widths: [...svg.querySelectorAll("rect")].map((r) => Number(r.getAttribute("width"))) }));
  const sdChart = await chart(page);
  assert.deepEqual([sdChart.regions, sdChart.bars, sdChart.bars2], ["320100", 1, 1]);
  assert.deepEqual(sdChart.titles, ["江苏 Jiangsu 320100 应收 receivable: ¥0.00", "江苏 Jiangsu 320100 应付 payable: ¥" + yuan(owed)]);
  assert.ok(sdChart.widths[0] === 0 && sdChart.widths[1] > 100, "an empty receivable bar and a full payable one: " + sdChart.widths);
  assert.equal(await page.getAttribute("#xp-check", "data-status"), "agree");
  assert.match(await page.textContent("#xp-check"), /^账实相符 books agree/);
  assert.equal(await page.isHidden("#xp-problems"), true);
  mkdirSync(join(root, "web", "test-results"), { recursive: true });
  await page.locator("#xregion").screenshot({ path: join(root, "web", "test-results", "xregion-shandong.png") });

  // An earlier month is empty, and says so.
  await page.fill("#xp-month", "2025-01");
  await page.dispatchEvent("#xp-month", "change");
  await page.waitForSelector("#xp-summary[data-month='2025-01']");
  assert.equal(await page.getAttribute("#xp-summary", "data-count"), "0");
  assert.match(await page.textContent("#xp-summary"), /本月没有异地结算.*no cross-region settlements or reversals in 2025-01/);
  assert.deepEqual(await page.$$eval("#xp-rows tbody tr", (trs) => trs.map((tr) => tr.textContent)), ["无 None"]);
  assert.deepEqual(await chart(page).then((c) => [c.regions, c.bars, c.bars2]), ["", 0, 0]);
  assert.match(await page.textContent("#chart-xr"), /nothing this month/);
  assert.equal(await page.getAttribute("#xp-check", "data-status"), "agree");
  await page.fill("#xp-month", month);
  await page.click("#xp-refresh");
  await page.waitForFunction(([m, sel]) => document.getElementById("xp-summary").dataset.month === m && document.querySelector(sel), [month, sdRow]);

  // --- Jiangsu, the treating node: the same amount receivable from 370100 ---
  const jsPage = await open(js, "jiangsu");
  const jsRow = `#xp-rows tr[data-own='320100'][data-other='370100']`;
  await jsPage.waitForSelector(jsRow);
  const jsCells = await jsPage.$eval(jsRow, (tr) => [...tr.cells].map((c) => c.textContent));
  assert.deepEqual(jsCells, ["南京市 320100", "山东 Shandong 济南市 370100", "2", "0", "¥" + yuan(owed), "¥0.00", "¥" + yuan(owed)]);
  const jsChart = await chart(jsPage);
  assert.deepEqual([jsChart.regions, jsChart.bars, jsChart.bars2], ["370100", 1, 1]);
  assert.equal(jsChart.titles[0], "山东 Shandong 济南市 370100 应收 receivable: ¥" + yuan(owed));
  assert.match(await jsPage.textContent("#xp-summary"), /本节点应收 this node receives/);
  assert.equal(await jsPage.getAttribute("#xp-check", "data-status"), "agree");
  await jsPage.locator("#xregion").screenshot({ path: join(root, "web", "test-results", "xregion-jiangsu.png") });

  // Every control labelled; the card's text at 4.5:1 at least.
  for (const p of [page, jsPage]) {
    const unlabelled = await p.evaluate(() => [...document.querySelectorAll("input, select, textarea, progress")]
      .filter((el) => !el.labels || el.labels.length === 0).map((el) => el.id || el.outerHTML));
    assert.deepEqual(unlabelled, []);
    assert.deepEqual(await p.evaluate(contrastProblems, "#xregion"), []);
  }
  assert.deepEqual(errors, []);
  console.log("ok  /admin cross-region (3 nodes + hub): 2 bills of 山东 patients settled at " + hospital.fixmedins_code + " over signed REST; " +
    "long-term filing of " + longTerm + " listed, a temporary filing for " + unfiled + " refused without an end date, added and revoked; " +
    month + ": 山东 owes 320100 ¥" + yuan(owed) + " (= fund + account parts), 江苏 receives the same from 370100, one bar pair each, books agree; " +
    "an empty month says so; labels and contrast checked; " + ((Date.now() - started) / 1000).toFixed(1) + " s");
} catch (e) {
  failed = true;
  console.error("FAIL /admin cross-region:", e);
} finally {
  await browser.close();
  // Stop the nodes and the hub, then remove their data.
  await new Promise((resolve) => { server.once("exit", resolve); server.kill("SIGINT"); setTimeout(resolve, 5000); });
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
