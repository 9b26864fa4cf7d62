/**
 * The one place that lists every built-in type. Each transport or proxy folder exports a
 * `register(reg)` function; adding a type means one folder plus one line here.
 * @module
 */
import { createRegistries, type Registries } from "./core/registry.ts";

/** Registers every built-in listener, handler, dialer and connector into `reg`. */
export function registerBuiltins(reg: Registries): Registries {
  // -- transports (listener + dialer) --
  // -- proxy protocols (handler + connector) --
  return reg;
}

/** Registries with every built-in type. */
export function builtinRegistries(): Registries {
  return registerBuiltins(createRegistries());
}
