// demo.mjs: what every browser suite does first — build the binary, run
// `yibao demo` on a free port in a fresh temporary folder (PostgreSQL
// when YIBAO_TEST_PG is set), and call its API.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const root = new URL("../..", import.meta.url).pathname;

// startDemo resolves with { base, bin, dir, server, api }. api(method,
// path, token, body) answers { status, body } (JSON, or text).
export async function startDemo(name) {
  const dir = mkdtempSync(join(tmpdir(), "yibao-" + name + "-"));
  // Build the binary and run it directly, so that stopping it stops the server.
  const bin = join(dir, "yibao");
  execFileSync("go", ["build", "-o", bin, "./cmd/yibao"], { cwd: root, stdio: "inherit" });
  const args = ["demo", "--addr", "127.0.0.1:0", "--data-dir", join(dir, "demo"), "--log-level", "warn"];
  if (process.env.YIBAO_TEST_PG) args.push("--db", process.env.YIBAO_TEST_PG);
  const server = spawn(bin, args, { cwd: root, stdio: ["ignore", "pipe", "inherit"] });
  const base = await new Promise((resolve, reject) => {
    let out = "";
    const t = setTimeout(() => reject(new Error("demo did not start in 120 s:\n" + out)), 120000);
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/running on (http:\/\/[0-9.:]+)/);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    server.on("exit", (c) => reject(new Error("demo exited " + c + "\n" + out)));
  });
  let seq = 0;
  async function api(method, path, token, body) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    if (method !== "GET") headers["Idempotency-Key"] = name + "-test-" + Date.now() + "-" + seq++;
    const r = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const type = r.headers.get("content-type") || "";
    return { status: r.status, body: type.includes("json") ? await r.json().catch(() => ({})) : await r.text() };
  }
  return { base, bin, dir, server, api };
}
