import type { RunEventChannel } from "./run-event-channel.js";

/** A run WatchRun can reattach to: its event log and how a watcher holds it alive. */
export interface WatchableRun {
  tenantId: string;
  runId: string;
  sessionId: string;
  /** The run's whole event log (seq from 1). */
  events: RunEventChannel;
  /** A watcher attached (stops a resumable run's grace period); call the result when it leaves. */
  attachWatcher(): () => void;
}

/**
 * The runs of this replica that WatchRun can reattach to: every accepted run while it is in
 * progress, and for `retainMs` after its last event. Only memory (the run's event log is
 * already kept by its channel), so the Run hot path does no extra I/O; a replica that dies
 * takes its journal with it — the answer of a run that completed is in the session.
 */
export class RunJournal {
  private readonly runs = new Map<string, WatchableRun>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly retainMs: number) {}

  private static key(tenantId: string, runId: string): string {
    return `${tenantId}\u0000${runId}`;
  }

  /** Runs held (in progress or retained). */
  get size(): number {
    return this.runs.size;
  }

  /** Holds an accepted run. */
  add(run: WatchableRun): void {
    this.runs.set(RunJournal.key(run.tenantId, run.runId), run);
  }

  /** The run sent its last event: it is forgotten `retainMs` later. */
  ended(run: WatchableRun): void {
    const key = RunJournal.key(run.tenantId, run.runId);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.runs.get(key) === run) this.runs.delete(key);
    }, this.retainMs);
    timer.unref();
    this.timers.add(timer);
  }

  /** The tenant's run, when this replica holds it. */
  get(tenantId: string, runId: string): WatchableRun | undefined {
    return this.runs.get(RunJournal.key(tenantId, runId));
  }

  /** A run by id whatever its tenant (the caller checks the tenant). */
  find(runId: string): WatchableRun | undefined {
    for (const run of this.runs.values()) if (run.runId === runId) return run;
    return undefined;
  }

  /** Forgets every run (shutdown). */
  clear(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.runs.clear();
  }
}
