import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type ActivateModuleVersionRequest,
  ActivateModuleVersionResponseSchema,
  type BuildModuleRequest,
  BuildModuleResponseSchema,
  type CallToolRequest,
  CallToolResponseSchema,
  CredentialInfoSchema,
  type DeleteCredentialRequest,
  DeleteCredentialResponseSchema,
  type GetModuleRequest,
  GetModuleResponseSchema,
  GetRevenueResponseSchema,
  type InstallListingRequest,
  InstallListingResponseSchema,
  ListCredentialsResponseSchema,
  type ListListingsRequest,
  ListListingsResponseSchema,
  type ListModulesRequest,
  ListModulesResponseSchema,
  type ModulesService,
  type PublishModuleRequest,
  PublishModuleResponseSchema,
  type RateListingRequest,
  RateListingResponseSchema,
  type ReviewListingRequest,
  ReviewListingResponseSchema,
  type ReviewModuleVersionRequest,
  ReviewModuleVersionResponseSchema,
  type SetCredentialRequest,
  SetCredentialResponseSchema,
  type SubmitModuleVersionRequest,
  SubmitModuleVersionResponseSchema,
} from "../../gen/nexus/modules/v1/modules_service_pb.js";
import { platformPrincipal, tenantPrincipal } from "../kernel/authz/tenant-scope.js";
import { domainError } from "../kernel/errors.js";
import { pageTokens } from "../kernel/paging/index.js";
import type { CataloguePosition } from "./adapters/marketplace.js";
import type { ModuleDrafter } from "./builder/module-builder.js";
import type { CredentialStore } from "./credential-store.js";
import type { Marketplace } from "./marketplace.js";
import type { Actor, ModulesApplication } from "./modules-application.js";
import { listingMessage, moduleMessage, versionMessage } from "./proto-mapping.js";

/** Modules are tenant content: what a platform key is told. */
const PLATFORM_KEY_REFUSAL = "modules belong to a tenant: use a key of the tenant";
/** ListModules page tokens: the last module name, bound to the tenant. */
const modulePageTokens = pageTokens<string>({
  write: (name) => name,
  read: (json) => (typeof json === "string" && json.length <= 63 ? json : undefined),
});
/** ListListings page tokens: the last listing's (installs, id), bound to the query. */
const listingPageTokens = pageTokens<CataloguePosition>({
  write: (p) => [p.installs, p.listingId],
  read: (json) =>
    Array.isArray(json) && Number.isSafeInteger(json[0]) && typeof json[1] === "string" && json[1].length <= 64
      ? { installs: json[0] as number, listingId: json[1] }
      : undefined,
});
/** Listings per ListListings page when the request says 0. */
export const DEFAULT_LISTING_PAGE_SIZE = 20;
/** Modules per ListModules page when the request says 0. */
export const DEFAULT_PAGE_SIZE = 50;
/** Repairs a build makes when the request names none. */
export const DEFAULT_MAX_REPAIRS = 3;

/** What the handler needs. */
export interface ModulesHandlerDependencies {
  app: ModulesApplication;
  credentials: CredentialStore;
  /** Drafters by provider name ("template" always; "openai" when configured). */
  drafters: ReadonlyMap<string, ModuleDrafter>;
  marketplace: Marketplace;
}

function actorOf(ctx: HandlerContext): Actor {
  const p = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
  return { tenantId: p.tenantId, keyId: p.keyId };
}

/** nexus.modules.v1.ModulesService. */
export class ModulesHandler implements ServiceImpl<typeof ModulesService> {
  constructor(private readonly deps: ModulesHandlerDependencies) {}

  async submitModuleVersion(req: SubmitModuleVersionRequest, ctx: HandlerContext) {
    const actor = actorOf(ctx);
    if (!req.manifest) throw domainError("INVALID_ARGUMENT", "manifest is required", { field: "manifest" });
    const record = await this.deps.app.submit(actor, req.manifest, req.code);
    return create(SubmitModuleVersionResponseSchema, { version: versionMessage(req.manifest.name, record, true) });
  }

  async buildModule(req: BuildModuleRequest, ctx: HandlerContext) {
    const actor = actorOf(ctx);
    const provider = req.provider || "template";
    const drafter = this.deps.drafters.get(provider);
    if (!drafter) {
      throw domainError("FAILED_PRECONDITION", `provider ${provider} is not configured on this installation (NEXUS_OPENAI_BASE_URL)`, {
        provider,
      });
    }
    const template = req.template === "http-json" ? "http-json" : "transform";
    if (template === "http-json" && req.egressHost === "") {
      throw domainError("INVALID_ARGUMENT", "the http-json template needs egress_host, the host the module may reach", {
        field: "egress_host",
      });
    }
    if (req.egressHost !== "" && !/^[A-Za-z0-9.-]+(:[0-9]{1,5})?$/.test(req.egressHost)) {
      throw domainError("INVALID_ARGUMENT", "egress_host must be host or host:port", { field: "egress_host" });
    }
    const { record, repairs } = await this.deps.app.build(
      actor,
      { name: req.name, version: req.version, spec: req.spec, template, egressHost: req.egressHost },
      drafter,
      req.maxRepairs ?? DEFAULT_MAX_REPAIRS,
    );
    return create(BuildModuleResponseSchema, { version: versionMessage(req.name, record, true), repairs, draftedBy: drafter.name });
  }

