/**
 * Checks that every Nexus service answers ready: GET <url>/readyz must return 200 (the
 * services' readiness includes their database and event bus). Returns the failures.
 */
export async function checkServicesReady(urls: readonly string[], timeoutMs = 5_000): Promise<string[]> {
  const failures: string[] = [];
  await Promise.all(
    urls.map(async (url) => {
      try {
        const res = await fetch(`${url.replace(/\/$/, "")}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
        if (res.status !== 200) failures.push(`${url}: /readyz answered ${res.status}`);
        await res.body?.cancel();
      } catch (err) {
        failures.push(`${url}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  return failures.sort();
}
