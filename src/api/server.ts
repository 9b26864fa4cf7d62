/**
 * GOST's web API (docs/api.md): `GET/POST /config`, `POST /config/reload` and create, read,
 * replace and delete for each named object kind under `/config/<kind>`, with GOST's JSON
 * shapes, error codes, basic auth and CORS; plus Burrow's dashboard page and its data. Every
 * change goes through {@link Runtime.apply}: it is checked whole and applied whole, or refused
 * with the field path and nothing changed.
 * @module
 */
import type { APIConfig, Config, ServiceConfig } from "../config/model.ts";
import { normalizeConfig } from "../config/model.ts";
import { toYaml } from "../config/yaml.ts";
import { ConfigError, errorText } from "../core/errors.ts";
import { type Logger, type RecentLog, silentLogger } from "../core/log.ts";
import { constantTimeEqual } from "../core/secret.ts";
import { formatAddr } from "../core/conn.ts";
import { isIPv4, isIPv6 } from "../core/addr.ts";
import type { Runtime } from "../runtime/runtime.ts";
import { type HttpEndpoint, listen } from "./http.ts";
import { DASHBOARD_HTML } from "./dashboard.ts";

/** The object kinds of `/config/<kind>` and their singular names (GOST's messages). */
export const KINDS: Readonly<Record<string, string>> = {
  services: "service",
  chains: "chain",
  hops: "hop",
  authers: "auther",
  admissions: "admission",
  bypasses: "bypass",
  resolvers: "resolver",
  hosts: "hosts",
  limiters: "limiter",
  climiters: "limiter",
  rlimiters: "limiter",
  ingresses: "ingress",
};

/** GOST's API kinds Burrow does not have: refused by name, never ignored. */
const UNSUPPORTED = ["routers", "observers", "recorders", "sds", "quotas", "caches"];

/** Options for {@link ApiServer.start}. */
export interface ApiOptions {
  runtime: Runtime;
  config: APIConfig;
  log?: Logger;
  /** Re-reads the config sources (`POST /config/reload`); absent: the route answers 400. */
  reload?: () => Promise<void>;
  /** Where `POST /config` saves by default (the `-C` file). */
  configFile?: string;
  /** Grace period for conns of replaced services (ms). */
  graceMs?: number;
  /** Recent warnings and errors, for the dashboard. */
  recent?: RecentLog;
}

class ApiError extends Error {
  constructor(readonly status: number, readonly code: number, msg: string) {
    super(msg);
  }
}

const JSON_TYPE = "application/json; charset=utf-8";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": JSON_TYPE } });
}

const notFound = () =>
  new Response("404 page not found", { status: 404, headers: { "content-type": "text/plain" } });

/** The running API server. */
export class ApiServer {
  readonly #o: ApiOptions;
  readonly #log: Logger;
  readonly #prefix: string;
  #http?: HttpEndpoint;

  private constructor(o: ApiOptions) {
    this.#o = o;
    this.#log = (o.log ?? silentLogger).with({ kind: "api" });
    const p = (o.config.pathPrefix ?? "").replace(/\/+$/, "");
    this.#prefix = p && !p.startsWith("/") ? `/${p}` : p;
  }

