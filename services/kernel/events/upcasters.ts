import type { RecordedEvent } from "./ports.js";

/**
 * Upcasting (R8): events are immutable, so when an event's payload shape changes the old
 * events stay as they were written, and every read upgrades them — one registered step per
 * version (v1 → v2, v2 → v3, …), applied in order until the current shape. The store stamps
 * the current version on each new event of a type that has upcasters (`metadata.schemaVersion`;
 * absent means 1), so a stored event always says which shape it has.
 *
 * Reads through event-store.ts (readStream, readAll, readEvent, …) — and so the relay, the
 * local bus, rehydration and the change feed — all see the current shape.
 */
export interface Upcaster {
  /** The stored event type this step reads, e.g. "nexus.events.v1.TenantSuspended". */
  type: string;
  /** The shape version it reads (1 for events written before the type had a version). */
  fromVersion: number;
  /** The type after the step, when the event was renamed (default: the same type). */
  toType?: string;
  /** The payload in shape `fromVersion + 1`; `event` gives the envelope (time, stream, metadata). */
  upcast(payload: unknown, event: RecordedEvent): unknown;
}

const steps = new Map<string, Upcaster>();
const current = new Map<string, number>();

const keyOf = (type: string, version: number) => `${type}@${version}`;

/**
 * Registers one upgrade step (at module load, next to the event's mapping). Registering the
 * same (type, fromVersion) twice with another function is a programming error and throws.
 */
export function registerUpcaster(step: Upcaster): void {
  if (!Number.isInteger(step.fromVersion) || step.fromVersion < 1) throw new Error(`upcaster ${step.type}: fromVersion must be ≥ 1`);
  const key = keyOf(step.type, step.fromVersion);
  const existing = steps.get(key);
  if (existing !== undefined && existing.upcast !== step.upcast) throw new Error(`an upcaster for ${key} is already registered`);
  steps.set(key, step);
  const target = step.toType ?? step.type;
  current.set(target, Math.max(current.get(target) ?? 1, step.fromVersion + 1));
}

/** The current shape version of `type` (1 unless upcasters raised it). */
export function currentSchemaVersion(type: string): number {
  return current.get(type) ?? 1;
}

/** The registered steps, for ListEventTypes: type → versions it upgrades from. */
export function registeredUpcasters(): readonly Upcaster[] {
  return [...steps.values()];
}

/** Removes every registered step (tests). */
export function clearUpcasters(): void {
  steps.clear();
  current.clear();
}

/** The event in its type's current shape (the same object when nothing applies). */
export function upcast(event: RecordedEvent): RecordedEvent {
  if (steps.size === 0) return event;
  let version = Number(event.metadata.schemaVersion ?? "1");
  if (!Number.isInteger(version) || version < 1) version = 1;
  let out = event;
  for (let guard = 0; guard < 64; guard++) {
    const step = steps.get(keyOf(out.type, version));
    if (step === undefined) return out;
    version += 1;
    out = {
      ...out,
      type: step.toType ?? out.type,
      payload: step.upcast(out.payload, out),
      metadata: { ...out.metadata, schemaVersion: String(version) },
    };
  }
  throw new Error(`upcasters for ${event.type} form a chain longer than 64 steps`);
}
