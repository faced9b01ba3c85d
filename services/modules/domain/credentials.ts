import { domainError } from "../../kernel/errors.js";

/**
 * The credential set of a tenant (REQ-023): the secrets modules need, each sealed with the
 * kernel keyring (purpose `modules.credentials`) before it reaches this aggregate. Neither
 * the state nor any event holds a plaintext; events name the credential only.
 */

/** One sealed credential. */
export interface SealedCredential {
  sealed: string;
  updatedAt: string;
}

/** A tenant's credentials by name. */
export interface CredentialsState {
  entries: Record<string, SealedCredential>;
}

// ---- Events ----

/** A credential was set or replaced. */
export interface CredentialSet {
  type: "CredentialSet";
  name: string;
  sealed: string;
  at: string;
}

/** A credential was deleted. */
export interface CredentialDeleted {
  type: "CredentialDeleted";
  name: string;
}

/** Every event of a credential set. */
export type CredentialEvent = CredentialSet | CredentialDeleted;

/** The state after `event`. */
export function evolveCredentials(state: CredentialsState | undefined, event: CredentialEvent): CredentialsState {
  const entries = { ...(state?.entries ?? {}) };
  switch (event.type) {
    case "CredentialSet":
      entries[event.name] = { sealed: event.sealed, updatedAt: event.at };
      return { entries };
    case "CredentialDeleted":
      delete entries[event.name];
      return { entries };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

// ---- Commands ----

/** Set (or replace) a credential; `sealed` is the keyring's sealed text. */
export interface SetCredential {
  type: "SetCredential";
  name: string;
  sealed: string;
  at: string;
}

/** Delete a credential. */
export interface DeleteCredential {
  type: "DeleteCredential";
  name: string;
}

/** Every command of a credential set. */
export type CredentialCommand = SetCredential | DeleteCredential;

/** The events a command records, or a refusal. */
export function decideCredentials(command: CredentialCommand, state: CredentialsState | undefined): CredentialEvent[] {
  switch (command.type) {
    case "SetCredential":
      return [{ type: "CredentialSet", name: command.name, sealed: command.sealed, at: command.at }];
    case "DeleteCredential":
      if (!state?.entries[command.name])
        throw domainError("NOT_FOUND", `no credential named ${command.name}`, { credential: command.name });
      return [{ type: "CredentialDeleted", name: command.name }];
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}

const NAME = /^[A-Z][A-Z0-9_]{0,63}$/;
// Control characters would end up in HTTP headers (header injection) or logs.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find them
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * THE credential validation (REQ-023): every path that stores or uses a credential goes
 * through it — SetCredential before sealing, and the tool runner after opening. A name is
 * `[A-Z][A-Z0-9_]{0,63}`; a value is 1-8192 characters without control characters or
 * surrounding whitespace. Throws INVALID_ARGUMENT naming the problem, never the value.
 */
export function validateCredential(name: string, value: string): void {
  if (!NAME.test(name))
    throw domainError("INVALID_ARGUMENT", `credential name ${JSON.stringify(name.slice(0, 70))} must match [A-Z][A-Z0-9_]{0,63}`, {
      field: "name",
    });
  if (value.length === 0 || value.length > 8192)
    throw domainError("INVALID_ARGUMENT", `credential ${name} must be 1-8192 characters`, { field: "value" });
  if (CONTROL.test(value))
    throw domainError("INVALID_ARGUMENT", `credential ${name} contains control characters (newlines, tabs): paste the bare secret`, {
      field: "value",
    });
  if (value.trim() !== value)
    throw domainError("INVALID_ARGUMENT", `credential ${name} starts or ends with whitespace: paste the bare secret`, { field: "value" });
}
