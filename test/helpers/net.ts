// Loopback plumbing shared by the integration tests: a free port, one value from a /metrics scrape.
import { createServer, type AddressInfo } from 'node:net';

/** A TCP port free on 127.0.0.1 right now (for a listener that must be told its port in advance). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** The value of one sample line (`name{labels} value`) of a Prometheus text scrape, or null when it has none. */
export function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

/** One sample scraped from the server's /metrics (127.0.0.1:metricsPort); 0 when the series has no line yet. */
export async function metric(server: { readonly metricsPort: number | null }, series: string): Promise<number> {
  if (server.metricsPort === null) throw new Error('the server has no metrics port (start it with metricsPort: 0)');
  const text = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
  return sample(text, series) ?? 0;
}
