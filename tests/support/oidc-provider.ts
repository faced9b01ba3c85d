import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider from "oidc-provider";

/**
 * A REAL OpenID provider for tests: the certified `oidc-provider` package (an OpenID Certified
 * authorization server), started on this machine. Machine clients (client_credentials) get JWT
 * access tokens (RFC 9068) for a resource; each client stands for one person, whose e-mail and
 * groups the provider puts in the token (`extraTokenClaims`, as Okta's and Entra ID's custom
 * claims do). `rotateKeys` replaces the signing key while the HTTP server keeps running, like a
 * provider's scheduled key rotation.
 */
export interface TestOpenIdProvider {
  /** The issuer identifier (`iss`). */
  issuer: string;
  /** A client_credentials access token of `clientId` for `resource` (the token's audience). */
  token(clientId: string, resource?: string): Promise<string>;
  /** Signs with a new key from now on; `keepOld` keeps the previous key published (a graceful rotation). */
  rotateKeys(keepOld: boolean): Promise<void>;
  /** The key ids published now. */
  publishedKids(): string[];
  close(): Promise<void>;
}

/** A person behind a machine client. */
export interface TestPerson {
  clientId: string;
  email: string;
  groups: string[];
}

/** The resource (audience) tokens are issued for unless the test asks for another. */
export const NEXUS_AUDIENCE = "https://api.nexus.test";
/** Every test client's secret. */
export const CLIENT_SECRET = "test-client-secret-0123456789";

async function signingKey(kid: string): Promise<JWK> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  return { ...(await exportJWK(privateKey)), kid, use: "sig", alg: "RS256" };
}

/** Starts a provider on `port` (from the test's assigned range) for these people. */
export async function startOpenIdProvider(port: number, people: readonly TestPerson[]): Promise<TestOpenIdProvider> {
  const issuer = `http://127.0.0.1:${port}`;
  const byClient = new Map(people.map((p) => [p.clientId, p]));
  let keys: JWK[] = [await signingKey("k1")];
  let generation = 1;
  const build = () =>
    new Provider(issuer, {
      clients: people.map((p) => ({
        client_id: p.clientId,
        client_secret: CLIENT_SECRET,
        grant_types: ["client_credentials"],
        redirect_uris: [],
        response_types: [],
      })),
      jwks: { keys },
      ttl: { ClientCredentials: 300 },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => NEXUS_AUDIENCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resource: string) => ({
            audience: resource,
            scope: "api",
            accessTokenTTL: 300,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: "RS256" } },
          }),
        },
      },
      extraTokenClaims: (_ctx: unknown, token: { clientId?: string }) => {
        const person = token.clientId ? byClient.get(token.clientId) : undefined;
        return person ? { email: person.email, groups: person.groups } : undefined;
      },
    });
  let provider = build();
  const server: Server = createServer((req, res) => provider.callback()(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  if (actual !== port) throw new Error(`provider listens on ${actual}, not ${port}`);
  return {
    issuer,
    async token(clientId, resource = NEXUS_AUDIENCE) {
      const res = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded",
          authorization: `Basic ${Buffer.from(`${clientId}:${CLIENT_SECRET}`).toString("base64")}`,
        },
        body: new URLSearchParams({ grant_type: "client_credentials", scope: "api", resource }).toString(),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!res.ok || !body.access_token) throw new Error(`token request failed: ${res.status} ${body.error} ${body.error_description}`);
      return body.access_token;
    },
    async rotateKeys(keepOld) {
      generation += 1;
      const next = await signingKey(`k${generation}`);
      keys = keepOld ? [next, ...keys] : [next];
      provider = build();
    },
    publishedKids: () => keys.map((k) => String(k.kid)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
