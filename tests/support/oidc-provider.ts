import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import Provider from "oidc-provider";
import { type AuthHarness, startAuthHarness } from "./auth-harness.js";

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
  /** The person the provider's login page signs in next (their client id names them). */
  signInAs(clientId: string): void;
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

/** The web client Nexus signs people in with (authorization code + PKCE). */
export interface TestWebClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** Further redirect URIs (a test acting as a client application itself). */
  extraRedirectUris?: string[];
}

/**
 * Starts a provider on `port` (from the test's assigned range) for these people. With
 * `webClient`, browsers can sign in (authorization code flow): the provider's login and consent
 * steps are completed for the person named by `signInAs`, as if they typed their password.
 */
export async function startOpenIdProvider(
  port: number,
  people: readonly TestPerson[],
  webClient?: TestWebClient,
): Promise<TestOpenIdProvider> {
  const issuer = `http://127.0.0.1:${port}`;
  const byClient = new Map(people.map((p) => [p.clientId, p]));
  let keys: JWK[] = [await signingKey("k1")];
  let current: TestPerson | undefined;
  let generation = 1;
  const build = () =>
    new Provider(issuer, {
      clients: [
        ...people.map((p) => ({
          client_id: p.clientId,
          client_secret: CLIENT_SECRET,
          grant_types: ["client_credentials"],
          redirect_uris: [],
          response_types: [],
        })),
        ...(webClient
          ? [
              {
                client_id: webClient.clientId,
                client_secret: webClient.clientSecret,
                // refresh_token: a client that asks for offline_access gets refresh tokens (tokens tests).
                grant_types: ["authorization_code", "refresh_token"],
                redirect_uris: [webClient.redirectUri, ...(webClient.extraRedirectUris ?? [])],
                response_types: ["code" as const],
                token_endpoint_auth_method: "client_secret_basic" as const,
              },
            ]
          : []),
      ],
      // People: the account id is the person's client id; the ID token carries e-mail and groups.
      findAccount: (_ctx: unknown, id: string) => {
        const person = people.find((p) => p.clientId === id);
        return person
          ? { accountId: id, claims: () => ({ sub: id, email: person.email, name: person.email, groups: person.groups }) }
          : undefined;
      },
      claims: { openid: ["sub"], email: ["email"], profile: ["name"], groups: ["groups"] },
      scopes: ["openid", "email", "profile", "groups", "offline_access"],
      conformIdTokenClaims: false,
      interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
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
      extraTokenClaims: (_ctx: unknown, token: { clientId?: string; accountId?: string }) => {
        // A person's own token (authorization code, refresh) names them by account; a machine client by client id.
        const person =
          (token.accountId ? people.find((p) => p.clientId === token.accountId) : undefined) ??
          (token.clientId ? byClient.get(token.clientId) : undefined);
        return person ? { email: person.email, groups: person.groups } : undefined;
      },
    });
  let provider = build();
  const server: Server = createServer((req, res) => {
    if (req.url?.startsWith("/interaction/")) {
      // The login page: completes login and consent for the current person.
      void (async () => {
        const details = await provider.interactionDetails(req, res);
        if (!current) throw new Error("signInAs was not called");
        const grant = new provider.Grant({ accountId: current.clientId, clientId: String(details.params.client_id) });
        grant.addOIDCScope(String(details.params.scope));
        if (typeof details.params.resource === "string") grant.addResourceScope(details.params.resource, "api");
        const grantId = await grant.save();
        await provider.interactionFinished(
          req,
          res,
          { login: { accountId: current.clientId }, consent: { grantId } },
          { mergeWithLastSubmission: false },
        );
      })().catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    provider.callback()(req, res);
  });
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
    signInAs(clientId) {
      current = people.find((p) => p.clientId === clientId);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** What a browser ends with after following a sign-in from Nexus through the provider and back. */
export interface BrowserSignIn {
  /** The status of Nexus's callback answer. */
  status: number;
  /** Nexus's `nexus_session` cookie value, when set. */
  session: string | undefined;
  /** Where Nexus sends the browser next. */
  location: string | null;
  /** The callback's body (refusals are JSON). */
  body: string;
  /** The URL of Nexus's callback as the provider redirected to it. */
  callbackUrl: string;
}

/**
 * Follows a sign-in like a browser: `GET loginUrl` at Nexus, the redirects to and through the
 * provider (keeping its cookies), until the provider redirects back to `callbackPrefix`; then
 * calls that callback (unless `stopAtCallback`) and reports what Nexus answered.
 */
export async function browserSignIn(loginUrl: string, callbackPrefix: string, stopAtCallback = false): Promise<BrowserSignIn> {
  const jar = new Map<string, string>();
  let url = loginUrl;
  for (let hop = 0; hop < 20; hop++) {
    if (url.startsWith(callbackPrefix)) break;
    const res = await fetch(url, { redirect: "manual", headers: { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const [name, ...value] = (pair ?? "").split("=");
      if (name) jar.set(name.trim(), value.join("="));
    }
    const location = res.headers.get("location");
    if (!location) return { status: res.status, session: undefined, location: null, body: await res.text(), callbackUrl: "" };
    await res.body?.cancel();
    url = new URL(location, url).toString();
  }
  if (stopAtCallback) return { status: 0, session: undefined, location: null, body: "", callbackUrl: url };
  const res = await fetch(url, { redirect: "manual" });
  const cookie = res.headers.getSetCookie().find((c) => c.startsWith("nexus_session="));
  return {
    status: res.status,
    session: cookie?.split(";")[0]?.slice("nexus_session=".length) || undefined,
    location: res.headers.get("location"),
    body: await res.text(),
    callbackUrl: url,
  };
}

/** The secret of the web client `startSignInHarness` registers. */
export const WEB_CLIENT_SECRET = "web-secret-value";

/**
 * An auth-only harness (a keyring to seal client secrets, answers cached for 10 minutes so that
 * only events can end them) and a provider on `port` whose web client `nexus-web` redirects to
 * the harness's OpenID callback: what sign-in tests start with.
 */
export async function startSignInHarness(
  port: number,
  people: readonly TestPerson[],
): Promise<{ h: AuthHarness; idp: TestOpenIdProvider }> {
  const h = await startAuthHarness({
    services: ["auth"],
    env: { NEXUS_MASTER_KEYS: `1:${randomBytes(32).toString("base64")}`, NEXUS_AUTH_CACHE_TTL_MS: "600000" },
  });
  const idp = await startOpenIdProvider(port, people, {
    clientId: "nexus-web",
    clientSecret: WEB_CLIENT_SECRET,
    redirectUri: `${h.url}/auth/oidc/callback`,
  });
  return { h, idp };
}
