// The typed-in comparison: one block per turn with a prompt and two responses, so multi-turn
// conversations read in order. Produces a `turns` Comparison for core/.
import type { Comparison } from '../../core/types.ts';

export class FormInputError extends Error {
  override name = 'FormInputError';
}

export interface TurnsForm {
  addTurn(values?: TurnValues): void;
  /** The comparison in the form; throws FormInputError naming the empty field. */
  read(): Comparison;
  fill(turns: readonly TurnValues[]): void;
}

export interface TurnValues {
  readonly prompt: string;
  readonly response_a: string;
  readonly response_b: string;
}

const FIELD_LABELS: ReadonlyArray<[keyof TurnValues, string]> = [
  ['prompt', 'Prompt'],
  ['response_a', 'Response A'],
  ['response_b', 'Response B'],
];

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, children: Node[] = []): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  Object.assign(e, props);
  for (const c of children) e.append(c);
  return e;
}

export function createTurnsForm(container: HTMLElement): TurnsForm {
  let counter = 0;

  function renumber(): void {
    const blocks = Array.from(container.querySelectorAll<HTMLElement>('.turn'));
    blocks.forEach((b, i) => {
      b.querySelector('.turn-title')!.textContent = `Turn ${i + 1}`;
      b.querySelector<HTMLButtonElement>('.remove-turn')!.hidden = blocks.length === 1;
    });
  }

  function addTurn(values?: TurnValues): void {
    const n = counter++;
    const areas = FIELD_LABELS.map(([field, label]) => {
      const id = `${field}-${n}`;
      const area = el('textarea', { id, name: field, rows: field === 'prompt' ? 2 : 4, value: values?.[field] ?? '', placeholder: `${label}…` });
      area.dataset['field'] = field;
      // Grow with the text so long responses stay readable without an inner scrollbar.
      const grow = (): void => {
        area.style.height = 'auto';
        area.style.height = `${area.scrollHeight + 2}px`;
      };
      area.addEventListener('input', grow);
      requestAnimationFrame(grow);
      return el('div', { className: `field field-${field}` }, [el('label', { htmlFor: id, textContent: label }), area]);
    });
    const remove = el('button', { type: 'button', className: 'link remove-turn', textContent: 'Remove turn' });
    const block = el('fieldset', { className: 'turn' }, [
      el('legend', {}, [el('span', { className: 'turn-title' }), remove]),
      areas[0]!,
      el('div', { className: 'pair' }, [areas[1]!, areas[2]!]),
    ]);
    remove.addEventListener('click', () => {
      block.remove();
      renumber();
    });
    container.append(block);
    renumber();
  }

  function read(): Comparison {
    const blocks = Array.from(container.querySelectorAll<HTMLElement>('.turn'));
    const turns = blocks.map((b, i) => {
      const get = (field: keyof TurnValues, label: string): string => {
        const v = b.querySelector<HTMLTextAreaElement>(`textarea[data-field="${field}"]`)!.value;
        if (v.trim() === '') {
          const where = blocks.length > 1 ? `Turn ${i + 1}: ` : '';
          throw new FormInputError(`${where}${label} is empty. Fill in the prompt and both responses.`);
        }
        return v;
      };
      return { prompt: get('prompt', 'the prompt'), response_a: get('response_a', 'response A'), response_b: get('response_b', 'response B') };
    });
    if (turns.length === 0) throw new FormInputError('Add at least one turn.');
    return {
      id: 'typed',
      kind: 'turns',
      prompt: turns.map((t) => t.prompt),
      response_a: turns.map((t) => t.response_a),
      response_b: turns.map((t) => t.response_b),
    };
  }

  function fill(turns: readonly TurnValues[]): void {
    container.replaceChildren();
    for (const t of turns) addTurn(t);
  }

  addTurn();
  return { addTurn, read, fill };
}
