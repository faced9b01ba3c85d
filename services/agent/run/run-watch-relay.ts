import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { createInbox, type Msg, type NatsConnection, type Subscription } from "@nats-io/nats-core";
import type { Logger } from "pino";
import { type RunResponse, RunResponseSchema } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import type { RunJournal } from "./run-journal.js";

/**
 * Subject of watch requests for a run, on core NATS. Outside `<prefix>.>` on purpose: that
 * range is captured by the JetStream events stream, and live run events must not be stored.
 */
export const watchSubject = (prefix: string, runId: string) => `${prefix}_live.agent.run.${runId}.watch`;

/** How long a replica waits for the owner of a run to answer a watch request. */
export const WATCH_ASK_TIMEOUT_MS = 2_000;
/** How often a remote watcher says it is still there; the owner stops after 3 silent periods. */
export const WATCH_KEEPALIVE_MS = 3_000;

/** A watch request: who asks (tenant, checked by both ends), from where, and the inbox for the events. */
interface WatchAsk {
  tenantId: string;
  afterSeq: string;
  inbox: string;
}

/** The owner's answer. */
export type WatchAnswer =
  | { ok: true; tenantId: string; sessionId: string; lastSeq: string }
  | { ok: false; tenantId: string; sessionId: string; lastSeq: string; reason: "AFTER_SEQ_PAST_END" | "NOT_FOUND" };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * WatchRun across agent replicas over core NATS (no JetStream, nothing stored). Every replica
 * listens on `<prefix>_live.agent.run.*.watch`; only the replica whose journal holds the run
 * answers (the others stay silent). The asking replica subscribes to a fresh inbox first, then
 * requests `{tenant, after_seq, inbox}`; the owner checks the tenant, answers with the run's
 * tenant and session, attaches a watcher (stopping the resumable run's grace clock) and
 * publishes every event after `after_seq` to the inbox (the protobuf RunResponse), then an
 * empty message once the run's log is closed and read. The asker publishes a keep-alive to
 * `<inbox>.ctl` every WATCH_KEEPALIVE_MS and "stop" when its caller leaves; the owner stops
 * (and detaches) on "stop" or after three silent periods. Events of one publisher on one
 * connection arrive in order; a message lost (slow consumer) shows as a seq gap, which the
 * asker turns into UNAVAILABLE so the client reattaches after its last seq.
 */
export class RunWatchRelay {
  private sub: Subscription | undefined;
  private readonly serving = new Set<() => void>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    private readonly journal: RunJournal,
    private readonly logger: Logger,
  ) {}

  /** Starts answering watch requests for the runs of this replica. */
  start(): void {
    if (this.sub) return;
    this.sub = this.nc.subscribe(`${this.prefix}_live.agent.run.*.watch`, {
      callback: (err, msg) => {
        if (err) {
          this.logger.warn({ err }, "run watch subscription failed");
          return;
        }
        this.answer(msg);
      },
    });
  }

  /** Stops answering and ends every remote watch this replica serves. */
  async stop(): Promise<void> {
    this.sub?.unsubscribe();
    this.sub = undefined;
    for (const end of [...this.serving]) end();
  }

  private answer(msg: Msg): void {
    const runId = msg.subject.slice(`${this.prefix}_live.agent.run.`.length, -".watch".length);
    const run = this.journal.find(runId);
    if (run === undefined || !msg.reply) return;
    let ask: WatchAsk;
    let afterSeq: bigint;
    try {
      ask = JSON.parse(decoder.decode(msg.data)) as WatchAsk;
      afterSeq = BigInt(ask.afterSeq);
    } catch {
      return;
    }
    const base = { tenantId: run.tenantId, sessionId: run.sessionId, lastSeq: String(run.events.lastSeq) };
    const refusal = ask.tenantId !== run.tenantId ? "NOT_FOUND" : afterSeq > run.events.lastSeq ? "AFTER_SEQ_PAST_END" : undefined;
    if (refusal) {
      msg.respond(encoder.encode(JSON.stringify({ ok: false, ...base, reason: refusal } satisfies WatchAnswer)));
      return;
    }
    const leave = run.attachWatcher();
    const abort = new AbortController();
    let lastAlive = Date.now();
    const ctl = this.nc.subscribe(`${ask.inbox}.ctl`, {
      callback: (_err, m) => {
        if (decoder.decode(m.data) === "stop") end();
        else lastAlive = Date.now();
      },
    });
    const check = setInterval(() => {
      if (Date.now() - lastAlive > 3 * WATCH_KEEPALIVE_MS) end();
    }, WATCH_KEEPALIVE_MS);
    check.unref();
    const end = () => {
      if (abort.signal.aborted) return;
      abort.abort();
      clearInterval(check);
      ctl.unsubscribe();
      leave();
      this.serving.delete(end);
    };
    this.serving.add(end);
    msg.respond(encoder.encode(JSON.stringify({ ok: true, ...base } satisfies WatchAnswer)));
    void (async () => {
      try {
        for await (const event of run.events.follow(afterSeq, abort.signal)) {
          if (abort.signal.aborted) return;
          this.nc.publish(ask.inbox, toBinary(RunResponseSchema, event));
        }
        if (!abort.signal.aborted) this.nc.publish(ask.inbox, new Uint8Array());
      } catch (err) {
        this.logger.warn({ err, request_id: runId }, "remote run watch ended early");
      } finally {
        end();
      }
    })();
  }

  /**
   * Asks the replica that holds the run to stream its events after `afterSeq`. Undefined when
   * no replica answered within WATCH_ASK_TIMEOUT_MS (none holds the run). Otherwise the owner's
   * answer and, when it accepted, the events (ending after the last one; a seq gap or a silent
   * owner throws, so the caller reattaches).
   */
  async ask(
    tenantId: string,
    runId: string,
    afterSeq: bigint,
    signal: AbortSignal,
    idleMs: number,
  ): Promise<{ answer: WatchAnswer; events?: AsyncGenerator<RunResponse> } | undefined> {
    const inbox = createInbox();
    const incoming = this.nc.subscribe(inbox);
    let reply: Msg;
    try {
      reply = await this.nc.request(
        watchSubject(this.prefix, runId),
        encoder.encode(JSON.stringify({ tenantId, afterSeq: String(afterSeq), inbox } satisfies WatchAsk)),
        { timeout: WATCH_ASK_TIMEOUT_MS },
      );
    } catch {
      incoming.unsubscribe();
      return undefined;
    }
    const answer = JSON.parse(decoder.decode(reply.data)) as WatchAnswer;
    if (!answer.ok) {
      incoming.unsubscribe();
      return { answer };
    }
    if (answer.tenantId !== tenantId) {
      // Checked here too: a run of another tenant is not found, and the owner is told to stop.
      incoming.unsubscribe();
      this.nc.publish(`${inbox}.ctl`, encoder.encode("stop"));
      return { answer: { ...answer, ok: false, reason: "NOT_FOUND" } };
    }
    return { answer, events: this.follow(incoming, inbox, afterSeq, signal, idleMs) };
  }

  private async *follow(
    incoming: Subscription,
    inbox: string,
    afterSeq: bigint,
    signal: AbortSignal,
    idleMs: number,
  ): AsyncGenerator<RunResponse> {
    const keepAlive = setInterval(() => this.nc.publish(`${inbox}.ctl`, encoder.encode("alive")), WATCH_KEEPALIVE_MS);
    keepAlive.unref();
    const onAbort = () => incoming.unsubscribe();
    signal.addEventListener("abort", onAbort, { once: true });
    // The owner publishes at least a heartbeat every NEXUS_AGENT_HEARTBEAT_MS while the run is live;
    // silence far beyond that means the owner is gone.
    let expected = afterSeq + 1n;
    let ended = false;
    let silent = false;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        silent = true;
        incoming.unsubscribe();
      }, idleMs);
      idle.unref();
    };
    arm();
    try {
      for await (const m of incoming) {
        arm();
        if (m.data.length === 0) {
          ended = true;
          return;
        }
        const event = fromBinary(RunResponseSchema, m.data);
        if (event.seq !== expected) throw new Error(`run events from seq ${expected} were lost on the way from the owner replica`);
        expected += 1n;
        yield event;
      }
      if (silent) throw new Error("the owner replica of the run went silent");
    } finally {
      clearTimeout(idle);
      clearInterval(keepAlive);
      signal.removeEventListener("abort", onAbort);
      incoming.unsubscribe();
      if (!ended) this.nc.publish(`${inbox}.ctl`, encoder.encode("stop"));
    }
  }
}
