/**
 * Fingerprints of a config's named objects, for applying only what changed: an object's
 * fingerprint covers its own config, the contents of the files it names (certificates, auth
 * files, matcher and limit files) and the fingerprints of the objects it refers to, so a changed
 * bypass rebuilds the chains and services that use it and nothing else (docs/runtime.md).
 * @module
 */
import { ACCESS_LISTS, type Config, type HopConfig, type ServiceConfig } from "../config/model.ts";
import { crc32 } from "../core/crc32.ts";
import { resolveHop } from "./build.ts";

/** Fingerprints by kind and name. */
export interface ConfigPlan {
  /** The fingerprint of `kind` (a top-level list such as `services`) entry `name`. */
  fp(kind: string, name: string): string;
  /** What a service's listener depends on: equal keys mean the listener can stay. */
  listenerKey(service: string): string;
}

const FILE_KEYS = new Set(["certfile", "keyfile", "cafile", "kcp.configfile", "configfile"]);

/**
 * Listener types that serve TLS: the only ones the top-level `tls:` (and, without a `certFile`,
 * `cert.pem`/`key.pem` in the working directory) can change.
 */
export const TLS_LISTENERS: ReadonlySet<string> = new Set(["tls", "mtls", "wss", "mwss"]);

/** Every file path named in `o` (TLS files, `auth.file`, `file: {path}`). */
function filesOf(o: unknown, out: Set<string> = new Set()): Set<string> {
  if (Array.isArray(o)) { for (const x of o) filesOf(x, out); }
  else if (o && typeof o === "object") {
    for (const [k, v] of Object.entries(o)) {
      if (FILE_KEYS.has(k.toLowerCase()) && typeof v === "string" && v) out.add(v);
      else if (k === "file" && typeof v === "string" && v) out.add(v);
      else if (
        k === "file" && v && typeof v === "object" &&
        typeof (v as { path?: unknown }).path === "string"
      ) {
        out.add((v as { path: string }).path);
      } else filesOf(v, out);
    }
  }
  return out;
}

/** Reads the files a config names, for their digests. */
async function digests(cfg: Config, extra: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  await Promise.all([...filesOf(cfg), ...extra].map(async (p) => {
    try {
      const b = await Deno.readFile(p);
      out.set(p, `${b.length}:${crc32(b).toString(16)}`);
    } catch (e) {
      out.set(p, `missing:${e instanceof Error ? e.name : ""}`);
    }
  }));
  return out;
}

/** Computes the fingerprints of `cfg` (reads the files it names). */
export async function planConfig(cfg: Config): Promise<ConfigPlan> {
  const files = await digests(cfg, ["cert.pem", "key.pem"]);
  const own = (o: unknown): string =>
    JSON.stringify(o) + [...filesOf(o)].map((f) => `|${f}=${files.get(f)}`).join("");
  const fps = new Map<string, string>();
  const key = (kind: string, name: string) => `${kind}/${name}`;
  const dep = (kind: string, name?: string) =>
    name ? `&${kind}/${name}=${fps.get(key(kind, name)) ?? ""}` : "";
  const deps = (kind: string, list?: string[]) => (list ?? []).map((n) => dep(kind, n)).join("");

  for (const kind of ["authers", "ingresses", ...ACCESS_LISTS] as const) {
    for (const o of cfg[kind] ?? []) fps.set(key(kind, o.name), own(o));
  }
  const topHops = new Map((cfg.hops ?? []).map((h) => [h.name, h]));
  const refsOf = (o: { bypass?: string; bypasses?: string[]; hosts?: string; resolver?: string }) =>
    dep("bypasses", o.bypass) + deps("bypasses", o.bypasses) + dep("hosts", o.hosts) +
    dep("resolvers", o.resolver);
  const hopFp = (h: HopConfig) =>
    own(h) + refsOf(h) + (h.nodes ?? []).map((n) => refsOf(n)).join("");
  for (const c of cfg.chains ?? []) {
    fps.set(
      key("chains", c.name),
      own(c) + c.hops.map((h) => hopFp(resolveHop(h, topHops))).join(""),
    );
  }
  const listenerKeys = new Map<string, string>();
  for (const s of cfg.services ?? []) {
    // A binding listener (rtcp) reaches its far end through its chain: a new chain, a new bind.
    const lk = listenerKey(s, cfg, own, files) + dep("chains", s.listener.chain);
    listenerKeys.set(s.name, lk);
    const h = s.handler;
    fps.set(
      key("services", s.name),
      own(s) + `&listener=${lk}` + dep("chains", h.chain) + dep("authers", h.auther) +
        deps("authers", h.authers) + dep("admissions", s.admission) +
        deps("admissions", s.admissions) + refsOf(s) + dep("limiters", s.limiter) +
        dep("climiters", s.climiter) + dep("rlimiters", s.rlimiter) +
        (s.forwarder?.hop && !s.forwarder.nodes ? own(topHops.get(s.forwarder.hop) ?? null) : "") +
        // A tunnel handler's rules (`ingress` metadata, any case).
        dep("ingresses", metaString(h.metadata, "ingress")),
    );
  }
  return {
    fp: (kind, name) => fps.get(key(kind, name)) ?? "",
    listenerKey: (name) => listenerKeys.get(name) ?? "",
  };
}

/** A metadata value by key, ignoring case (as Metadata reads it). */
function metaString(md: Record<string, unknown> | undefined, key: string): string | undefined {
  for (const [k, v] of Object.entries(md ?? {})) {
    if (k.toLowerCase() === key && typeof v === "string") return v;
  }
  return undefined;
}

function listenerKey(
  s: ServiceConfig,
  cfg: Config,
  own: (o: unknown) => string,
  files: Map<string, string>,
): string {
  // A tun/tap listener binds its socket only for a server (no forwarder): a reload that turns a
  // client into a server, or back, needs a new listener.
  const device = s.listener.type === "tun" || s.listener.type === "tap"
    ? { forwards: s.forwarder !== undefined }
    : {};
  if (!TLS_LISTENERS.has(s.listener.type)) {
    return own({ addr: s.addr, listener: s.listener, ...device });
  }
  const tls = s.listener.tls ?? cfg.tls ?? null;
  // Without a certFile the listener serves ./cert.pem if there is one (else the auto cert).
  const cwd = tls?.certFile
    ? ""
    : `|cert.pem=${files.get("cert.pem")}|key.pem=${files.get("key.pem")}`;
  return own({ addr: s.addr, listener: s.listener, tls }) + cwd;
}
