import { executeCommand } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import type { Keyring } from "../kernel/keyring/index.js";
import { credentialsAggregate, readCredentials } from "./adapters/postgres.js";
import { validateCredential } from "./domain/credentials.js";

/** The keyring purpose of module credentials (their own data keys per tenant). */
export const CREDENTIALS_PURPOSE = "modules.credentials";

/**
 * THE credential store of modules (REQ-023): values are validated (domain/credentials.ts,
 * the one validation), sealed with the kernel keyring under the tenant's
 * `modules.credentials` data key, and opened only when a tool call needs them. Nothing here
 * logs, returns or publishes a value.
 */
export class CredentialStore {
  constructor(
    private readonly db: Database,
    private readonly keyring: Keyring,
    private readonly clock: () => Date,
  ) {}

  /** Validates, seals and stores a credential; returns when it was set. */
  async set(tenantId: string, name: string, value: string, actor: string): Promise<Date> {
    validateCredential(name, value);
    const sealed = await this.keyring.sealText({ tenantId, purpose: CREDENTIALS_PURPOSE }, value);
    const at = this.clock();
    await executeCommand(
      this.db,
      credentialsAggregate,
      tenantId,
      { type: "SetCredential", name, sealed, at: at.toISOString() },
      { metadata: { tenantId, actor } },
    );
    return at;
  }

  /** Deletes a credential (NOT_FOUND when there is none). */
  async delete(tenantId: string, name: string, actor: string): Promise<void> {
    await executeCommand(this.db, credentialsAggregate, tenantId, { type: "DeleteCredential", name }, { metadata: { tenantId, actor } });
  }

  /** The tenant's credential names with when each was set, by name. */
  async list(tenantId: string): Promise<{ name: string; updatedAt: Date }[]> {
    const entries = await readCredentials(this.db, tenantId);
    return Object.entries(entries)
      .map(([name, e]) => ({ name, updatedAt: new Date(e.updatedAt) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * The opened values of `names` for one call. `required` true: a missing one is
   * FAILED_PRECONDITION CREDENTIAL_MISSING naming it; false (tests at submission): missing
   * ones are left out and the call that needs them fails.
   */
  async resolve(tenantId: string, names: readonly string[], required: boolean): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (names.length === 0) return out;
    const entries = await readCredentials(this.db, tenantId);
    for (const name of names) {
      const e = entries[name];
      if (!e) {
        if (required) {
          throw domainError("CREDENTIAL_MISSING", `the module needs credential ${name}: a tenant admin sets it with SetCredential`, {
            credential: name,
          });
        }
        continue;
      }
      const value = await this.keyring.openText({ tenantId, purpose: CREDENTIALS_PURPOSE }, e.sealed);
      validateCredential(name, value);
      out.set(name, value);
    }
    return out;
  }
}
