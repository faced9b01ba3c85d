import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import type { Validator, Violation } from "@bufbuild/protovalidate";
import { createValidator, violationsToProto } from "@bufbuild/protovalidate";
import type { ConnectError, Interceptor } from "@connectrpc/connect";
import { BadRequestSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { domainError } from "../errors.js";
import { storableValueViolations } from "./storable-values.js";

/** Most violations spelled out in the error message. */
const MESSAGE_VIOLATIONS = 5;
/**
 * Most violations carried in the details (and in ErrorInfo `fields`): a 2000-item list of bad
 * values would otherwise make a grpc-status-details-bin trailer larger than HTTP/2 peers accept
 * (the client then sees a reset stream instead of INVALID_ARGUMENT). The message counts the rest.
 */
const DETAIL_VIOLATIONS = 25;

/** The field a violation is about, e.g. "top_k" or "filters.document_ids[2]" ("" = message-level). */
export function violationField(v: Violation): string {
  return pathToString(v.field);
}

/**
 * The INVALID_ARGUMENT error for violations: reason VALIDATION_FAILED, a message naming the
 * fields ("top_k: must be less than or equal to 50"), ErrorInfo metadata `fields`, a
 * google.rpc.BadRequest (field, description, reason = rule id) and the buf.validate.Violations
 * detail protovalidate clients understand (the first 25 violations; the message counts all).
 */
export function validationError(all: readonly Violation[]): ConnectError {
  const violations = all.slice(0, DETAIL_VIOLATIONS);
  const describe = (v: Violation) => {
    const field = violationField(v);
    return field ? `${field}: ${v.message}` : v.message;
  };
  const shown = violations.slice(0, MESSAGE_VIOLATIONS).map(describe);
  const more = all.length - shown.length;
  const message = `invalid request: ${shown.join("; ")}${more > 0 ? `; and ${more} more violation${more > 1 ? "s" : ""}` : ""}`;
  const fields = [...new Set(violations.map(violationField).filter((f) => f !== ""))];
  const err = domainError("VALIDATION_FAILED", message, { fields: fields.join(",") });
  err.details.push({
    desc: BadRequestSchema,
    value: {
      fieldViolations: violations.map((v) => ({ field: violationField(v), description: v.message, reason: v.ruleId })),
    },
  });
  const [proto, schema] = violationsToProto([...violations]);
  err.details.push({ desc: schema, value: proto });
  return err;
}

/**
 * Validates one message: first the rules every request obeys (no NUL in strings, exact 64-bit
 * integers, real timestamps and durations — see {@link storableValueViolations}), then its
 * `buf.validate` rules. Invalid → {@link validationError}; a rule that cannot be compiled or
 * evaluated is our bug, so it throws a plain Error (which the error-normalizing interceptor
 * turns into INTERNAL, logging the cause).
 */
export function assertValid<Desc extends DescMessage>(validator: Validator, schema: Desc, message: MessageShape<Desc>): void {
  const storable = storableValueViolations(schema, message);
  if (storable.length > 0) throw validationError(storable);
  const result = validator.validate(schema, message);
  if (result.kind === "valid") return;
  if (result.kind === "invalid") throw validationError(result.violations);
  throw new Error(`validation rules of ${schema.typeName} failed to evaluate: ${result.error.message}`, {
    cause: result.error,
  });
}

async function* validateEach<T>(source: AsyncIterable<T>, check: (m: T) => void): AsyncGenerator<T> {
  for await (const m of source) {
    check(m);
    yield m;
  }
}

/** Options of {@link validationInterceptor}. */
export interface ValidationOptions {
  /** A shared validator; default: one created with `createValidator()` for this interceptor. */
  validator?: Validator;
}

/**
 * Server interceptor (innermost): validates every request message from its proto's
 * `buf.validate` rules before the handler sees it — each message of a client stream as it
 * arrives. Handlers never repeat shape checks.
 */
export function validationInterceptor(options: ValidationOptions = {}): Interceptor {
  const validator = options.validator ?? createValidator();
  // Not an async function: a valid unary request goes straight on, without a frame of its own.
  return (next) => (req) => {
    const schema = req.method.input;
    const check = (m: MessageShape<typeof schema>) => assertValid(validator, schema, m);
    if (!req.stream) {
      try {
        check(req.message);
      } catch (err) {
        return Promise.reject(err);
      }
      return next(req);
    }
    return next({ ...req, message: validateEach(req.message, check) });
  };
}
