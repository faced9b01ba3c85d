import type { CoreV1Api } from "@kubernetes/client-node";
import { isNotFound } from "../kube/api-errors.js";

/**
 * One region's database, from the regions ConfigMap (default `nexus-regions`): each key is a
 * region name, each value JSON `{"endpoint": "host:port", "databaseUrlSecret": "secret-name"}`;
 * the Secret (same namespace) holds the region's PostgreSQL URL under key `DATABASE_URL`. The
 * URL is used to measure replication lag, promote the replica and check it after promotion.
 */
export interface Region {
  name: string;
  endpoint: string;
  databaseUrlSecret: string;
}

/** Key of the database URL inside a region's Secret. */
export const REGION_URL_KEY = "DATABASE_URL";

/** Reads one region (undefined when the ConfigMap or the key is missing or malformed). */
export async function readRegion(core: CoreV1Api, namespace: string, configMap: string, region: string): Promise<Region | undefined> {
  let raw: string | undefined;
  try {
    raw = (await core.readNamespacedConfigMap({ namespace, name: configMap })).data?.[region];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(raw) as { endpoint?: unknown; databaseUrlSecret?: unknown };
    if (typeof parsed.endpoint !== "string" || typeof parsed.databaseUrlSecret !== "string") return undefined;
    return { name: region, endpoint: parsed.endpoint, databaseUrlSecret: parsed.databaseUrlSecret };
  } catch {
    return undefined;
  }
}

/** The region's database URL from its Secret. */
export async function regionDatabaseUrl(core: CoreV1Api, namespace: string, region: Region): Promise<string> {
  const secret = await core.readNamespacedSecret({ namespace, name: region.databaseUrlSecret });
  const b64 = secret.data?.[REGION_URL_KEY];
  if (!b64) throw new Error(`Secret ${region.databaseUrlSecret} has no ${REGION_URL_KEY}`);
  return Buffer.from(b64, "base64").toString("utf8");
}
