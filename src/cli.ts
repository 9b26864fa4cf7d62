/**
 * The command-line program behind `main.ts`: flags → config → runtime, signals → clean exit.
 * @module
 */
import {
  asUsage,
  type CliArgs,
  parseApiFlag,
  parseArgs,
  parseMetricsFlag,
  UsageError,
} from "./config/cli.ts";
import { cliConfig } from "./builtins.ts";
import { ACCESS_LISTS, checkReferences, type Config, mergeConfigs } from "./config/model.ts";
import { ConfigError, errorText } from "./core/errors.ts";
import { consoleDiagnostics } from "./config/keys.ts";
import { type Level, Logger, RecentLog, sinkFor } from "./core/log.ts";
import { parseDuration } from "./core/duration.ts";
import { Runtime } from "./runtime/runtime.ts";
import type { ApiServer } from "./api/server.ts";
import type { HttpEndpoint } from "./api/http.ts";
import { MetricsObserver } from "./metrics/observer.ts";
import { nodeMtcpArgs, parseNodeMtcp } from "./config/node_mtcp.ts";
import { VERSION } from "./version.ts";
import { startMemoryReducer } from "./core/memory_reducer.ts";

const mib = (n: number) => (n / 1048576).toFixed(1);

const USAGE = `Usage: burrow [-L service]... [-F node]... [-C config]... [-api addr] [-metrics addr]
              [-R interval] [-D] [-O yaml|json] [-V]
       burrow mtcp-server|mtcp-local [config.json]   (the node mtcp module's config)
  -L  service, e.g. -L :8080 (auto proxy), -L socks5://u:p@:1080, -L tcp://:2222/host:22
  -F  chain node (each -F is one hop), e.g. -F socks5://host:1080, -F forward+mtcp://srv:8443
  -C  config file (YAML or JSON; several allowed, merged), "-" for stdin
  -api      web API and dashboard, [user:pass@]host:port?pathPrefix=/x&accesslog=true
  -metrics  Prometheus endpoint, [user:pass@]host:port?path=/metrics
  -R  re-read the -C files this often (e.g. 30s); SIGHUP reloads at any time
  -D  debug logging (-DD: trace)
  -O  print the normalised config as yaml or json and exit
  -V  print the version and exit
  --strict  unknown keys are errors, not warnings (also: strict: true in the config)`;

/** How long live conns get to finish after SIGINT/SIGTERM. */
const GRACE_MS = 3000;

function levelOf(cfg: Config, debug: boolean, trace: boolean): Level {
  if (trace) return "trace";
  if (debug) return "debug";
  const l = cfg.log?.level ?? Deno.env.get("GOST_LOGGER_LEVEL") ?? "info";
  return (l === "warning" ? "warn" : l) as Level;
}

/** Splits argv on `--` into independent groups. */
function splitGroups(argv: string[]): string[][] {
  const out: string[][] = [[]];
  for (const a of argv) {
    if (a === "--") out.push([]);
    else out[out.length - 1]!.push(a);
  }
  return out.filter((g, i) => i === 0 || g.length > 0);
}

/** The config of group `g`: services numbered after `offset`, its chain named `chain-g`. */
function groupConfig(a: CliArgs, g: number, offset: number): Config {
  const cfg = cliConfig(a.services, a.nodes);
  const chain = `chain-${g}`;
  for (const c of cfg.chains ?? []) c.name = chain;
  // Objects from special keys (admission-0, bypass-0, ...) get the group in their name.
  const rename = (n?: string) => n?.replace(/-(\d+)$/, `-${g}-$1`);
  for (const k of ACCESS_LISTS) for (const o of cfg[k] ?? []) o.name = rename(o.name)!;
  const fix = (o: { bypass?: string; resolver?: string; hosts?: string }) => {
    o.bypass = rename(o.bypass);
    o.resolver = rename(o.resolver);
    o.hosts = rename(o.hosts);
    for (const k of ["bypass", "resolver", "hosts"] as const) if (o[k] === undefined) delete o[k];
  };
  for (const c of cfg.chains ?? []) for (const h of c.hops) fix(h);
  for (const [i, s] of (cfg.services ?? []).entries()) {
    s.name = `service-${offset + i}`;
    if (s.handler.chain) s.handler.chain = chain;
    if (s.listener.chain) s.listener.chain = chain;
    fix(s);
    for (const k of ["admission", "limiter", "climiter", "rlimiter"] as const) {
      if (s[k] !== undefined) s[k] = rename(s[k]);
    }
  }
  return cfg;
}

