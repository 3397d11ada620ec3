// Result cards: the predicted winner first, then A / B / tie as labelled bars, then the details
// (tokens, latency, provider). Plain DOM, no framework.
import { argmax3 } from '../../core/metrics.ts';
import type { Probs } from '../../core/postprocess.ts';
import { probsOf } from '../../core/result.ts';
import type { ScoredRow } from './engine.ts';

const LABELS = [
  { key: 'a', name: 'Response A', cls: 'a' },
  { key: 'b', name: 'Response B', cls: 'b' },
  { key: 'tie', name: 'Tie', cls: 'tie' },
] as const;

function winnerText(p: Probs): string {
  const w = argmax3(p);
  return w === 2 ? 'Tie' : `${LABELS[w]!.name} wins`;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
const ms = (x: number): string => (x < 10 ? `${x.toFixed(1)} ms` : `${Math.round(x)} ms`);

function span(cls: string, text: string): HTMLSpanElement {
  const s = document.createElement('span');
  s.className = cls;
  s.textContent = text;
  return s;
}

function renderRow(r: ScoredRow, index: number): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'result';
  li.dataset['id'] = r.id;
  const head = document.createElement('div');
  head.className = 'result-head';
  head.append(span('row-id', `#${index + 1} · ${r.id}`));
  if (r.error) {
    li.classList.add('failed');
    head.append(span('verdict verdict-error', 'Not scored'));
    li.append(head, span('row-error', r.error.message));
    return li;
  }
  const p = probsOf(r);
  const w = argmax3(p);
  head.append(span(`verdict verdict-${LABELS[w]!.cls}`, winnerText(p)));
  const bars = document.createElement('div');
  bars.className = 'bars';
  LABELS.forEach((l, i) => {
    const row = document.createElement('div');
    row.className = `bar-row${i === w ? ' winner' : ''}`;
    const track = span('track', '');
    const fill = span(`fill fill-${l.cls}`, '');
    fill.style.width = `${(100 * p[i]!).toFixed(2)}%`;
    track.append(fill);
    row.append(span('bar-label', l.name), track, span('bar-value', pct(p[i]!)));
    bars.append(row);
  });
  const meta = document.createElement('div');
  meta.className = 'meta';
  meta.append(
    span('provider', r.provider),
    span('', `${ms(r.latencyMs)}${r.batchSize > 1 ? ` for a batch of ${r.batchSize}` : ''}`),
    span('', `${r.num_tokens} tokens${r.truncated ? ' (truncated)' : ''}`),
  );
  li.append(head, bars, meta);
  return li;
}

export function renderResults(list: HTMLElement, rows: readonly ScoredRow[]): void {
  list.replaceChildren(...rows.map((r, i) => renderRow(r, i)));
}

export function summaryText(rows: readonly ScoredRow[], total: number): string {
  const ok = rows.filter((r) => !r.error);
  const counts = [0, 0, 0];
  for (const r of ok) counts[argmax3(probsOf(r))]!++;
  const failed = rows.length - ok.length;
  const parts = [`${rows.length} of ${total} rows`, `A wins ${counts[0]}`, `B wins ${counts[1]}`, `tie ${counts[2]}`];
  if (failed > 0) parts.push(`${failed} not scored`);
  return parts.join(' · ');
}
