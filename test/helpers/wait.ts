// Polling with a bound: every wait in a test names what it waits for and fails after a timeout
// instead of hanging `npm test` (node:test has no default per-test timeout).

/** Resolves once cond() holds; rejects `timed out waiting for <what>` after timeoutMs. */
export async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000, pollMs = 10): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