/** Reads every config source the flags name into one config (start-up and each reload). */
async function loadSources(
  args: CliArgs,
  extra: CliArgs[],
  stdin: Map<string, Config>,
): Promise<Config> {
  const files: Config[] = [];
  const load = { diagnostics: consoleDiagnostics(args.strict) };
  // Config files (and the YAML parser) are imported only when -C names one.
  const source = async (c: string) => {
    const { loadConfigSource } = await import("./config/file.ts");
    // stdin can be read once: a reload reuses what it said.
    if (c.trim() === "-") {
      if (!stdin.has(c)) stdin.set(c, await loadConfigSource(c, load));
      return stdin.get(c)!;
    }
    return await loadConfigSource(c, load);
  };
  for (const c of args.configs) files.push(await source(c));
  let fromCli: Config;
  try {
    fromCli = cliConfig(args.services, args.nodes);
    for (const [g, a] of extra.entries()) {
      for (const c of a.configs) files.push(await source(c));
      fromCli = mergeConfigs(fromCli, groupConfig(a, g + 1, fromCli.services?.length ?? 0));
    }
  } catch (e) {
    asUsage(e);
  }
  const cfg = mergeConfigs(...files, fromCli);
  // Environment, then flags, override the files (GOST).
  const envApi = Deno.env.get("GOST_API");
  if (envApi) cfg.api = { ...cfg.api, addr: envApi };
  const envMetrics = Deno.env.get("GOST_METRICS");
  if (envMetrics) cfg.metrics = { ...cfg.metrics, addr: envMetrics };
  try {
    if (args.api) cfg.api = parseApiFlag(args.api);
    if (args.metrics) cfg.metrics = parseMetricsFlag(args.metrics);
  } catch (e) {
    asUsage(e);
  }
  checkReferences(cfg);
  return cfg;
}

/** The API and metrics endpoints of a running process (restarted when their config changes). */
class Endpoints {
  #api?: ApiServer;
  #metrics?: HttpEndpoint;
  #apiCfg = "";
  #metricsCfg = "";

  constructor(
    readonly rt: Runtime,
    readonly metrics: MetricsObserver,
    readonly log: Logger,
    readonly recent: RecentLog,
    readonly reload: () => Promise<void>,
    readonly configFile?: string,
  ) {}

  /** Starts, restarts or stops the endpoints to match `cfg`. */
  /**
   * Starts, restarts or stops the endpoints to match `cfg`. One that fails to start is retried by
   * the next sync; the error names it.
   */
  async sync(cfg: Config): Promise<void> {
    const apiCfg = JSON.stringify(cfg.api ?? null);
    if (apiCfg !== this.#apiCfg) {
      await this.#api?.close();
      this.#api = undefined;
      this.#apiCfg = "";
      if (cfg.api) {
        // The API (with its dashboard and YAML) is imported when one is configured.
        const { ApiServer } = await import("./api/server.ts");
        this.#api = await ApiServer.start({
          runtime: this.rt,
          config: cfg.api,
          log: this.log,
          reload: this.reload,
          configFile: this.configFile,
          graceMs: GRACE_MS,
          recent: this.recent,
        });
      }
      this.#apiCfg = apiCfg;
    }
    const metricsCfg = JSON.stringify(cfg.metrics ?? null);
    if (metricsCfg !== this.#metricsCfg) {
      await this.#metrics?.close();
      this.#metrics = undefined;
      this.#metricsCfg = "";
      if (cfg.metrics) {
        const [metrics, { serveMetrics }] = await Promise.all([
          this.metrics.metrics(),
          import("./api/metrics_server.ts"),
        ]);
        metrics.startRuntimeMetrics();
        this.#metrics = await serveMetrics(cfg.metrics, metrics, {
          log: this.log,
          auther: (n) => this.rt.auther(n),
        });
      }
      this.#metricsCfg = metricsCfg;
    }
  }

  async close(): Promise<void> {
    await this.#api?.close();
    await this.#metrics?.close();
  }
}

