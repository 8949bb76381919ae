// contrast.mjs: the contrast check every browser suite runs in its pages.
// contrastProblems runs in the page (page.evaluate), limited to the part
// under root: every visible element with text of its own, every button,
// input and select, whose text is under 4.5:1 against what is behind it
// (WCAG 2.x relative luminance; opacity and translucent colours blended).
// SVG charts, checkboxes and videos are left out. It returns
// ["tag#id.class: ratio", …]; an empty list passes.
export function contrastProblems(root = "body") {
  const parse = (c) => {
    const m = c.match(/rgba?\(([\d.]+),? ([\d.]+),? ([\d.]+)(?:,? \/? ?([\d.]+))?\)/);
    if (!m) throw new Error("colour " + c);
    return [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])];
  };
  const over = (top, under) => [0, 1, 2].map((i) => top[i] * top[3] + under[i] * (1 - top[3])).concat(1);
  const lum = (c) => {
    const [r, g, b] = c.slice(0, 3).map((v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
  function background(el) {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c[3] > 0) layers.push(c);
      if (c[3] === 1) break;
    }
    let bg = [255, 255, 255, 1];
    for (const l of layers.reverse()) bg = over(l, bg);
    return bg;
  }
  function opacity(el) { let o = 1; for (let e = el; e; e = e.parentElement) o *= Number(getComputedStyle(e).opacity); return o; }
  const top = document.querySelector(root);
  const els = new Set([top]);
  for (const el of top.querySelectorAll("*")) {
    if (["SCRIPT", "STYLE", "OPTION"].includes(el.tagName) || el.closest("svg")) continue;
    if (["BUTTON", "INPUT", "SELECT"].includes(el.tagName) ||
        [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) els.add(el);
  }
  const problems = [];
  const check = (el, fg, what) => {
    const bg = background(el);
    const f = over([fg[0], fg[1], fg[2], fg[3] * opacity(el)], bg);
    const r = ratio(f, bg);
    if (r < 4.5) problems.push(`${what}: ${r.toFixed(2)}`);
  };
  for (const el of els) {
    if (el !== top && !el.checkVisibility()) continue;
    if (el.type === "checkbox" || el.tagName === "VIDEO") continue;
    const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + (typeof el.className === "string" && el.className ? "." + el.className : "");
    check(el, parse(getComputedStyle(el).color), name);
    if (el.placeholder) check(el, parse(getComputedStyle(el, "::placeholder").color), name + "::placeholder");
  }
  return problems;
}
