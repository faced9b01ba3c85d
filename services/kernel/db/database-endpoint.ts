import { readFile } from "node:fs/promises";

/**
 * The database endpoint a failover points the services at.
 *
 * The operator writes the new primary's `host:port` to the `databaseEndpoint` key of the
 * runtime ConfigMap, which the chart mounts into every service pod at /etc/nexus/runtime. A
 * process started with DATABASE_URL connects to that endpoint instead of the URL's own host
 * and port, keeping the URL's user, password, database and options: a streaming replica
 * promoted by a failover has the same roles and databases as the primary it copied, so only
 * the address changes.
 */

/** `host:port`, the form the runtime ConfigMap holds. IPv6 hosts go in brackets: `[::1]:5432`. */
export interface DatabaseEndpoint {
  host: string;
  port: number;
}

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** Parses `host:port`; throws an Error saying what is wrong with the text. */
export function parseDatabaseEndpoint(text: string): DatabaseEndpoint {
  const value = text.trim();
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:\s]+):(\d{1,5})$/.exec(value);
  if (!m) throw new Error(`database endpoint ${JSON.stringify(value)} is not host:port (e.g. pg.eu-west-1.internal:5432)`);
  const host = m[1]!;
  const port = Number(m[2]);
  if (port < 1 || port > 65_535) throw new Error(`database endpoint ${JSON.stringify(value)} has port ${port}, outside 1–65535`);
  if (!host.startsWith("[") && !HOST.test(host)) {
    throw new Error(`database endpoint ${JSON.stringify(value)} has an invalid host name ${JSON.stringify(host)}`);
  }
  return { host, port };
}

/** `host:port` of an endpoint. */
export function formatDatabaseEndpoint(endpoint: DatabaseEndpoint): string {
  return `${endpoint.host}:${endpoint.port}`;
}

/** The endpoint a `postgres://` URL connects to (port 5432 when the URL names none). */
export function endpointOfUrl(url: string): DatabaseEndpoint {
  const u = new URL(url);
  const host = u.searchParams.get("host") ?? u.hostname;
  return { host: host || "localhost", port: Number(u.port || 5432) };
}

/**
 * `url` with its host and port replaced by `endpoint`; user, password, database and query
 * options stay. A `host` query parameter (a Unix socket directory) is dropped, since it would
 * win over the URL's host.
 */
export function databaseUrlAt(url: string, endpoint: DatabaseEndpoint): string {
  const u = new URL(url);
  u.hostname = endpoint.host;
  u.port = String(endpoint.port);
  u.searchParams.delete("host");
  return u.toString();
}

/**
 * Reads the endpoint file: undefined when it is missing or empty (no failover has spoken:
 * use DATABASE_URL as it is); throws when it holds something that is not `host:port`, naming
 * the file.
 */
export async function readDatabaseEndpoint(file: string): Promise<DatabaseEndpoint | undefined> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw new Error(`cannot read the database endpoint file ${file}: ${(err as Error).message}`);
  }
  if (text.trim() === "") return undefined;
  try {
    return parseDatabaseEndpoint(text);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
}