  /** Listens on `config.addr` and serves. */
  static async start(o: ApiOptions): Promise<ApiServer> {
    const s = new ApiServer(o);
    s.#http = await listen(o.config.addr, (req, info) => s.#serve(req, info), s.#log);
    if (!s.#hasAuth() && !s.#http.loopback) {
      s.#log.warn(
        `the API on ${o.config.addr} has no auth and is reachable from other hosts: anyone there can change the config`,
      );
    }
    return s;
  }

  /** The bound port. */
  get port(): number {
    return this.#http!.port;
  }

  close(): Promise<void> {
    return this.#http?.close() ?? Promise.resolve();
  }

  #hasAuth(): boolean {
    return (this.#o.config.auth?.username ?? "") !== "" || !!this.#o.config.auther;
  }

  #authorized(req: Request): boolean {
    if (!this.#hasAuth()) return true;
    const h = req.headers.get("authorization") ?? "";
    const m = /^Basic\s+(.+)$/i.exec(h);
    if (!m) return false;
    let user: string, pass: string;
    try {
      const text = atob(m[1]!.trim());
      const c = text.indexOf(":");
      if (c < 0) return false;
      user = text.slice(0, c);
      pass = text.slice(c + 1);
    } catch {
      return false;
    }
    const a = this.#o.config.auth;
    if (a && a.username !== "") {
      const okUser = constantTimeEqual(user, a.username);
      const okPass = constantTimeEqual(pass, a.password);
      if (okUser && okPass) return true;
    }
    const named = this.#o.config.auther ? this.#o.runtime.auther(this.#o.config.auther) : undefined;
    return named?.authenticate(user, pass) ?? false;
  }

  async #serve(req: Request, info: { remote: string }): Promise<Response> {
    const t0 = performance.now();
    const url = new URL(req.url);
    const origin = req.headers.get("origin");
    // CORS as GOST (gin-contrib/cors, all origins): only for cross-origin requests; any
    // preflight is answered before auth.
    const cross = origin !== null && origin !== `${url.protocol}//${url.host}`;
    if (cross && req.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: {
          "access-control-allow-origin": "*",
          "access-control-allow-methods": "GET,POST,PUT,DELETE,OPTIONS",
          "access-control-allow-headers": "*",
          "access-control-allow-private-network": "true",
        },
      });
    }
    let res: Response;
    try {
      this.#checkSite(req, url, cross);
      res = await this.#route(req, url);
    } catch (e) {
      res = e instanceof ApiError
        ? json({ code: e.code, msg: e.message }, e.status)
        : json({ code: 500, msg: errorText(e) }, 500);
    }
    if (cross) res.headers.set("access-control-allow-origin", "*");
    if (this.#o.config.accesslog) {
      const ms = (performance.now() - t0).toFixed(3);
      this.#log.info(
        `| ${res.status} | ${ms}ms | ${info.remote} | ${req.method} ${url.pathname}${url.search}`,
        {
          method: req.method,
          uri: url.pathname + url.search,
          code: res.status,
          client: info.remote,
        },
      );
    }
    return res;
  }

  /**
   * Browser-borne attacks on an API that listens on a trusted address (docs/api.md): a page the
   * operator visits must not change the config (form posts carry cached basic-auth credentials),
   * and, without auth, must not reach the API at all (cross-origin fetches, DNS rebinding).
   */
  #checkSite(req: Request, url: URL, cross: boolean): void {
    const site = req.headers.get("sec-fetch-site");
    const crossSite = cross || site === "cross-site";
    const mutating = req.method === "POST" || req.method === "PUT" || req.method === "DELETE";
    const json = (req.headers.get("content-type") ?? "").toLowerCase().includes("application/json");
    if (crossSite && mutating && !json) {
      // A cross-site request without a JSON body is what an HTML form sends (no preflight).
      throw new ApiError(403, 403, "cross-site change refused: send application/json");
    }
    if (this.#hasAuth()) return;
    if (crossSite) {
      throw new ApiError(
        403,
        403,
        "cross-origin requests need the API's auth (api.auth or api.auther)",
      );
    }
    // Without auth only an address may name us: a DNS-rebinding page uses a host name.
    const host = url.hostname.replace(/^\[|\]$/g, "");
    if (host !== "localhost" && !isIPv4(host) && !isIPv6(host)) {
      throw new ApiError(
        403,
        403,
        `host ${host} refused: an API without auth answers IP addresses only`,
      );
    }
  }

  async #route(req: Request, url: URL): Promise<Response> {
    const p = this.#prefix;
    if (p && url.pathname !== p && !url.pathname.startsWith(p + "/")) return notFound();
    const path = url.pathname.slice(p.length) || "/";
    const parts = path.split("/").filter((x) => x !== "");
    const isDashboard = path === "/" || parts[0] === "dashboard";
    if (parts[0] !== "config" && !isDashboard) return notFound();
    if (!this.#authorized(req)) {
      return new Response(JSON.stringify({ code: 401, msg: "Unauthorized" }), {
        status: 401,
        headers: { "content-type": JSON_TYPE, "www-authenticate": 'Basic realm="burrow"' },
      });
    }
    const m = req.method;
    if (isDashboard) {
      if (m !== "GET") return notFound();
      if (parts.length <= 1) {
        return new Response(DASHBOARD_HTML.replace("__PREFIX__", this.#prefix), {
          headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
        });
      }
      if (parts.length === 2 && parts[1] === "data") return json(this.#dashboardData());
      return notFound();
    }
    if (parts.length === 1) {
      if (m === "GET") return this.#getConfig(url);
      if (m === "POST") return await this.#saveConfig(url);
      return notFound();
    }
    const kind = parts[1]!;
    if (parts.length === 2 && kind === "reload" && m === "POST") {
      if (!this.#o.reload) throw new ApiError(400, 40001, "no config sources to reload");
      try {
        await this.#o.reload();
      } catch (e) {
        throw new ApiError(400, 40001, errorText(e));
      }
      return json({ msg: "OK" });
    }
    if (UNSUPPORTED.includes(kind)) {
      throw new ApiError(400, 40001, `${kind} are not supported by burrow`);
    }
    const single = KINDS[kind];
    if (!single || parts.length > 3) return notFound();
    const name = parts.length === 3 ? decodeURIComponent(parts[2]!) : undefined;
    if (name === undefined) {
      if (m === "GET") {
        const list = this.#list(kind);
        return json({ data: { count: list.length, list: list.length > 0 ? list : null } });
      }
      if (m === "POST") return await this.#create(kind, single, req);
      return notFound();
    }
    if (m === "GET") return json({ data: this.#list(kind).find((o) => o.name === name) ?? null });
    if (m === "PUT") return await this.#replace(kind, single, name, req);
    if (m === "DELETE") return await this.#delete(kind, single, name);
    return notFound();
  }

  /** The config with each service's live `status` (GOST fills it in for the API). */
  #configWithStatus(): Config {
    const cfg = this.#o.runtime.config;
    for (const s of cfg.services ?? []) {
      (s as ServiceConfig & { status?: unknown }).status = this.#status(s.name);
    }
    return cfg;
  }

  #status(name: string): unknown {
    const svc = this.#o.runtime.service(name);
    if (!svc) return undefined;
    return {
      createTime: Math.floor(svc.createdAt / 1000),
      state: svc.state,
      stats: { ...svc.stats },
    };
  }

  #list(kind: string): { name: string }[] {
    const cfg = kind === "services" ? this.#configWithStatus() : this.#o.runtime.config;
    return ((cfg as Record<string, unknown>)[kind] ?? []) as { name: string }[];
  }

  #getConfig(url: URL): Response {
    const cfg = this.#configWithStatus();
    if (url.searchParams.get("format") === "yaml") {
      return new Response(toYaml(cfg), { headers: { "content-type": "text/x-yaml" } });
    }
    return new Response(JSON.stringify(cfg, null, 2) + "\n", {
      headers: { "content-type": "application/json" },
    });
  }

  async #saveConfig(url: URL): Promise<Response> {
    const q = url.searchParams;
    const asked = q.get("format")?.toLowerCase();
    const given = q.get("path");
    if (given) {
      // Only config files, and only for an authenticated API: `path` writes anywhere we may.
      if (!this.#hasAuth()) throw new ApiError(403, 403, "?path= needs the API's auth");
      if (!/\.(ya?ml|json)$/i.test(given)) {
        throw new ApiError(400, 40005, "?path= must name a .yaml, .yml or .json file");
      }
    }
    const path = given || this.#o.configFile || (asked === "json" ? "gost.json" : "gost.yaml");
    const format = asked === "json" || asked === "yaml"
      ? asked
      : path.toLowerCase().endsWith(".json")
      ? "json"
      : "yaml";
    const cfg = this.#o.runtime.config;
    const text = format === "json" ? JSON.stringify(cfg, null, 2) + "\n" : toYaml(cfg);
    try {
      await Deno.writeTextFile(path, text);
    } catch (e) {
      throw new ApiError(500, 40005, `save config: ${errorText(e)}`);
    }
    this.#log.info(`config saved to ${path}`);
    return json({ msg: "OK" });
  }

  async #body(req: Request, kind: string): Promise<Record<string, unknown>> {
    let body: unknown;
    const text = await readCapped(req, MAX_BODY);
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, 40001, `invalid JSON body: ${errorText(e)}`);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new ApiError(400, 40001, `the body must be a ${KINDS[kind]} object`);
    }
    delete (body as Record<string, unknown>).status; // read-only, as GOST
    return body as Record<string, unknown>;
  }

  /**
   * Applies `change` to the running config as one step (concurrent requests queue): the result is
   * validated whole with unknown keys refused (an API client gets no silently dropped setting),
   * then applied all at once or not at all. Errors become GOST's API errors.
   */
  async #apply(
    what: string,
    change: (cfg: Record<string, unknown>) => Record<string, unknown>,
  ): Promise<Response> {
    try {
      const r = await this.#o.runtime.update((current) => {
        const raw = change(current as Record<string, unknown>);
        try {
          return normalizeConfig(raw, {
            strict: true,
            diagnostics: { strict: true, warn: () => {} },
          });
        } catch (e) {
          throw new ApiError(400, 40001, errorText(e));
        }
      }, {
        graceMs: this.#o.graceMs ?? 0,
        // Unknown metadata keys are refused too, not only warned about.
        diagnostics: { strict: true, warn: () => {} },
      });
      this.#log.info(`${what}: ${summary(r)}`);
    } catch (e) {
      if (e instanceof ApiError) throw e;
      if (e instanceof ConfigError) throw new ApiError(400, 40001, errorText(e));
      throw new ApiError(500, 40003, `${what} failed: ${errorText(e)}`);
    }
    return json({ msg: "OK" });
  }

  async #create(kind: string, single: string, req: Request): Promise<Response> {
    const body = await this.#body(req, kind);
    const name = typeof body.name === "string" ? body.name.trim() : "";
    if (!name) throw new ApiError(400, 40001, `${single} name is required`);
    body.name = name;
    return await this.#apply(`create ${single} ${name}`, (cfg) => {
      const list = (cfg[kind] ?? []) as { name: string }[];
      if (list.some((o) => o.name === name)) {
        throw new ApiError(400, 40002, `${single} ${name} already exists`);
      }
      return { ...cfg, [kind]: [...list, body] };
    });
  }

  async #replace(kind: string, single: string, name: string, req: Request): Promise<Response> {
    const body = await this.#body(req, kind);
    body.name = name; // the path names the object (GOST)
    return await this.#apply(`update ${single} ${name}`, (cfg) => {
      const list = (cfg[kind] ?? []) as { name: string }[];
      const i = list.findIndex((o) => o.name === name);
      if (i < 0) throw new ApiError(400, 40004, `${single} ${name} not found`);
      return { ...cfg, [kind]: list.map((o, j) => j === i ? body : o) };
    });
  }

  #delete(kind: string, single: string, name: string): Promise<Response> {
    return this.#apply(`delete ${single} ${name}`, (cfg) => {
      const list = (cfg[kind] ?? []) as { name: string }[];
      if (!list.some((o) => o.name === name)) {
        throw new ApiError(400, 40004, `${single} ${name} not found`);
      }
      return { ...cfg, [kind]: list.filter((o) => o.name !== name) };
    });
  }

  /** What the dashboard polls: services with their parts and counters, recent errors. */
  #dashboardData(): unknown {
    const rt = this.#o.runtime;
    const cfg = rt.config;
    return {
      time: Date.now(),
      services: (cfg.services ?? []).map((s) => {
        const svc = rt.service(s.name);
        return {
          name: s.name,
          addr: svc ? formatAddr(svc.listener.addr) : s.addr,
          listener: s.listener.type,
          handler: s.handler.type,
          chain: s.handler.chain ?? null,
          state: svc?.state ?? "closed",
          stats: svc ? { ...svc.stats } : null,
        };
      }),
      chains: (cfg.chains ?? []).map((c) => ({
        name: c.name,
        hops: c.hops.map((h) => ({
          name: h.name,
          nodes: (h.nodes ?? []).map((n) => `${n.connector.type}+${n.dialer.type}://${n.addr}`),
        })),
      })),
      errors: this.#o.recent?.entries ?? [],
    };
  }
}

/** Request bodies above this are refused (413): a config object is a few KiB. */
const MAX_BODY = 1 << 20;

async function readCapped(req: Request, max: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > max) throw new ApiError(413, 413, `body larger than ${max} bytes`);
  if (!req.body) return "";
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const chunk of req.body) {
    n += chunk.length;
    if (n > max) throw new ApiError(413, 413, `body larger than ${max} bytes`);
    parts.push(chunk);
  }
  const all = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    all.set(p, off);
    off += p.length;
  }
  return new TextDecoder().decode(all);
}

function summary(r: { added: string[]; replaced: string[]; removed: string[] }): string {
  const parts = [
    ...r.added.map((x) => `+${x}`),
    ...r.replaced.map((x) => `~${x}`),
    ...r.removed.map((x) => `-${x}`),
  ];
  return parts.length > 0 ? parts.join(" ") : "no change";
}
