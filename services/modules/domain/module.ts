import { domainError } from "../../kernel/errors.js";

/**
 * The module aggregate: one module of a tenant with every version ever submitted, its
 * approval trail and the active version. A version is immutable once submitted (its code,
 * manifest and test results); review and activation only move its status and the pointer.
 *
 *   submitted (tests ran) ─► PENDING_REVIEW ─► APPROVED ─► (activated, any number of times)
 *                        └─► TESTS_FAILED           └─► REJECTED
 */

/** Where a version is in its approval. */
export type VersionStatus = "TESTS_FAILED" | "PENDING_REVIEW" | "APPROVED" | "REJECTED";

/** The outcome of one sandbox test of a version. */
export interface TestResult {
  name: string;
  passed: boolean;
  message: string;
  durationMs: number;
}

/** One submitted version. `manifest` is the ModuleManifest's canonical protobuf JSON. */
export interface VersionRecord {
  version: string;
  manifest: Record<string, unknown>;
  code: string;
  codeSha256: string;
  status: VersionStatus;
  testResults: TestResult[];
  submittedBy: string;
  submittedAt: string;
  reviewedBy: string;
  reviewedAt: string;
  feedback: string;
  /** Set when the version was installed from the marketplace: its calls are paid to the creator. */
  source?: { listingId: string; creatorTenantId: string; priceMicrosPerCall: number };
}

// ---- Events ----

/** A version was submitted and its tests ran. */
export interface VersionSubmitted {
  type: "VersionSubmitted";
  record: VersionRecord;
}

/** A version was approved or rejected. */
export interface VersionReviewed {
  type: "VersionReviewed";
  version: string;
  approved: boolean;
  feedback: string;
  reviewer: string;
  at: string;
}

/** The active version changed. */
export interface VersionActivated {
  type: "VersionActivated";
  version: string;
  previousVersion: string;
  at: string;
}

/** Every event of a module. */
export type ModuleEvent = VersionSubmitted | VersionReviewed | VersionActivated;

// ---- State ----

/** A module as its stream says. */
export interface ModuleState {
  tenantId: string;
  name: string;
  versions: VersionRecord[];
  /** "" until a version is activated. */
  activeVersion: string;
  activatedAt: string;
}

/** Names a module: the tenant and the module name. */
export interface ModuleKey {
  tenantId: string;
  name: string;
}

/** The state after `event`. */
export function evolve(state: ModuleState | undefined, event: ModuleEvent, key: ModuleKey): ModuleState {
  const s: ModuleState = state ?? { tenantId: key.tenantId, name: key.name, versions: [], activeVersion: "", activatedAt: "" };
  switch (event.type) {
    case "VersionSubmitted":
      return { ...s, versions: [...s.versions, event.record] };
    case "VersionReviewed":
      return {
        ...s,
        versions: s.versions.map((v) =>
          v.version === event.version
            ? {
                ...v,
                status: event.approved ? "APPROVED" : "REJECTED",
                feedback: event.feedback,
                reviewedBy: event.reviewer,
                reviewedAt: event.at,
              }
            : v,
        ),
      };
    case "VersionActivated":
      return { ...s, activeVersion: event.version, activatedAt: event.at };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---- Commands ----

/** Submit a version whose tests already ran. */
export interface SubmitVersion {
  type: "SubmitVersion";
  record: VersionRecord;
}

/** Approve or reject a version. */
export interface ReviewVersion {
  type: "ReviewVersion";
  version: string;
  approve: boolean;
  feedback: string;
  reviewer: string;
  at: string;
}

/** Make an approved version the active one (activation, upgrade or rollback). */
export interface ActivateVersion {
  type: "ActivateVersion";
  version: string;
  at: string;
}

/** Every command of a module. */
export type ModuleCommand = SubmitVersion | ReviewVersion | ActivateVersion;

function versionOf(state: ModuleState | undefined, key: ModuleKey, version: string): VersionRecord {
  const v = state?.versions.find((x) => x.version === version);
  if (!v) throw domainError("NOT_FOUND", `module ${key.name} has no version ${version}`, { module: key.name, version });
  return v;
}

/** The events a command records, or a refusal. */
export function decide(command: ModuleCommand, state: ModuleState | undefined, key: ModuleKey): ModuleEvent[] {
  switch (command.type) {
    case "SubmitVersion": {
      if (state?.versions.some((v) => v.version === command.record.version)) {
        throw domainError(
          "ALREADY_EXISTS",
          `module ${key.name} already has version ${command.record.version}: versions are immutable, submit a new version number`,
          { module: key.name, version: command.record.version },
        );
      }
      return [{ type: "VersionSubmitted", record: command.record }];
    }
    case "ReviewVersion": {
      const v = versionOf(state, key, command.version);
      if (v.status === "TESTS_FAILED") {
        throw domainError(
          "FAILED_PRECONDITION",
          `version ${v.version} of ${key.name} failed its tests and cannot be reviewed: fix it and submit a new version`,
          {
            module: key.name,
            version: v.version,
            status: v.status,
          },
        );
      }
      if (v.status !== "PENDING_REVIEW") {
        throw domainError("FAILED_PRECONDITION", `version ${v.version} of ${key.name} was already reviewed (${v.status})`, {
          module: key.name,
          version: v.version,
          status: v.status,
        });
      }
      if (!command.approve && command.feedback.trim() === "") {
        throw domainError("INVALID_ARGUMENT", "a rejection needs feedback telling the author what to change", { field: "feedback" });
      }
      return [
        {
          type: "VersionReviewed",
          version: v.version,
          approved: command.approve,
          feedback: command.feedback,
          reviewer: command.reviewer,
          at: command.at,
        },
      ];
    }
    case "ActivateVersion": {
      const v = versionOf(state, key, command.version);
      if (v.status !== "APPROVED") {
        throw domainError(
          "FAILED_PRECONDITION",
          `version ${v.version} of ${key.name} is ${v.status}, only approved versions can be activated`,
          {
            module: key.name,
            version: v.version,
            status: v.status,
          },
        );
      }
      if (state?.activeVersion === v.version) return [];
      return [{ type: "VersionActivated", version: v.version, previousVersion: state?.activeVersion ?? "", at: command.at }];
    }
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}
