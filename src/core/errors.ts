/**
 * The error hierarchy. Whether an error is worth retrying is a property (`temporary`), never a
 * matter of matching message text.
 * @module
 */

/** Base of every error Burrow raises on purpose. */
export class TunnelError extends Error {
  /** True when trying again later may succeed (timeouts, refused dials). */
  readonly temporary: boolean;
  /** `options.cause` is the underlying error; `options.temporary` marks a retryable failure. */
  constructor(message: string, options?: { cause?: unknown; temporary?: boolean }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "TunnelError";
    this.temporary = options?.temporary ?? false;
  }
}

/** The peer broke the wire protocol (bad version, malformed frame, oversized length). */
export class ProtocolError extends TunnelError {
  /** `options.cause` is the underlying error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProtocolError";
  }
}

/** Credentials were missing or wrong. */
export class AuthError extends TunnelError {
  /** `options.cause` is the underlying error. */
  constructor(message = "authentication failed", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AuthError";
  }
}

/** An operation did not finish in time. */
export class TimeoutError extends TunnelError {
  /** `options.cause` is the underlying error. */
  constructor(message = "timeout", options?: { cause?: unknown }) {
    super(message, { ...options, temporary: true });
    this.name = "TimeoutError";
  }
}

/** A type, command or option that this build does not implement. */
export class UnsupportedError extends TunnelError {
  /** `options.cause` is the underlying error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "UnsupportedError";
  }
}

/** A rule refused the request (service bypass, admission): answer "forbidden", never retry. */
export class ForbiddenError extends TunnelError {
  /** `options.cause` is the underlying error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ForbiddenError";
  }
}

/** A target that is this process's own listener: dialing it would loop (HTTP 508). */
export class LoopError extends ForbiddenError {
  /** `options.cause` is the underlying error. */
  constructor(message: string) {
    super(message);
    this.name = "LoopError";
  }
}

/** The object was closed; further use is a bug or a race with shutdown. */
export class ClosedError extends TunnelError {
  /** `options.cause` is the underlying error. */
  constructor(message = "closed", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ClosedError";
  }
}

/** Configuration is invalid; `path` names the field (`services[2].listener.metadata.x`). */
export class ConfigError extends TunnelError {
  /** The field at fault, e.g. `services[2].listener.type`. */
  readonly path: string;
  /** `path` names the bad field; empty for the config as a whole. */
  constructor(path: string, message: string) {
    super(path ? `${path}: ${message}` : message);
    this.name = "ConfigError";
    this.path = path;
  }
}

/** A short text for logs: the message, with the cause's message when there is one. */
export function errorText(e: unknown): string {
  if (e instanceof Error) {
    const c = e.cause instanceof Error ? `: ${e.cause.message}` : "";
    return `${e.message}${c}`;
  }
  return String(e);
}
