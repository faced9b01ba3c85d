import { randomBytes, timingSafeEqual } from "node:crypto";
import type { Interceptor } from "@connectrpc/connect";
import type { Database } from "../db/ports.js";

/** The header carrying the installation's mesh token on calls between Nexus processes. */
export const MESH_TOKEN_HEADER = "x-nexus-mesh-token";

/**
 * The installation's mesh token: created once in `platform.mesh_token` by the first process
 * and read by every other (they share the database). Calls among Nexus processes carry it, so
 * a run's own Search is not billed to the caller's read allowance a second time. It grants
 * nothing else: every call is still authenticated with the caller's key and checked against the
 * permission table. Keep the database private, like the API key digests.
 */
export async function loadMeshToken(db: Database): Promise<string> {
  await db.query("INSERT INTO platform.mesh_token (token) VALUES ($1) ON CONFLICT (id) DO NOTHING", [
    randomBytes(32).toString("base64url"),
  ]);
  const { rows } = await db.query<{ token: string }>("SELECT token FROM platform.mesh_token");
  return rows[0]!.token;
}

/** Client interceptor for calls to peers: attaches the mesh token. */
export function meshTokenInterceptor(token: string): Interceptor {
  return (next) => (req) => {
    req.header.set(MESH_TOKEN_HEADER, token);
    return next(req);
  };
}

/** Whether request headers carry this installation's mesh token (constant-time comparison). */
export function fromMesh(headers: Headers, token: string | undefined): boolean {
  const presented = headers.get(MESH_TOKEN_HEADER);
  if (!token || presented === null) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}
