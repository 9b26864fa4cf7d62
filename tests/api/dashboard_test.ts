/**
 * The dashboard in a real browser: headless Chromium (Debian `chromium`) driven over the DevTools
 * protocol loads the page with the API's auth, sees the running services, and sees the counters
 * change while curl moves data through a service. A screenshot is saved as a test artifact.
 */
import assert from "node:assert/strict";
import { curl, startOrigin } from "../proxy/_server.ts";
import { hasCommand } from "../_helpers.ts";
import { BurrowChild } from "../_burrow.ts";

const ARTIFACTS = new URL("../.artifacts/", import.meta.url).pathname;

/** A DevTools-protocol session over the page's WebSocket. */
class Cdp {
  #id = 0;
  readonly #waiting = new Map<number, (v: { result?: unknown; error?: unknown }) => void>();
  private constructor(readonly ws: WebSocket) {
    ws.onmessage = (e) => {
      const m = JSON.parse(String(e.data));
      if (m.id !== undefined) this.#waiting.get(m.id)?.(m);
    };
  }
  static async open(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise((ok, fail) => {
      ws.onopen = ok;
      ws.onerror = fail;
    });
    return new Cdp(ws);
  }
  async send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = ++this.#id;
    const reply = new Promise<{ result?: unknown; error?: unknown }>((r) =>
      this.#waiting.set(id, r)
    );
    this.ws.send(JSON.stringify({ id, method, params }));
    const m = await reply;
    this.#waiting.delete(id);
    if (m.error) throw new Error(`${method}: ${JSON.stringify(m.error)}`);
    return m.result;
  }
  async eval<T>(expr: string): Promise<T> {
    const r = await this.send("Runtime.evaluate", { expression: expr, returnByValue: true }) as {
      result: { value: T };
    };
    return r.result.value;
  }
  close(): Promise<void> {
    const closed = new Promise<void>((r) => (this.ws.onclose = () => r()));
    this.ws.close();
    return closed;
  }
}

async function waitFor<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string) {
  const t0 = Date.now();
  let v = await get();
  while (!ok(v)) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: still ${JSON.stringify(v)} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
    v = await get();
  }
  return v;
}

Deno.test("dashboard: headless Chromium sees the services and live counters", async () => {
  if (!hasCommand("chromium") || !hasCommand("curl")) {
    return console.log("skipped: chromium (Debian package chromium) or curl is not installed");
  }
  const origin = startOrigin();
  const profile = await Deno.makeTempDir();
  const burrow = new BurrowChild([
    "-L",
    "http://127.0.0.1:0",
    "-L",
    "socks5://127.0.0.1:0",
    "-api",
    "admin:pw@127.0.0.1:0",
  ]);
  let browser: Deno.ChildProcess | undefined;
  let cdp: Cdp | undefined;
  try {
    const apiPort = await burrow.endpointPort("api");
    const proxyPort = await burrow.servicePort("service-0");
    browser = new Deno.Command("chromium", {
      args: [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        "--window-size=1400,700",
        "about:blank",
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    // Chromium writes the port it chose into the profile.
    const portFile = `${profile}/DevToolsActivePort`;
    const devtools = await waitFor(
      () => Deno.readTextFile(portFile).catch(() => ""),
      (t) => t.includes("\n"),
      20_000,
      "DevToolsActivePort",
    );
    const cdpPort = Number(devtools.split("\n")[0]);
    const targets = await (await fetch(`http://127.0.0.1:${cdpPort}/json/list`)).json() as {
      type: string;
      webSocketDebuggerUrl: string;
    }[];
    cdp = await Cdp.open(targets.find((t) => t.type === "page")!.webSocketDebuggerUrl);
    await cdp.send("Network.enable");
    await cdp.send("Network.setExtraHTTPHeaders", {
      headers: { Authorization: "Basic " + btoa("admin:pw") },
    });
    await cdp.send("Page.navigate", { url: `http://127.0.0.1:${apiPort}/` });
    const rows = await waitFor(
      () =>
        cdp!.eval<string[]>(
          `[...document.querySelectorAll("#services tbody tr")].map((r) => r.dataset.service)`,
        ),
      (v) => Array.isArray(v) && v.length === 2,
      15_000,
      "service rows",
    );
    assert.deepEqual(rows, ["service-0", "service-1"]);
    const cell = (c: string) =>
      cdp!.eval<string>(
        `document.querySelector('tr[data-service="service-0"] .${c}')?.textContent ?? ""`,
      );
    assert.equal(await cell("total"), "0");
    // A slow download (≈ 8 s, more than the kernel buffers hold) keeps a connection open while the
    // page polls. (At ≈ 4 s a busy machine once saw the whole body counted at the first poll that
    // showed any: loopback buffers hold several MB.)
    const download = curl([
      "--limit-rate",
      "3M",
      "-x",
      `http://127.0.0.1:${proxyPort}`,
      `http://127.0.0.1:${origin.port}/bytes?n=24000000`,
    ]);
    await waitFor(() => cell("conns"), (v) => v === "1", 10_000, "live connection count");
    const first = await waitFor(() => cell("bytes-out"), (v) => v !== "0 B", 10_000, "bytes out");
    const later = await waitFor(
      () => cell("bytes-out"),
      (v) => v !== first,
      10_000,
      "bytes out moving",
    );
    assert.notEqual(later, first);
    const r = await download;
    assert.equal(r.code, 0, r.stderr);
    await waitFor(() => cell("total"), (v) => v === "1", 10_000, "total connections");
    await waitFor(() => cell("conns"), (v) => v === "0", 10_000, "connection closed");
    const shot = await cdp.send("Page.captureScreenshot", { format: "png" }) as { data: string };
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    const png = Uint8Array.from(atob(shot.data), (c) => c.charCodeAt(0));
    await Deno.writeFile(`${ARTIFACTS}dashboard.png`, png);
    assert.ok(png.length > 1000);
    console.log(`screenshot: ${ARTIFACTS}dashboard.png`);
  } finally {
    await cdp?.close().catch(() => {});
    browser?.kill("SIGTERM");
    await browser?.status;
    await burrow.stop();
    await origin.close();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
});
