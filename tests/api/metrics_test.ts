/** GOST's Prometheus metrics: counters move by what curl moved; a real Prometheus scrapes them. */
import assert from "node:assert/strict";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime/runtime.ts";
import { GostMetrics } from "../../src/metrics/gost.ts";
import { serveMetrics } from "../../src/api/metrics_server.ts";
import { curl, startOrigin } from "../proxy/_server.ts";
import { echoServer, hasCommand, portForChild, withTimeout } from "../_helpers.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { BurrowChild } from "../_burrow.ts";

/** The samples of `name` in an exposition, as label-text → value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (m) out.set(m[1] ?? "", Number(m[2]));
  }
  return out;
}

function one(text: string, name: string, has: string): number {
  const hits = [...samples(text, name)].filter(([labels]) => labels.includes(has));
  assert.equal(hits.length, 1, `${name} with ${has}: ${JSON.stringify(hits)}`);
  return hits[0]![1];
}

Deno.test("metrics: requests, bytes, durations and chain errors move by what curl moved", async () => {
  if (!hasCommand("curl")) return console.log("skipped: curl is not installed");
  const origin = startOrigin();
  const live: { rt?: Runtime } = {};
  const metrics = new GostMetrics(() => live.rt?.services ?? []);
  // A direct http proxy, and one whose chain points at a closed port (a chain error per request).
  const cfg = cliConfig(["http://127.0.0.1:0"], []);
  const chained = cliConfig(["http://127.0.0.1:0"], ["socks5://127.0.0.1:1"]);
  chained.services![0]!.name = "chained";
  cfg.services!.push(chained.services![0]!);
  cfg.chains = chained.chains;
  const rt = live.rt = await Runtime.start(cfg, { observer: metrics });
  const endpoint = await serveMetrics(
    { addr: "127.0.0.1:0", auth: { username: "prom", password: "s3cret" } },
    metrics,
  );
  try {
    const url = `http://127.0.0.1:${endpoint.port}/metrics`;
    const proxy = `http://127.0.0.1:${rt.services[0]!.listener.addr.port}`;
    const n = 300_000;
    for (let i = 0; i < 2; i++) {
      const r = await curl(["-x", proxy, `http://127.0.0.1:${origin.port}/bytes?n=${n}`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, n);
    }
    const bad = await curl([
      "-s",
      "-o",
      "/dev/null",
      "-x",
      `http://127.0.0.1:${rt.services[1]!.listener.addr.port}`,
      `http://127.0.0.1:${origin.port}/bytes?n=1`,
    ]);
    assert.equal(bad.code, 0);

    assert.equal((await fetch(url)).status, 401, "auth is required");
    const res = await fetch(url, { headers: { authorization: "Basic " + btoa("prom:s3cret") } });
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const svc = 'service="service-0"';
    assert.equal(one(text, "gost_services", "host="), 2);
    assert.equal(one(text, "gost_service_requests_total", svc), 2);
    assert.equal(one(text, "gost_service_requests_in_flight", svc), 0);
    const out = one(text, "gost_service_transfer_output_bytes_total", svc);
    assert.ok(out >= 2 * n && out < 2 * n + 4096, `output bytes ${out} ≈ 2 × ${n} + headers`);
    const inp = one(text, "gost_service_transfer_input_bytes_total", svc);
    assert.ok(inp > 100 && inp < 2048, `input bytes ${inp}: two requests`);
    assert.match(one(text, "gost_service_requests_total", svc).toString(), /^2$/);
    assert.equal(one(text, "gost_service_request_duration_seconds_count", svc), 2);
    assert.equal(one(text, "gost_chain_errors_total", 'chain="chain-0"'), 1);
    assert.match(text, /client="127\.0\.0\.1"/);
    assert.match(text, /process_resident_memory_bytes/);
    if (hasCommand("promtool")) {
      // Prometheus's own linter reads the exposition (format errors fail; lint hints do not).
      const p = new Deno.Command("promtool", {
        args: ["check", "metrics"],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const w = p.stdin.getWriter();
      await w.write(new TextEncoder().encode(text));
      await w.close();
      const o = await p.output();
      const msg = new TextDecoder().decode(o.stderr) + new TextDecoder().decode(o.stdout);
      assert.doesNotMatch(msg, /error while linting|text format parsing error/, msg);
    }
  } finally {
    await endpoint.close();
    await rt.close();
    await origin.close();
  }
});

Deno.test("metrics: burrow_mux_* count the sessions and streams of an mtcp hop", async () => {
  const echo = echoServer();
  const metrics = new GostMetrics(() => []);
  const server = await Runtime.start(cliConfig(["relay+mtcp://127.0.0.1:0"], []));
  const port = server.services[0]!.listener.addr.port;
  const client = await Runtime.start(
    cliConfig([`tcp://127.0.0.1:0/127.0.0.1:${echo.port}`], [`relay+mtcp://127.0.0.1:${port}`]),
  );
  try {
    const value = async (name: string, role: string) =>
      one(await metrics.text(), name, `role="${role}"`);
    const base = await value("burrow_mux_sessions", "server");
    const c = await dialTcp("127.0.0.1", client.services[0]!.listener.addr.port);
    await c.write(new TextEncoder().encode("x"));
    await withTimeout(c.read(new Uint8Array(1)), 5000, "echo");
    assert.equal(await value("burrow_mux_sessions", "server"), base + 1);
    assert.equal(await value("burrow_mux_sessions", "client"), base + 1);
    assert.ok(await value("burrow_mux_streams", "client") >= 1);
    c.close();
  } finally {
    await client.close();
    await server.close();
    await echo.close();
  }
});

Deno.test("metrics: a real Prometheus server scrapes burrow and answers queries with our series", async () => {
  if (!hasCommand("prometheus") || !hasCommand("curl")) {
    return console.log("skipped: prometheus (Debian package prometheus) or curl is not installed");
  }
  const origin = startOrigin();
  const dir = await Deno.makeTempDir();
  const burrow = new BurrowChild(["-L", "http://127.0.0.1:0", "-metrics", "127.0.0.1:0"]);
  let prom: Deno.ChildProcess | undefined;
  try {
    const metricsPort = await burrow.endpointPort("metrics");
    const proxyPort = await burrow.servicePort("service-0");
    const r = await curl([
      "-x",
      `http://127.0.0.1:${proxyPort}`,
      `http://127.0.0.1:${origin.port}/bytes?n=123456`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    await Deno.writeTextFile(
      `${dir}/prometheus.yml`,
      `global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n- job_name: burrow\n  static_configs: [{targets: ["127.0.0.1:${metricsPort}"]}]\n`,
    );
    // Prometheus takes its web port from the command line: the one child-process port here.
    const webPort = portForChild();
    prom = new Deno.Command("prometheus", {
      args: [
        `--config.file=${dir}/prometheus.yml`,
        `--storage.tsdb.path=${dir}/data`,
        `--web.listen-address=127.0.0.1:${webPort}`,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const query = async (q: string) => {
      const res = await fetch(
        `http://127.0.0.1:${webPort}/api/v1/query?query=${encodeURIComponent(q)}`,
      ).catch(() => undefined);
      if (!res?.ok) {
        await res?.body?.cancel();
        return [];
      }
      const j = await res.json();
      return j.data.result as { metric: Record<string, string>; value: [number, string] }[];
    };
    let result: Awaited<ReturnType<typeof query>> = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      result = await query('gost_service_transfer_output_bytes_total{job="burrow"}');
      if (result.length > 0) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(result.length, 1, "prometheus has our series");
    assert.equal(result[0]!.metric.service, "service-0");
    assert.equal(result[0]!.metric.client, "127.0.0.1");
    assert.ok(Number(result[0]!.value[1]) >= 123456);
    const up = await query('up{job="burrow"}');
    assert.equal(up[0]?.value[1], "1", "the scrape target is up");
    const services = await query("gost_services");
    assert.equal(services[0]?.value[1], "1");
  } finally {
    prom?.kill("SIGTERM");
    await prom?.status;
    await burrow.stop();
    await origin.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runtime metrics (and their native event-loop histogram) start with an endpoint or the first scrape, not before", async () => {
  const m = new GostMetrics(() => []);
  assert.equal(m.registry.getSingleMetric("nodejs_eventloop_lag_seconds"), undefined);
  assert.equal(m.registry.getSingleMetric("process_cpu_seconds_total"), undefined);
  const text = await m.text();
  assert.ok(m.registry.getSingleMetric("nodejs_eventloop_lag_seconds"), "started by the scrape");
  assert.match(text, /^process_cpu_seconds_total/m);
  m.startRuntimeMetrics(); // idempotent: prom-client refuses a metric registered twice
});
