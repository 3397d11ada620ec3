import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTokenizer } from '../../core/tokenizer.ts';
import { byteTokenizerJson, byteTok, mergesTokenizerJson } from './helpers.ts';

test('byte tokenizer: ids are UTF-8 bytes + 3, no special tokens added', () => {
  assert.deepEqual(byteTok.encode('hi'), [107, 108]);
  assert.deepEqual(byteTok.encode('😀'), [243, 162, 155, 131]);
  assert.deepEqual(byteTok.encode('é'), [198, 172]); // C3 A9
  assert.deepEqual(byteTok.encode(''), []);
  assert.deepEqual(byteTok.encode(' \n'), [35, 13]);
});

test('a lone surrogate reaches the tokenizer as U+FFFD (EF BF BD)', () => {
  assert.deepEqual(byteTok.encode('a\uD800b'), [100, 242, 194, 192, 101]);
});

test('a post-processor in tokenizer.json is ignored: specials come from preference.json', () => {
  const withPost = {
    ...byteTokenizerJson,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
  };
  assert.deepEqual(createTokenizer(withPost).encode('hi'), [107, 108]);
});

test('merges tokenizer fixture merges multi-character tokens', () => {
  const tok = createTokenizer(mergesTokenizerJson(true));
  const ids = tok.encode('lorem --------');
  assert.equal(ids.length, 3); // "lorem", "Ġ", "--------"
});

test('createTokenizer rejects something that is not a tokenizer.json', () => {
  assert.throws(() => createTokenizer({ vocab: {} }), /tokenizer\.json: not a Hugging Face tokenizer/);
  assert.throws(() => createTokenizer(null), /tokenizer\.json/);
});
