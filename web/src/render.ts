// Result cards: the row's id and a snippet of its prompt, the predicted winner, A / B / tie as
// labelled bars, then the details (where it was scored, tokens, latency). Plain DOM, no framework.
import type { RoutedRow } from '../../browser/router.ts';
import { argmax3 } from '../../core/metrics.ts';
import type { Probs } from '../../core/postprocess.ts';
import { probsOf } from '../../core/result.ts';
import type { Comparison } from '../../core/types.ts';

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

/** The first turn of the row's prompt, cut to `max` characters: raw (CSV) fields are JSON lists of turns. */
export function promptSnippet(c: Comparison | undefined, max = 140): string {
  if (!c) return '';
  let first: unknown = c.kind === 'turns' ? c.prompt[0] : c.prompt;
  if (c.kind === 'raw') {
    try {
      const turns: unknown = JSON.parse(c.prompt);
      first = Array.isArray(turns) ? turns.find((t) => typeof t === 'string') : turns;
    } catch {
      // Not a JSON list (the row gets its error); show the text as it is.
    }
  }
  const text = (typeof first === 'string' ? first : '').replace(/\s+/g, ' ').trim();
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Where a row was scored, as its card says it: "sidecar" or "page · WebGPU (software)". */
export type WhereLabel = (r: RoutedRow) => string;

function renderRow(r: RoutedRow, index: number, input: Comparison | undefined, where: WhereLabel): HTMLLIElement {
  const li = document.createElement('li');
  li.className = 'result';
  li.dataset['id'] = r.id;
  li.dataset['scoredBy'] = r.scoredBy;
  const head = document.createElement('div');
  head.className = 'result-head';
  head.append(span('row-id', `#${index + 1} · ${r.id}`));
  const snippet = span('snippet', promptSnippet(input));
  if (r.error) {
    li.classList.add('failed');
    head.append(span('verdict verdict-error', 'Not scored'));
    li.append(head, snippet, span('row-error', r.error.message), span('where', where(r)));
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
    span('where', where(r)),
    span('', `${ms(r.latencyMs)}${r.batchSize > 1 ? ` for a batch of ${r.batchSize}` : ''}`),
    span('', `${r.num_tokens} tokens${r.truncated ? ' (truncated)' : ''}`),
  );
  li.append(head, snippet, bars, meta);
  return li;
}

/** Cards for the rows scored so far (undefined: still running), in input order. */
export function renderResults(list: HTMLElement, rows: ReadonlyArray<RoutedRow | undefined>, inputs: readonly Comparison[], where: WhereLabel): void {
  const cards: HTMLLIElement[] = [];
  rows.forEach((r, i) => r && cards.push(renderRow(r, i, inputs[i], where)));
  list.replaceChildren(...cards);
}

export function summaryText(rows: ReadonlyArray<RoutedRow | undefined>, total: number): string {
  const done = rows.filter((r): r is RoutedRow => r !== undefined);
  const ok = done.filter((r) => !r.error);
  const counts = [0, 0, 0];
  for (const r of ok) counts[argmax3(probsOf(r))]!++;
  const failed = done.length - ok.length;
  const parts = [`${done.length} of ${total} rows`, `A wins ${counts[0]}`, `B wins ${counts[1]}`, `tie ${counts[2]}`];
  if (failed > 0) parts.push(`${failed} not scored`);
  const bySidecar = done.filter((r) => r.scoredBy === 'sidecar').length;
  if (bySidecar > 0) parts.push(`${bySidecar} by the sidecar`, `${done.length - bySidecar} in the page`);
  return parts.join(' · ');
}
