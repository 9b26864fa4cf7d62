/**
 * Authers: user lists from config (`auth`, `authers[].auths`) and files of `user pass` lines.
 * Passwords are compared in constant time and never logged.
 * @module
 */
import type { Auther, Credentials } from "../core/types.ts";
import { ConfigError } from "../core/errors.ts";
import { constantTimeEqual } from "../core/secret.ts";

/** Authenticates against a fixed user list. */
export class UserAuther implements Auther {
  #users = new Map<string, string>();

  constructor(users: Credentials[]) {
    this.replace(users);
  }

  /** Swaps in a new user list (an auth file reload); live checks see one list or the other. */
  replace(users: Credentials[]): void {
    const next = new Map<string, string>();
    for (const u of users) next.set(u.username, u.password);
    this.#users = next;
  }

  get size(): number {
    return this.#users.size;
  }

  authenticate(username: string, password: string): boolean {
    const want = this.#users.get(username);
    // Compare against something even for unknown users, so timing does not reveal names.
    const ok = constantTimeEqual(password, want ?? "\u0000never");
    return want !== undefined && ok;
  }
}

/**
 * Parses an auth file as GOST does: `user password` per line (the password is the rest of the
 * line, so it may hold spaces or `#`), lines starting with `#` are comments, blank lines ignored.
 * A user without a password accepts only an empty password (GOST accepts any: too open).
 */
export function parseAuthFile(text: string, path = "auth file"): Credentials[] {
  const out: Credentials[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\t/g, " ").trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^(\S+)(?:\s+(.*))?$/.exec(line);
    if (!m) throw new ConfigError(`${path}:${i + 1}`, "expected `user password`");
    out.push({ username: m[1]!, password: (m[2] ?? "").trim() });
  });
  return out;
}

/** Any of several authers accepting. */
export class AnyAuther implements Auther {
  constructor(readonly authers: Auther[]) {}
  authenticate(username: string, password: string): boolean {
    let ok = false;
    for (const a of this.authers) ok = a.authenticate(username, password) || ok;
    return ok;
  }
}
