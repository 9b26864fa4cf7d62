/**
 * The Prometheus endpoint (`-metrics`, `metrics:`): GOST's metrics on one exact path, with
 * optional basic auth (docs/metrics.md).
 * @module
 */
import type { MetricsConfig } from "../config/model.ts";
import { type Logger, silentLogger } from "../core/log.ts";
import { constantTimeEqual } from "../core/secret.ts";
import type { Auther } from "../core/types.ts";
import type { GostMetrics } from "../metrics/gost.ts";
import { type HttpEndpoint, listen } from "./http.ts";

const CORS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, OPTIONS",
  "access-control-allow-headers": "*",
};

/** Serves `metrics` on `config.addr` at `config.path` (default `/metrics`). */
export async function serveMetrics(
  config: MetricsConfig,
  metrics: GostMetrics,
  opts: { log?: Logger; auther?: (name: string) => Auther | undefined } = {},
): Promise<HttpEndpoint> {
  const log = (opts.log ?? silentLogger).with({ kind: "metrics" });
  const path = config.path || "/metrics";
  // A named auther replaces auth (GOST).
  const check = (user: string, pass: string): boolean => {
    if (config.auther) return opts.auther?.(config.auther)?.authenticate(user, pass) ?? false;
    const a = config.auth;
    return constantTimeEqual(user, a!.username) && constantTimeEqual(pass, a!.password);
  };
  const guarded = !!config.auther || (config.auth?.username ?? "") !== "";
  return await listen(config.addr, async (req) => {
    const url = new URL(req.url);
    if (url.pathname !== path) {
      return new Response("404 page not found\n", {
        status: 404,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    if (req.method === "OPTIONS") return new Response(null, { status: 204, headers: CORS });
    if (guarded) {
      const m = /^Basic\s+(.+)$/i.exec(req.headers.get("authorization") ?? "");
      let ok = false;
      if (m) {
        try {
          const t = atob(m[1]!.trim());
          const c = t.indexOf(":");
          ok = c >= 0 && check(t.slice(0, c), t.slice(c + 1));
        } catch { /* bad base64: refused */ }
      }
      if (!ok) return new Response(null, { status: 401, headers: CORS });
    }
    return new Response(await metrics.text(), {
      headers: { ...CORS, "content-type": metrics.contentType },
    });
  }, log);
}
