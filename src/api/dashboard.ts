/**
 * The dashboard: one self-contained page (no build step, no CDN, works offline) that polls
 * `<prefix>/dashboard/data` every second and draws services, chains, live connection counts,
 * a throughput chart per service and recent errors.
 * @module
 */

/** The page; `__PREFIX__` is replaced by the API's path prefix. */
export const DASHBOARD_HTML: string = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Burrow</title>
<style>
  :root { color-scheme: light dark; --fg: #1d232a; --muted: #6b7580; --line: #d8dde3; --bg: #f7f8fa;
    --card: #fff; --in: #2f7fd8; --out: #e0762d; --bad: #c9352b; --ok: #2c9a55; }
  @media (prefers-color-scheme: dark) { :root { --fg: #e6e9ec; --muted: #98a2ad; --line: #323a43;
    --bg: #15191d; --card: #1d2329; } }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
  header { display: flex; align-items: baseline; gap: 1rem; padding: .8rem 1.2rem;
    border-bottom: 1px solid var(--line); }
  header h1 { margin: 0; font-size: 1.2rem; }
  #status { color: var(--muted); }
  main { padding: 1rem 1.2rem; display: grid; gap: 1rem; }
  section { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: .8rem 1rem; }
  h2 { margin: 0 0 .6rem; font-size: 1rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid var(--line);
    white-space: nowrap; }
  th { color: var(--muted); font-weight: 500; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; }
  .state-ready { color: var(--ok); } .state-closed { color: var(--bad); }
  canvas { width: 220px; height: 40px; display: block; }
  .legend span { margin-right: 1rem; } .in { color: var(--in); } .out { color: var(--out); }
  #errors li { font-family: ui-monospace, monospace; font-size: 12px; margin: .2rem 0; }
  #errors .error { color: var(--bad); }
  .muted { color: var(--muted); }
</style>
</head>
<body>
<header><h1>Burrow</h1><span id="status">connecting…</span></header>
<main>
  <section>
    <h2>Services</h2>
    <div class="legend muted"><span class="in">■ in (from clients)</span><span class="out">■ out (to clients)</span></div>
    <table id="services"><thead><tr><th>name</th><th>address</th><th>listener</th><th>handler</th>
      <th>chain</th><th>state</th><th class="num">conns</th><th class="num">total</th>
      <th class="num">errors</th><th class="num">in</th><th class="num">out</th><th class="num">rate</th>
      <th>throughput (last 2 min)</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Chains</h2><div id="chains" class="muted">none</div></section>
  <section><h2>Recent warnings and errors</h2><ul id="errors"><li class="muted">none</li></ul></section>
</main>
<script>
"use strict";
const PREFIX = "__PREFIX__";
const POINTS = 120;
const history = new Map(); // service -> { last: {t, in, out}, inRates: [], outRates: [] }
const fmtBytes = (n) => {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + u[i];
};
const el = (tag, text, cls) => { const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };

function draw(canvas, h) {
  const dpr = window.devicePixelRatio || 1, w = 220, ht = 40;
  canvas.width = w * dpr; canvas.height = ht * dpr;
  const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, w, ht);
  const max = Math.max(1, ...h.inRates, ...h.outRates);
  const css = getComputedStyle(document.documentElement);
  for (const [rates, color] of [[h.inRates, css.getPropertyValue("--in")], [h.outRates, css.getPropertyValue("--out")]]) {
    g.beginPath(); g.strokeStyle = color; g.lineWidth = 1.5;
    rates.forEach((r, i) => { const x = w - (rates.length - 1 - i) * (w / (POINTS - 1));
      const y = ht - 2 - (r / max) * (ht - 4); i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
  }
}

function render(data) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren();
  for (const s of data.services) {
    let h = history.get(s.name);
    if (!h) { h = { last: null, inRates: [], outRates: [] }; history.set(s.name, h); }
    let rate = 0;
    if (s.stats) {
      if (h.last && s.stats.inputBytes >= h.last.in && s.stats.outputBytes >= h.last.out) {
        const dt = Math.max(0.001, (data.time - h.last.t) / 1000);
        const ri = (s.stats.inputBytes - h.last.in) / dt, ro = (s.stats.outputBytes - h.last.out) / dt;
        h.inRates.push(ri); h.outRates.push(ro); rate = ri + ro;
        if (h.inRates.length > POINTS) { h.inRates.shift(); h.outRates.shift(); }
      }
      h.last = { t: data.time, in: s.stats.inputBytes, out: s.stats.outputBytes };
    }
    const tr = el("tr"); tr.dataset.service = s.name;
    const st = s.stats || {};
    tr.append(el("td", s.name), el("td", s.addr), el("td", s.listener), el("td", s.handler),
      el("td", s.chain || "—"), el("td", s.state, "state-" + s.state),
      el("td", String(st.currentConns ?? 0), "num conns"), el("td", String(st.totalConns ?? 0), "num total"),
      el("td", String(st.totalErrs ?? 0), "num"), el("td", fmtBytes(st.inputBytes ?? 0), "num bytes-in"),
      el("td", fmtBytes(st.outputBytes ?? 0), "num bytes-out"), el("td", fmtBytes(Math.round(rate)) + "/s", "num"));
    const td = el("td"); const c = el("canvas"); td.append(c); tr.append(td); body.append(tr);
    draw(c, h);
  }
  const chains = document.getElementById("chains");
  if (data.chains.length) {
    chains.replaceChildren(...data.chains.map((c) => el("div",
      c.name + ": " + c.hops.map((h) => h.name + " [" + h.nodes.join(", ") + "]").join(" → "))));
    chains.className = "";
  }
  const errs = document.getElementById("errors");
  if (data.errors.length) {
    errs.replaceChildren(...data.errors.slice().reverse().map((e) =>
      el("li", e.time + " " + (e.service ? "[" + e.service + "] " : "") + e.msg, e.level)));
  }
  document.getElementById("status").textContent =
    data.services.length + " services · updated " + new Date(data.time).toLocaleTimeString();
}

async function tick() {
  try {
    const r = await fetch(PREFIX + "/dashboard/data", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
  } catch (e) {
    document.getElementById("status").textContent = "offline: " + e.message;
  }
}
tick();
setInterval(tick, 1000);
</script>
</body>
</html>
`;