  async reviewModuleVersion(req: ReviewModuleVersionRequest, ctx: HandlerContext) {
    const record = await this.deps.app.review(actorOf(ctx), req.name, req.version, req.approve, req.feedback);
    return create(ReviewModuleVersionResponseSchema, { version: versionMessage(req.name, record, true) });
  }

  async activateModuleVersion(req: ActivateModuleVersionRequest, ctx: HandlerContext) {
    const { module, previous } = await this.deps.app.activate(actorOf(ctx), req.name, req.version);
    return create(ActivateModuleVersionResponseSchema, { module: moduleMessage(module, false), previousVersion: previous });
  }

  async getModule(req: GetModuleRequest, ctx: HandlerContext) {
    const module = await this.deps.app.get(actorOf(ctx).tenantId, req.name);
    return create(GetModuleResponseSchema, { module: moduleMessage(module, true) });
  }

  async listModules(req: ListModulesRequest, ctx: HandlerContext) {
    const { tenantId } = actorOf(ctx);
    const binding = { tenantId };
    const after = modulePageTokens.decode(req.pageToken, binding);
    const size = req.pageSize || DEFAULT_PAGE_SIZE;
    const rows = await this.deps.app.list(tenantId, after, size + 1);
    const page = rows.slice(0, size);
    const last = page.at(-1);
    return create(ListModulesResponseSchema, {
      modules: page.map((m) => moduleMessage(m, false)),
      nextPageToken: rows.length > size && last ? modulePageTokens.encode(last.name, binding) : "",
    });
  }

  async callTool(req: CallToolRequest, ctx: HandlerContext) {
    const r = await this.deps.app.callTool(actorOf(ctx).tenantId, req.module, req.tool, req.input ?? {});
    return create(CallToolResponseSchema, {
      output: r.output,
      moduleVersion: r.version,
      cached: r.cached,
      durationMs: r.durationMs,
      listingId: r.listingId,
    });
  }

  async setCredential(req: SetCredentialRequest, ctx: HandlerContext) {
    const actor = actorOf(ctx);
    const at = await this.deps.credentials.set(actor.tenantId, req.name, req.value, actor.keyId);
    return create(SetCredentialResponseSchema, { credential: { name: req.name, updatedAt: timestampFromDate(at) } });
  }

  async listCredentials(_req: unknown, ctx: HandlerContext) {
    const list = await this.deps.credentials.list(actorOf(ctx).tenantId);
    return create(ListCredentialsResponseSchema, {
      credentials: list.map((c) => create(CredentialInfoSchema, { name: c.name, updatedAt: timestampFromDate(c.updatedAt) })),
    });
  }

  async deleteCredential(req: DeleteCredentialRequest, ctx: HandlerContext) {
    const actor = actorOf(ctx);
    await this.deps.credentials.delete(actor.tenantId, req.name, actor.keyId);
    return create(DeleteCredentialResponseSchema, {});
  }

  async publishModule(req: PublishModuleRequest, ctx: HandlerContext) {
    const p = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
    const row = await this.deps.marketplace.publish(
      { tenantId: p.tenantId, keyId: p.keyId, tenantSlug: p.tenantSlug },
      {
        name: req.name,
        version: req.version,
        license: req.license,
        priceMicrosPerCall: Number(req.priceMicrosPerCall),
        summary: req.summary,
      },
    );
    return create(PublishModuleResponseSchema, { listing: listingMessage(row) });
  }

  async reviewListing(req: ReviewListingRequest, ctx: HandlerContext) {
    const operator = platformPrincipal(ctx, "only platform operators review marketplace listings");
    const row = await this.deps.marketplace.review(operator.keyId, req.listingId, req.approve, req.feedback);
    return create(ReviewListingResponseSchema, { listing: listingMessage(row) });
  }

  async listListings(req: ListListingsRequest, ctx: HandlerContext) {
    actorOf(ctx);
    const binding = { query: req.query };
    const after = listingPageTokens.decode(req.pageToken, binding);
    const size = req.pageSize || DEFAULT_LISTING_PAGE_SIZE;
    const rows = await this.deps.marketplace.browse(req.query, after, size + 1);
    const page = rows.slice(0, size);
    const last = page.at(-1);
    return create(ListListingsResponseSchema, {
      listings: page.map(listingMessage),
      nextPageToken:
        rows.length > size && last
          ? listingPageTokens.encode({ installs: last.installCount, listingId: last.state.listingId }, binding)
          : "",
    });
  }

  async installListing(req: InstallListingRequest, ctx: HandlerContext) {
    const module = await this.deps.marketplace.install(actorOf(ctx), req.listingId);
    return create(InstallListingResponseSchema, { module: moduleMessage(module, false) });
  }

  async rateListing(req: RateListingRequest, ctx: HandlerContext) {
    const row = await this.deps.marketplace.rate(actorOf(ctx), req.listingId, req.stars);
    return create(RateListingResponseSchema, { listing: listingMessage(row) });
  }

  async getRevenue(_req: unknown, ctx: HandlerContext) {
    const rows = await this.deps.marketplace.revenue(actorOf(ctx).tenantId);
    return create(GetRevenueResponseSchema, {
      listings: rows.map((r) => ({
        listingId: r.listingId,
        name: r.name,
        version: r.version,
        calls: BigInt(r.calls),
        grossMicros: BigInt(r.gross),
        creatorMicros: BigInt(r.creator),
        platformMicros: BigInt(r.platform),
      })),
    });
  }
}
