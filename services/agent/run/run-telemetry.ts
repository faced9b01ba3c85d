import { Code, ConnectError } from "@connectrpc/connect";
import { type Attributes, type Context, context, type Span, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { GEN_AI, GEN_AI_OPERATION } from "../telemetry/gen-ai-attributes.js";
import { grpcCodeName } from "./run-errors.js";
import type { RunStep } from "./run-state.js";

/** Instrumentation scope of the agent's run spans. */
export const AGENT_TRACER = "nexus.agent";

/**
 * Marks a span as failed by `err`: `error.type` is the gRPC code name, and the span's status
 * is ERROR unless the error is a cancellation (a client that hangs up is not a fault of the
 * operation). The one place span error bookkeeping is written.
 */
export function markSpanError(span: Span, err: unknown): void {
  const ce = ConnectError.from(err);
  span.setAttribute(GEN_AI.ERROR_TYPE, grpcCodeName(ce.code));
  if (ce.code !== Code.Canceled) span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
}

/** What identifies a run in its spans. */
export interface RunSpanIdentity {
  runId: string;
  tenantId: string;
  corpusId: string;
}

/**
 * The spans of one run: the `invoke_agent nexus` span (child of the RPC span), one
 * `agent.<step>` span per step, and the GenAI client spans (`retrieval <corpus>`,
 * `chat <model>`) beneath them. Every span that ends in an error goes through
 * {@link markSpanError}.
 */
export class RunTelemetry {
  private readonly tracer = trace.getTracer(AGENT_TRACER);
  private readonly runSpan: Span;
  /** The context whose active span is the run span. */
  readonly context: Context;

  constructor(identity: RunSpanIdentity) {
    this.runSpan = this.tracer.startSpan("invoke_agent nexus", {
      kind: SpanKind.INTERNAL,
      attributes: {
        [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATION.INVOKE_AGENT,
        [GEN_AI.AGENT_NAME]: "nexus",
        [GEN_AI.DATA_SOURCE_ID]: identity.corpusId,
        "nexus.request_id": identity.runId,
        "nexus.tenant_id": identity.tenantId,
      },
    });
    this.context = trace.setSpan(context.active(), this.runSpan);
  }

  /** Adds attributes to the run span. */
  annotate(attributes: Attributes): void {
    this.runSpan.setAttributes(attributes);
  }

  /** Runs `fn` in the run span's context (spans started inside become its children). */
  within<T>(fn: () => T): T {
    return context.with(this.context, fn);
  }

  /** Runs a step inside its span `agent.<step>` (a child of the run span). */
  step<T>(step: RunStep, fn: () => Promise<T>): Promise<T> {
    return this.span(`agent.${step}`, { attributes: { "nexus.run.step": step } }, () => fn(), this.context);
  }

  /**
   * Runs `fn` inside a new span (child of `parent`, default the active context), ends it, and
   * marks it failed when `fn` throws (with what `errorOf` makes of the error, default the error).
   */
  async span<T>(
    name: string,
    options: { kind?: SpanKind; attributes?: Attributes; errorOf?: (err: unknown) => unknown },
    fn: (span: Span) => Promise<T>,
    parent: Context = context.active(),
  ): Promise<T> {
    const span = this.tracer.startSpan(
      name,
      { ...(options.kind !== undefined ? { kind: options.kind } : {}), ...(options.attributes ? { attributes: options.attributes } : {}) },
      parent,
    );
    try {
      return await context.with(trace.setSpan(parent, span), () => fn(span));
    } catch (err) {
      markSpanError(span, options.errorOf ? options.errorOf(err) : err);
      throw err;
    } finally {
      span.end();
    }
  }

  /** Ends the run span: its outcome, CPU seconds, and the failure if any (a refusal has outcome "refused"). */
  end(outcome: string, cpuSeconds: number | undefined, failure: ConnectError | undefined): void {
    this.runSpan.setAttribute("nexus.run.outcome", outcome);
    if (cpuSeconds !== undefined) this.runSpan.setAttribute("nexus.cpu_seconds", cpuSeconds);
    if (failure) markSpanError(this.runSpan, failure);
    this.runSpan.end();
  }
}
