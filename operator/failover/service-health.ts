/** What a service's /readyz says (the part the failover reads). */
interface ReadyzBody {
  checks?: Array<{ name?: string; info?: Record<string, string> }>;
}

/** One service's /readyz: its HTTP status and the database endpoint it reports, if any. */
async function probeReadyz(url: string, timeoutMs: number): Promise<{ status: number; endpoint: string | undefined }> {
  const res = await fetch(`${url.replace(/\/$/, "")}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let body: ReadyzBody = {};
  try {
    body = JSON.parse(text) as ReadyzBody;
  } catch {
    // Not JSON: no endpoint reported.
  }
  return { status: res.status, endpoint: body.checks?.find((c) => c.name === "database")?.info?.endpoint };
}

/**
 * Checks that every Nexus service answers ready: GET <url>/readyz must return 200 (the
 * services' readiness includes their database and event bus). With `expectedEndpoint`, a
 * service whose `database` check reports another endpoint (`info.endpoint`: it has not seen
 * the new flags yet, or could not switch) fails too, so writes are not unfrozen while a pod
 * still talks to the old primary. A service that reports no endpoint (embedded database) is
 * judged by its status alone. Returns the failures.
 */
export async function checkServicesReady(
  urls: readonly string[],
  options: { expectedEndpoint?: string; timeoutMs?: number } = {},
): Promise<string[]> {
  const failures: string[] = [];
  await Promise.all(
    urls.map(async (url) => {
      try {
        const { status, endpoint } = await probeReadyz(url, options.timeoutMs ?? 5_000);
        if (status !== 200) failures.push(`${url}: /readyz answered ${status}`);
        else if (options.expectedEndpoint && endpoint !== undefined && endpoint !== options.expectedEndpoint) {
          failures.push(`${url}: still on database ${endpoint}, not ${options.expectedEndpoint} yet`);
        }
      } catch (err) {
        failures.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  return failures.sort();
}

/**
 * The services whose /readyz reports a database endpoint other than `endpoint`, whatever
 * their status (a pod that failed to switch answers 503 and still names the old one).
 * Unreachable services and services that report no endpoint are not listed: they write
 * nowhere, or nowhere this check can see.
 */
export async function servicesOffEndpoint(urls: readonly string[], endpoint: string, timeoutMs = 5_000): Promise<string[]> {
  const off: string[] = [];
  await Promise.all(
    urls.map(async (url) => {
      const reported = await probeReadyz(url, timeoutMs).then(
        (r) => r.endpoint,
        () => undefined,
      );
      if (reported !== undefined && reported !== endpoint) off.push(`${url} is on ${reported}`);
    }),
  );
  return off.sort();
}
