import { Writable } from "node:stream";
import type { DestinationStream, Logger } from "pino";
import { pino, stdSerializers } from "pino";

/** Replacement text for every redacted value. */
export const REDACTED = "[REDACTED]";

/**
 * Keys whose values never reach a log line, at any depth (matched case-insensitively, with
 * `-` and `_` ignored, so `api_key`, `apiKey` and `X-Api-Key` are all caught).
 */
export const SECRET_KEYS: readonly string[] = Object.freeze([
  "authorization",
  "proxyauthorization",
  "cookie",
  "setcookie",
  "apikey",
  "xapikey",
  "secret",
  "clientsecret",
  "password",
  "passwd",
  "token",
  "accesstoken",
  "refreshtoken",
  "plaintext",
  "privatekey",
  "databaseurl",
]);

/**
 * The pino redact paths from the brief: fast (compiled) redaction for the common shapes.
 * The deep scrub in {@link scrub} covers everything else (any depth, key spelling, strings).
 */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "api_key",
  "*.api_key",
  "apiKey",
  "*.apiKey",
  "secret",
  "*.secret",
  "password",
  "*.password",
  "token",
  "*.token",
  "plaintext",
  "*.plaintext",
]);

const SECRET_KEY_SET = new Set(SECRET_KEYS);

/**
 * `compute` with its answers kept for strings already seen (keys and messages of log lines: the
 * same few every time). Bounded: they are names from code, but a logged object could carry
 * arbitrary ones; past 10,000, new strings are worked out each time.
 */
function memoized<V>(compute: (text: string) => V): (text: string) => V {
  const memo = new Map<string, V>();
  return (text) => {
    let value = memo.get(text);
    if (value === undefined) {
      value = compute(text);
      if (memo.size < 10_000) memo.set(text, value);
    }
    return value;
  };
}

/** Whether a key names a secret (its value is redacted), however it is cased or separated. */
const isSecretKey = memoized((key) => SECRET_KEY_SET.has(key.toLowerCase().replace(/[-_]/g, "")));

/**
 * Secrets inside free text (messages, error texts, URLs): Nexus API keys
 * (`nxs_<key id>_<secret>`), sign-in session tokens (`nxss_…`), SCIM tokens (`nxscim_…`), bearer/basic credentials, passwords in URLs, and
 * `password=…`-style pairs (connection strings, driver errors).
 */
const SECRET_TEXT: readonly [RegExp, string][] = [
  [/\b(nxs|nxss|nxscim)_[A-Za-z0-9_-]{4,}/g, `$1_${REDACTED}`],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  [/\b([a-z][a-z0-9+.-]*:\/\/[^\s:/@]*):[^\s@/]+@/gi, `$1:${REDACTED}@`],
  [/\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)(?!\[REDACTED\])[^\s&,;'"]+/gi, `$1$2${REDACTED}`],
];

/**
 * A substring every pattern of SECRET_TEXT needs: text without any (ids, names, codes — most
 * of a log line) is returned as is after one scan instead of four.
 */
const MAY_HOLD_SECRET = /nxs_|nxss_|nxscim_|bearer|basic|:\/\/|passw|pwd|secret|token|api[_-]?key/i;

/**
 * Whether every character of `text` is printable ASCII other than `_`, `:` and `=`: then no
 * pattern of SECRET_TEXT can match (a key needs `_`, a bearer token whitespace, a URL password
 * `:`, a `password=…` pair `=` or `:`). Ids, codes and names — most strings of a log line — are
 * passed after this loop, without a regular expression (run per string of every access line).
 */
function plainText(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c <= 0x20 || c > 0x7e || c === 0x5f /* _ */ || c === 0x3a /* : */ || c === 0x3d /* = */) return false;
  }
  return true;
}

/** Replaces Nexus keys, bearer tokens and URL passwords inside a string. */
export function scrubText(text: string): string {
  if (plainText(text) || !MAY_HOLD_SECRET.test(text)) return text;
  let out = text;
  for (const [pattern, replacement] of SECRET_TEXT) out = out.replace(pattern, replacement);
  return out;
}

/**
 * Deep copy of `value` with secret keys redacted and secret-looking text scrubbed. Errors are
 * serialized first (type, message, stack, cause) so their texts are scrubbed too.
 */
export function scrub(value: unknown, depth = 0, seen?: WeakSet<object>): unknown {
  if (typeof value === "string") return scrubText(value);
  if (value === null || typeof value !== "object") return value;
  if (depth > 12 || seen?.has(value)) return "[...]";
  // A log line's object is usually flat (ids, names, codes, numbers): copied in one pass,
  // without the cycle set and entry arrays the general walk below needs.
  if (seen === undefined && isFlatRecord(value)) return scrubFlat(value);
  seen ??= new WeakSet<object>();
  seen.add(value);
  if (value instanceof Error) return scrub(stdSerializers.err(value), depth + 1, seen);
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1, seen));
  if (value instanceof Date || Buffer.isBuffer(value) || ArrayBuffer.isView(value)) return value;
  if (value instanceof Headers) {
    return scrub(Object.fromEntries(value.entries()), depth + 1, seen);
  }
  if (value instanceof URL) return scrubText(value.href);
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    return scrub((value as { toJSON(): unknown }).toJSON(), depth + 1, seen);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = isSecretKey(k) ? REDACTED : scrub(v, depth + 1, seen);
  }
  return out;
}

