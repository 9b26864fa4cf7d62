/**
 * Registries map GOST type names ("socks5", "mtcp", ...) to factories.
 * @module
 */
import { UnsupportedError } from "./errors.ts";
import type { ConnectorFactory, DialerFactory, HandlerFactory, ListenerFactory } from "./types.ts";

/** A name → value map that refuses duplicates. */
export class Registry<T> {
  readonly kind: string;
  readonly #items = new Map<string, T>();

  constructor(kind: string) {
    this.kind = kind;
  }

  register(name: string, value: T): void {
    const key = name.toLowerCase();
    if (this.#items.has(key)) throw new Error(`${this.kind} "${name}" is already registered`);
    this.#items.set(key, value);
  }

  has(name: string): boolean {
    return this.#items.has(name.toLowerCase());
  }

  get(name: string): T {
    const v = this.#items.get(name.toLowerCase());
    if (v === undefined) throw new UnsupportedError(`unknown ${this.kind} type "${name}"`);
    return v;
  }

  names(): string[] {
    return [...this.#items.keys()].sort();
  }
}

/** The four plugin registries a runtime needs. */
export interface Registries {
  listeners: Registry<ListenerFactory>;
  handlers: Registry<HandlerFactory>;
  dialers: Registry<DialerFactory>;
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
