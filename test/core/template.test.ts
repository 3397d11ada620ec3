import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TEMPLATE_PRESETS, renderTemplate } from '../../core/template.ts';
import { byteIds, byteTok } from './helpers.ts';

test('gemma-seq-cls renders the exact bytes', () => {
  assert.equal(
    renderTemplate(TEMPLATE_PRESETS['gemma-seq-cls'], 'P', 'A', 'B'),
    '<prompt>: P\n\n<response_a>: A\n\n<response_b>: B',
  );
});

test('llama-seq-cls renders the exact bytes ("Model A :" spaced, "Model B:" not, 8 dashes)', () => {
  const text = renderTemplate(TEMPLATE_PRESETS['llama-seq-cls'], 'P', 'A', 'B');
  assert.equal(text, 'User prompt: P\n\nModel A :\nA\n\n--------\n\nModel B:\nB');
  assert.equal(text.match(/-+/g)?.[0]?.length, 8);
});

test('label-token renders gemma prefixes plus the answer suffix (9 dashes, trailing space)', () => {
  const text = renderTemplate(TEMPLATE_PRESETS['label-token'], 'P', 'A', 'B');
  assert.equal(
    text,
    '<prompt>: P\n\n<response_a>: A\n\n<response_b>: B' +
      '\n\n---------\nWhich is the better response for the prompt ? a or b or tie ?\n\nAnswer: ',
  );
  assert.equal(text.match(/-+/g)?.[0]?.length, 9);
  assert.ok(text.endsWith('Answer: '));
});

test('every preset names itself and has string pieces', () => {
  for (const [name, t] of Object.entries(TEMPLATE_PRESETS)) {
    assert.equal(t.preset, name);
    assert.equal(renderTemplate(t, '', '', ''), t.prompt_prefix + t.response_a_prefix + t.response_b_prefix + t.suffix);
  }
});

test('rendered gemma template tokenizes to its UTF-8 bytes + 3 (hand-checked prefix)', () => {
  const ids = byteTok.encode(renderTemplate(TEMPLATE_PRESETS['gemma-seq-cls'], 'hi', '😀', ''));
  // "<prompt>: " = < p r o m p t > : space
  assert.deepEqual(ids.slice(0, 10), [63, 115, 117, 114, 112, 115, 119, 65, 61, 35]);
  // then "hi", then "\n\n"
  assert.deepEqual(ids.slice(10, 14), [107, 108, 13, 13]);
  assert.deepEqual(ids, byteIds('<prompt>: hi\n\n<response_a>: 😀\n\n<response_b>: '));
  assert.ok(ids.join(',').includes('243,162,155,131'));
});