/** A plain object (Object or null prototype, no toJSON) whose values are all primitives. */
function isFlatRecord(value: object): value is Record<string, unknown> {
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return false;
  for (const k in value) {
    const v = (value as Record<string, unknown>)[k];
    if ((v !== null && typeof v === "object") || typeof v === "function") return false;
  }
  return true;
}

/** A primitive value of a log line under `key`, redacted: a secret key's value, or secret-looking text. */
function scrubPrimitive(key: string, value: unknown): unknown {
  return isSecretKey(key) ? REDACTED : typeof value === "string" ? scrubText(value) : value;
}

/** {@link scrub} of a flat record: secret keys redacted, secret-looking strings scrubbed. */
function scrubFlat(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k in value) out[k] = scrubPrimitive(k, value[k]);
  return out;
}

const { lsCacheSym, chindingsSym, timeSym, endSym, streamSym, mixinSym, messageKeySym, needsMetadataGsym } = pino.symbols;

/**
 * Whether a JSON string cannot hold `text` as it is: a quote, a backslash or a control character
 * (Unicode's Cc: U+0000–U+001F, U+007F–U+009F). A loop, not a regular expression: it runs for
 * most strings of every access line.
 */
function needsEscape(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

/**
 * A string as JSON, as pino writes it: JSON.stringify for long strings and strings with
 * characters to escape, the string in quotes otherwise (most strings of a log line, where a
 * JSON.stringify call per string is dear).
 */
function quote(text: string): string {
  return text.length > 100 || needsEscape(text) ? JSON.stringify(text) : `"${text}"`;
}

/** A key of a flat line as it goes into the line: `,"key":`. */
const keyPrefix = memoized((key) => `,${quote(key)}:`);

/** A flat line's message scrubbed and quoted (the access line's is one per method and code). */
const quotedMessage = memoized((msg) => quote(scrubText(msg)));

/**
 * Writes `log[level](fields, msg)` for a line whose fields are all strings, finite numbers or
 * booleans, without pino's general serializer: the same text (pino's level prefix, time and
 * bindings, the fields in order, the message, pino's line end), redacted the same way (secret
 * keys, secret-looking strings), to the logger's own destination. pino's per-character string
 * escaping and the formatter's copy of the object were about half of every RPC's access line
 * (docs/performance.md).
 *
 * Returns false and writes nothing when the line does not qualify (a value of another type, a
 * logger with a mixin or a multistream destination): log through pino then. The caller checks
 * that the level is enabled.
 */
export function writeFlatLine(log: Logger, level: "debug" | "info", fields: Record<string, unknown>, msg: string): boolean {
  // pino's own parts of the logger (pino.symbols): its cached level prefixes, time, bindings, line end and destination.
  const l = log as unknown as Record<symbol, unknown>;
  const stream = l[streamSym] as (DestinationStream & Record<symbol, unknown>) | undefined;
  if (stream === undefined || stream[needsMetadataGsym] === true || l[mixinSym] !== undefined) return false;
  let props = "";
  for (const k in fields) {
    if (fields[k] === undefined) continue;
    const v = scrubPrimitive(k, fields[k]);
    let value: string;
    if (typeof v === "string") value = quote(v);
    else if (typeof v === "number") value = Number.isFinite(v) ? String(v) : "null";
    else if (typeof v === "boolean") value = String(v);
    else return false;
    props += keyPrefix(k) + value;
  }
  const num = log.levels.values[level]!;
  const prefix = (l[lsCacheSym] as Record<number, string>)[num];
  const time = (l[timeSym] as () => string)();
  const messageKey = keyPrefix(l[messageKeySym] as string);
  stream.write(`${prefix}${time}${l[chindingsSym] as string}${props}${messageKey}${quotedMessage(msg)}${l[endSym] as string}`);
  return true;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** pino level; default "info". */
  level?: string;
  /** Human-readable lines instead of JSON (development); default false. */
  pretty?: boolean;
  /** Logger name (the `name` field of every line), e.g. "nexus". */
  name: string;
  /** Where lines go; default stdout. Tests pass a stream to capture output. */
  destination?: DestinationStream;
}

/**
 * Creates the process logger: pino JSON lines (or pretty lines), secrets redacted by key at
 * any depth in every line and every child's bindings (every path of {@link REDACT_PATHS} is
 * one of {@link SECRET_KEYS}, so pino's own path redaction, which cost ~6 % of an
 * authenticated call's CPU, is not run on top) and by
 * pattern inside messages (Nexus keys `nxs_...`, bearer tokens, URL passwords). Child loggers
 * inherit all of it.
 *
 * Lines go to stdout through {@link turnBatchedStdout}: the lines of one event-loop turn are
 * written together, synchronously and in order, at the end of that turn (and at exit). One
 * `write(2)` per line was a visible share of an authenticated call (docs/performance.md). An
 * asynchronous destination (SonicBoom `sync: false`, 4 KiB / 250 ms) was tried before and
 * dropped: under a slow reader its retries after EAGAIN wrote lines out of order
 * (tests/log-flush.test.ts caught it) and a crash lost the buffer.
 */
export function createLogger(options: LoggerOptions): Logger {
  const destination = options.pretty ? prettyStream(options.destination ?? process.stdout) : (options.destination ?? turnBatchedStdout());
  const logger = pino(
    {
      name: options.name,
      level: options.level ?? "info",
      serializers: { err: (err: Error) => scrub(err) as ReturnType<typeof stdSerializers.err> },
      formatters: {
        bindings: (bindings) => scrub(bindings) as Record<string, unknown>,
        log: (obj) => scrub(obj) as Record<string, unknown>,
      },
      hooks: {
        // Messages and interpolation arguments are plain strings pino never looks inside.
        logMethod(args, method) {
          const cleaned = args.map((a) => (typeof a === "string" ? scrubText(a) : a));
          return method.apply(this, cleaned as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
  // A child's bindings pass neither formatter: scrub them on the way in. pino makes a child
  // with Object.create(parent), so every descendant inherits this `child`.
  type ChildFn = (this: Logger, bindings: Record<string, unknown>, options?: unknown) => Logger;
  const child = logger.child as unknown as ChildFn;
  logger.child = function (this: Logger, bindings: Record<string, unknown>, childOptions?: unknown) {
    return child.call(this, scrub(bindings) as Record<string, unknown>, childOptions);
  } as unknown as typeof logger.child;
  return logger;
}

/** Pending lines above this many characters are written at once, not at the end of the turn. */
const TURN_BATCH_MAX_CHARS = 64 * 1024;

/** The process's one batched stdout (every logger without a destination shares it). */
let stdoutBatch: DestinationStream | undefined;

/**
 * stdout for the process loggers: lines logged in one event-loop turn are kept and written
 * with one synchronous write (pino's SonicBoom in sync mode, which retries EAGAIN in order) by
 * a `setImmediate` at the end of the turn, or at once past {@link TURN_BATCH_MAX_CHARS}, and
 * on `exit` (a normal end, `process.exit()`, an uncaught exception), so no line is lost or
 * reordered. One buffer for the whole process: lines of several loggers keep their order, and
 * one `exit` listener serves them all. A process killed with SIGKILL loses at most the current
 * turn's lines. Writes to stdout by other code (console.log) may land before lines logged
 * earlier in the same turn.
 */
export function turnBatchedStdout(): DestinationStream {
  if (stdoutBatch !== undefined) return stdoutBatch;
  const out = pino.destination({ dest: 1, sync: true });
  let pending = "";
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending === "") return;
    const text = pending;
    pending = "";
    out.write(text);
  };
  process.on("exit", flush);
  const destination = {
    /** What `logger.flush()` calls: writes the pending lines now. */
    flush(cb?: (err?: Error) => void) {
      flush();
      cb?.();
    },
    write(line: string) {
      pending += line;
      if (pending.length > TURN_BATCH_MAX_CHARS) flush();
      else if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
  stdoutBatch = destination;
  return destination;
}

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const OMIT_IN_PRETTY = new Set(["level", "time", "msg", "pid", "hostname", "name"]);

/**
 * A small pretty printer (no pino-pretty dependency): `12:01:02.345 INFO  msg key=value`.
 * Input lines are pino's JSON, already redacted.
 */
function prettyStream(out: { write(chunk: string): unknown }): DestinationStream {
  let pending = "";
  return new Writable({
    write(chunk: Buffer | string, _enc, done) {
      pending += chunk.toString();
      let nl: number;
      while ((nl = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        out.write(`${prettyLine(line)}\n`);
      }
      done();
    },
  });
}

function prettyLine(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof rec.time === "number" ? new Date(rec.time).toISOString().slice(11, 23) : "";
  const level = (LEVEL_NAMES[rec.level as number] ?? String(rec.level)).padEnd(5);
  const rest = Object.entries(rec)
    .filter(([k]) => !OMIT_IN_PRETTY.has(k))
    .map(([k, v]) => {
      if (k === "err" && v && typeof v === "object" && "stack" in v)
        return `\n    ${String((v as { stack: unknown }).stack).replace(/\n/g, "\n    ")}`;
      return `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`;
    })
    .join(" ");
  return `${time} ${level} ${String(rec.msg ?? "")}${rest ? ` ${rest}` : ""}`;
}
