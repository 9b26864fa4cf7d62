/**
 * Registries map GOST type names ("socks5", "mtcp", ...) to factories.
 * @module
 */
import { UnsupportedError } from "./errors.ts";
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