/** Runs the CLI; resolves the process exit code. */
export async function runCli(argv0: string[]): Promise<number> {
  let argv = argv0;
  // The node mtcp module's commands: `mtcp-local|mtcp-server [config.json]` (docs/bundle.md).
  if (argv[0] === "mtcp-local" || argv[0] === "mtcp-server") {
    const file = argv[1] && !argv[1].startsWith("-") ? argv[1] : "config.json";
    try {
      const c = parseNodeMtcp(await Deno.readTextFile(file), file);
      const rest = argv.slice(argv[1] === file ? 2 : 1);
      argv = [...nodeMtcpArgs(c, argv[0] === "mtcp-local" ? "local" : "server"), ...rest];
    } catch (e) {
      console.error(`burrow: ${errorText(e)}`);
      return 2;
    }
  }
  let cfg: Config;
  let args: CliArgs;
  let extra: CliArgs[];
  const stdin = new Map<string, Config>();
  try {
    // GOST runs each ` -- `-separated group as its own worker with its own chain; here the
    // groups share one process, and group g's chain is named chain-g.
    const groups = splitGroups(argv);
    args = parseArgs(groups[0]!);
    extra = groups.slice(1).map(parseArgs);
    for (const a of extra) {
      args.output ??= a.output;
      args.debug ||= a.debug;
      args.trace ||= a.trace;
      args.strict ||= a.strict;
      args.api ??= a.api;
      args.metrics ??= a.metrics;
      args.reload ??= a.reload;
    }
    if (args.help) {
      console.log(USAGE);
      return 0;
    }
    if (args.version) {
      console.log(
        `burrow ${VERSION} (deno ${Deno.version.deno} ${Deno.build.os}/${Deno.build.arch})`,
      );
      return 0;
    }
    cfg = await loadSources(args, extra, stdin);
  } catch (e) {
    if (e instanceof UsageError || e instanceof ConfigError) {
      console.error(`burrow: ${e.message}`);
      return 2;
    }
    throw e;
  }
  if (args.output) {
    const { formatConfig } = await import("./config/file.ts");
    const out = new TextEncoder().encode(formatConfig(cfg, args.output));
    // A write may take less than it is given (a pipe whose reader is slow).
    for (let o = 0; o < out.length;) o += await Deno.stdout.write(out.subarray(o));
    return 0;
  }
  if (!cfg.services?.length && !cfg.api) {
    console.error(`burrow: no services (give -L or -C)\n${USAGE}`);
    return 2;
  }
  let log: Logger;
  const recent = new RecentLog();
  try {
    log = new Logger(
      levelOf(cfg, args.debug, args.trace),
      {},
      recent.tee(sinkFor(cfg.log?.output, cfg.log?.format)),
    );
  } catch (e) {
    console.error(`burrow: log.output: ${errorText(e)}`);
    return 1;
  }
  const diagnostics = {
    strict: args.strict || cfg.strict === true,
    warn: (p: string, m: string) => log.warn(`${p}: ${m}`, { kind: "config" }),
  };
  let rt: Runtime | undefined;
  let endpoints: Endpoints | undefined;
  // Metrics are made when an endpoint first wants them (metrics/observer.ts).
  const metrics = new MetricsObserver(() => rt?.services ?? []);
  // Reloads (SIGHUP, -R, the API's POST /config/reload) run one at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(f: () => Promise<T>): Promise<T> => {
    const run = queue.then(f);
    queue = run.catch(() => {});
    return run;
  };
  /**
   * Re-reads the sources and applies them. Throws (nothing changed) when they cannot be read,
   * validated or built. The API's own reload restarts the API only after its answer is sent.
   */
  const reload = async (why: string): Promise<void> => {
    const next = await loadSources(args, extra, stdin);
    const r = await rt!.apply(next, { graceMs: GRACE_MS });
    const was = cfg.log ?? {};
    const now = next.log ?? {};
    cfg = next;
    if (was.output !== now.output || was.format !== now.format) {
      log.warn("log.output and log.format take effect when burrow restarts", { kind: "config" });
    }
    const wanted = levelOf(next, args.debug, args.trace);
    if (wanted !== log.level) {
      log.info(`log level: ${log.level} → ${wanted}`, { kind: "config" });
      log.setLevel(wanted);
    }
    const parts = [
      ...r.added.map((x) => `+${x}`),
      ...r.replaced.map((x) => `~${x}`),
      ...r.removed.map((x) => `-${x}`),
    ];
    // A periodic reload that found nothing new is not news.
    const level = parts.length === 0 && why === "auto reload" ? "debug" : "info";
    log.log(level, `${why}: config reloaded (${parts.join(" ") || "no change"})`, {
      kind: "config",
    });
    const sync = () =>
      endpoints!.sync(next).catch((e) =>
        log.error(`${why}: config applied, but an endpoint failed: ${errorText(e)}`, {
          kind: "config",
        })
      );
    if (why === "api") void serial(sync);
    else await sync();
  };
  try {
    rt = await Runtime.start(cfg, { log, diagnostics, observer: metrics });
    endpoints = new Endpoints(
      rt,
      metrics,
      log,
      recent,
      () => serial(() => reload("api")),
      args.configs.at(-1) !== "-" ? args.configs.at(-1) : undefined,
    );
    await endpoints.sync(cfg);
  } catch (e) {
    console.error(`burrow: ${errorText(e)}`);
    await endpoints?.close();
    await rt?.close();
    // A configuration mistake is a usage error (2); a runtime failure such as a busy port is 1.
    return e instanceof ConfigError ? 2 : 1;
  }
  // A broken config keeps the running one and says why.
  const scheduleReload = (why: string) =>
    void serial(() => reload(why)).catch((e) =>
      log.error(`${why}: reload failed, keeping the running config: ${errorText(e)}`, {
        kind: "config",
      })
    );
  const stop = Promise.withResolvers<string>();
  const onSig = (name: string) => () => stop.resolve(name);
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGINT", onSig("SIGINT")],
    ["SIGTERM", onSig("SIGTERM")],
  ];
  if (Deno.build.os !== "windows") handlers.push(["SIGHUP", () => scheduleReload("SIGHUP")]);
  for (const [sig, h] of handlers) Deno.addSignalListener(sig, h);
  // Young-generation and freed native memory from a burst go back once the process is quiet
  // (core/memory_reducer).
  const reducer = startMemoryReducer({
    onReduce: (a, b, ms, heap) =>
      log.debug(
        `memory: quiet, young generation ${mib(a)} → ${mib(b)} MiB (${ms.toFixed(0)} ms), heap ${
          mib(heap)
        } MiB, buffers ${mib(Deno.memoryUsage().external)} MiB`,
        {
          kind: "process",
        },
      ),
    // Only when it gave something back: a quiet proxy would log one line per burst otherwise.
    onTrim: (a, b, ms) => {
      if (a - b >= 1 << 20) {
        log.debug(`memory: quiet, allocator gave back ${mib(a - b)} MiB (${ms.toFixed(0)} ms)`, {
          kind: "process",
        });
      }
    },
  });
  const every = args.reload ? parseDuration(args.reload) ?? 0 : 0;
  const timer = every > 0 ? setInterval(() => scheduleReload("auto reload"), every) : undefined;
  const sig = await stop.promise;
  log.info(`${sig}: shutting down`, { kind: "process" });
  clearInterval(timer);
  reducer.stop();
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  await queue;
  await endpoints!.close();
  await rt!.close(GRACE_MS);
  return 0;
}
