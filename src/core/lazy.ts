/**
 * A module imported on first need, not at start-up. Each npm package Burrow uses costs a process
 * 7-21 MiB of RSS when it is imported (ssh2, prom-client, yaml, dns-packet: ~24 MiB together,
 * where a `-L socks5://` proxy needs none of them; docs/performance.md, "What a process costs
 * before its first conn"). The factory that needs one awaits {@link LazyModule.load} (factories
 * may be async, and a broken package still fails at start-up); code after it takes the module
 * with {@link LazyModule.get}, synchronously.
 * @module
 */

/** A module loaded once, when a factory first asks for it. */
export class LazyModule<T> {
  readonly #import: () => Promise<T>;
  readonly #name: string;
  #module?: T;
  #loading?: Promise<T>;

  /** `load` imports the module (a string-literal `import()`, so `deno compile` bundles it). */
  constructor(name: string, load: () => Promise<T>) {
    this.#name = name;
    this.#import = load;
  }

  /** Imports the module if that has not happened yet (a failed import is tried again). */
  load(): Promise<T> {
    if (this.#module !== undefined) return Promise.resolve(this.#module);
    this.#loading ??= this.#import().then(
      (m) => (this.#module = m),
      (e) => {
        this.#loading = undefined;
        throw e;
      },
    );
    return this.#loading;
  }

  /** The loaded module; throws if nothing awaited {@link load} first (a bug, not bad input). */
  get(): T {
    if (this.#module === undefined) {
      throw new Error(`${this.#name} was used before it was loaded (LazyModule.load)`);
    }
    return this.#module;
  }
}
