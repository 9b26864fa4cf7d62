/**
 * Registries map GOST type names ("socks5", "mtcp", ...) to factories.
 * @module
 */
import { UnsupportedError } from "./errors.ts";
import { LazyModule } from "./lazy.ts";
import type { ConnectorFactory, DialerFactory, HandlerFactory, ListenerFactory } from "./types.ts";

/** A name → value map that refuses duplicates. */
export class Registry<T> {
  /** What it holds ("listener", "handler", ...), for error messages. */
  readonly kind: string;
  readonly #items = new Map<string, T>();

  /** An empty registry of `kind`. */
  constructor(kind: string) {
    this.kind = kind;
  }

  /** Adds `name` (case-insensitive); a second registration of a name throws. */
  register(name: string, value: T): void {
    const key = name.toLowerCase();
    if (this.#items.has(key)) throw new Error(`${this.kind} "${name}" is already registered`);
    this.#items.set(key, value);
  }

  /** Whether `name` is registered. */
  has(name: string): boolean {
    return this.#items.has(name.toLowerCase());
  }

  /** The value for `name`; an unknown name throws UnsupportedError naming it. */
  get(name: string): T {
    const v = this.#items.get(name.toLowerCase());
    if (v === undefined) throw new UnsupportedError(`unknown ${this.kind} type "${name}"`);
    return v;
  }

  /** Every registered name, sorted. */
  names(): string[] {
    return [...this.#items.keys()].sort();
  }
}

/** The four plugin registries a runtime needs. */
export interface Registries {
  /** `listener.type` → factory. */
  listeners: Registry<ListenerFactory>;
  /** `handler.type` → factory. */
  handlers: Registry<HandlerFactory>;
  /** `dialer.type` → factory. */
  dialers: Registry<DialerFactory>;
  /** `connector.type` → factory. */
  connectors: Registry<ConnectorFactory>;
}

/** Fresh, empty registries (tests register only what they need). */
export function createRegistries(): Registries {
  return {
    listeners: new Registry<ListenerFactory>("listener"),
    handlers: new Registry<HandlerFactory>("handler"),
    dialers: new Registry<DialerFactory>("dialer"),
    connectors: new Registry<ConnectorFactory>("connector"),
  };
}

/** A module that adds types to registries (each type folder's `mod.ts` exports one). */
export interface Registrar {
  register(reg: Registries): void;
}

/** The type names a {@link Registrar} adds, per registry. */
export type TypeNames = { readonly [K in keyof Registries]?: readonly string[] };

/**
 * Adds `names` to `reg` now, and imports the modules that implement them when a config first
 * builds one: KCP's ciphers and FEC, the bundle, tun devices, SSH and the rest cost a process
 * memory at start-up whether it runs them or not (core/lazy.ts). The modules register into
 * registries of their own; each name here hands its factory's work over to them. `names` must be
 * exactly what the modules register (tests/startup_graph_test.ts checks every lazy group).
 */
export function registerLazily(
  reg: Registries,
  names: TypeNames,
  load: () => Promise<readonly Registrar[]>,
): void {
  const label = Object.values(names).flat().join("/");
  const inner = new LazyModule(`the ${label} types`, async () => {
    const own = createRegistries();
    for (const m of await load()) m.register(own);
    return own;
  });
  for (const n of names.listeners ?? []) {
    reg.listeners.register(n, async (o) => (await inner.load()).listeners.get(n)(o));
  }
  for (const n of names.handlers ?? []) {
    reg.handlers.register(n, async (o) => (await inner.load()).handlers.get(n)(o));
  }
  for (const n of names.dialers ?? []) {
    reg.dialers.register(n, async (o) => (await inner.load()).dialers.get(n)(o));
  }
  for (const n of names.connectors ?? []) {
    reg.connectors.register(n, async (o) => (await inner.load()).connectors.get(n)(o));
  }
}
