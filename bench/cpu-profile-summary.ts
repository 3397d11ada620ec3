// Where a process's threads spent their time: reads the .cpuprofile files `node --cpu-prof` writes
// (one per thread: the main thread and each worker) and prints, per file, the busy seconds (all
// samples but idle) and the functions with the most self time.
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bin/pairpref.mjs serve --model models/default --port 50078
//   node bin/pairpref.mjs score --server 127.0.0.1:50078 --input ../shared/data/arena-hard-pairs.csv.gz \
//        --output /tmp/out.csv --window 256          # then stop the server (SIGTERM) to write the profiles
//   node --import tsx bench/cpu-profile-summary.ts /tmp/prof [--top 6]
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}
interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface ThreadSummary {
  readonly file: string;
  readonly seconds: number;
  readonly busy_seconds: number;
  readonly top: readonly { readonly fn: string; readonly seconds: number }[];
}

/** Self time per function of one profile; `(idle)` is the thread waiting. */
export function summarize(file: string, p: Profile, top: number): ThreadSummary {
  const names = new Map(p.nodes.map((n) => [n.id, `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop() ?? ''}:${n.callFrame.lineNumber}`]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const us = p.timeDeltas[i] ?? 0;
    const fn = names.get(id) ?? '?';
    self.set(fn, (self.get(fn) ?? 0) + us);
    total += us;
  });
  const idle = [...self].filter(([fn]) => fn.startsWith('(idle)')).reduce((a, [, us]) => a + us, 0);
  const busy = [...self].filter(([fn]) => !fn.startsWith('(idle)')).sort((a, b) => b[1] - a[1]);
  const s = (us: number): number => Math.round(us / 1e4) / 100;
  return { file, seconds: s(total), busy_seconds: s(total - idle), top: busy.slice(0, top).map(([fn, us]) => ({ fn, seconds: s(us) })) };
}

function main(): void {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '6' } } });
  const dir = positionals[0];
  if (!dir) throw new Error('usage: node --import tsx bench/cpu-profile-summary.ts DIR [--top N]');
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  for (const f of files) {
    const t = summarize(f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile, Number(values.top));
    console.log(`${t.file}: ${t.busy_seconds} s busy of ${t.seconds} s`);
    for (const x of t.top) console.log(`  ${x.seconds.toFixed(2).padStart(7)} s  ${x.fn}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
