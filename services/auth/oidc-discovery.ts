/** What the discovery document of an OpenID issuer tells Nexus. */
export interface Discovery {
  jwksUri: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
}

/** The issuer's discovery document could not be used; the message says why. */
export class DiscoveryFailed extends Error {
  constructor(
    message: string,
    readonly url: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "DiscoveryFailed";
  }
}

/**
 * Reads `<issuer>/.well-known/openid-configuration` (no redirects, with a deadline) and checks
 * that it names `issuer` and publishes a `jwks_uri`; {@link DiscoveryFailed} otherwise.
 */
export async function discoverIssuer(issuer: string, timeoutMs: number): Promise<Discovery> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  let doc: Record<string, unknown>;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: "error" });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    doc = (await res.json()) as Record<string, unknown>;
  } catch (err) {
    throw new DiscoveryFailed(`the issuer's discovery document (${url}) could not be read: ${(err as Error).message}`, url, { cause: err });
  }
  if (doc.issuer !== issuer) throw new DiscoveryFailed(`the discovery document names issuer "${String(doc.issuer)}", not "${issuer}"`, url);
  const jwksUri = typeof doc.jwks_uri === "string" ? doc.jwks_uri : "";
  if (!jwksUri) throw new DiscoveryFailed("the discovery document has no jwks_uri", url);
  return {
    jwksUri,
    authorizationEndpoint: typeof doc.authorization_endpoint === "string" ? doc.authorization_endpoint : "",
    tokenEndpoint: typeof doc.token_endpoint === "string" ? doc.token_endpoint : "",
  };
}
