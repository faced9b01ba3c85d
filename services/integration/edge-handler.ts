import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { EdgeService } from "../../gen/nexus/integration/v1/edge_service_pb.js";
import { principalOf, tenantScope } from "../kernel/authz/tenant-scope.js";
import type { Database } from "../kernel/db/ports.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";

/**
 * nexus.integration.v1.EdgeService: what an edge agent (`nexus edge`, docs/edge.md) syncs — the
 * tenant's sender apps with the SHA-256 digests of their current keys, so the agent checks app
 * keys without the hub and never holds a key.
 */
export function edgeRoutes(db: Database): ApiHandler {
  const impl: Pick<ServiceImpl<typeof EdgeService>, "getEdgeConfig"> = {
    async getEdgeConfig(req: { tenantId: string }, ctx: HandlerContext) {
      const tenantId = tenantScope(principalOf(ctx), req.tenantId);
      const r = await db.query("SELECT id, key_digest, encryption_required FROM integration.sender_apps WHERE tenant_id = $1 ORDER BY id", [
        tenantId,
      ]);
      return {
        apps: r.rows.map((row) => ({
          appId: row.id as string,
          keyDigest: new Uint8Array(row.key_digest as Buffer),
          encryptionRequired: row.encryption_required as boolean,
        })),
        syncedAt: timestampFromDate(new Date()),
      };
    },
  };
  return handle(EdgeService, impl as never);
}
