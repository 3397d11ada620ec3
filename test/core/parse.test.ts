import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RowInputError } from '../../core/errors.ts';
import { parseComparison, turnsToRaw } from '../../core/parse.ts';
import type { Comparison, ParserConfig, Turns } from '../../core/types.ts';

const JSON_ALL: ParserConfig = { kind: 'json', turns: 'all', null_turn: '', lone_surrogates: 'drop', turn_joiner: ' ' };
const NAIVE: ParserConfig = { ...JSON_ALL, kind: 'naive' };

const raw = (prompt: string, response_a = '["a"]', response_b = '["b"]', id = 'abc'): Comparison => ({ id, kind: 'raw', prompt, response_a, response_b });
const turns = (prompt: Turns, response_a: Turns = ['a'], response_b: Turns = ['b']): Comparison => ({ id: 'abc', kind: 'turns', prompt, response_a, response_b });
const promptOf = (c: Comparison, cfg: ParserConfig): readonly string[] => parseComparison(c, cfg).prompt;

test('turnsToRaw is Python json.dumps(turns, ensure_ascii=False)', () => {
  assert.equal(turnsToRaw(['a', 'b']), '["a", "b"]');
  assert.equal(turnsToRaw(['hi', null]), '["hi", null]');
  assert.equal(turnsToRaw([]), '[]');
  assert.equal(turnsToRaw(['']), '[""]');
  // Escapes: quote, backslash, \n \r \t \b \f, other control chars as lower-case \u00xx; DEL stays raw.
  assert.equal(turnsToRaw(['say "hi"\\ \n\r\t\b\f\u0001\u001f\u007f']), '["say \\"hi\\"\\\\ \\n\\r\\t\\b\\f\\u0001\\u001f\u007f"]');
  // Non-ASCII (emoji, accents, CJK) and even lone surrogates are kept raw, not \u-escaped.
  assert.equal(turnsToRaw(['café 😀 中', 'x\uD800y']), '["café 😀 中", "x\uD800y"]');
});

test('json parser: multi-turn, null turns, turn selection', () => {
  const c = raw('["first", null, "last"]', '["a1", "a2", "a3"]', '["b1", "b2", null]');
  assert.deepEqual(parseComparison(c, JSON_ALL), { prompt: ['first', '', 'last'], response_a: ['a1', 'a2', 'a3'], response_b: ['b1', 'b2', ''] });
  assert.deepEqual(promptOf(c, { ...JSON_ALL, null_turn: 'None' }), ['first', 'None', 'last']);
  assert.deepEqual(parseComparison(c, { ...JSON_ALL, turns: 'first' }), { prompt: ['first'], response_a: ['a1'], response_b: ['b1'] });
  assert.deepEqual(parseComparison(c, { ...JSON_ALL, turns: 'last' }), { prompt: ['last'], response_a: ['a3'], response_b: [''] });
  // JSON escapes are decoded.
  assert.deepEqual(promptOf(raw('["line\\none \\"q\\" \\u00e9"]'), JSON_ALL), ['line\none "q" é']);
});

test('json parser: empty list stays empty for every turn selection; empty string stays a turn', () => {
  for (const which of ['all', 'first', 'last'] as const) {
    assert.deepEqual(promptOf(raw('[]'), { ...JSON_ALL, turns: which }), []);
    assert.deepEqual(promptOf(turns([]), { ...JSON_ALL, turns: which }), []);
  }
  assert.deepEqual(promptOf(raw('[""]'), JSON_ALL), ['']);
});

test('json parser on turn lists: same result as on the raw CSV form', () => {
  const t: Turns = ['q "1"', null, 'x\ny 😀'];
  const cfg = { ...JSON_ALL, null_turn: '<null>' };
  assert.deepEqual(parseComparison(turns(t, t, t), cfg), parseComparison(raw(turnsToRaw(t), turnsToRaw(t), turnsToRaw(t)), cfg));
  assert.deepEqual(promptOf(turns(t), cfg), ['q "1"', '<null>', 'x\ny 😀']);
});

test('json parser: a malformed field is a RowInputError naming raw.<field>', () => {
  const cases: Array<[Comparison, string, RegExp]> = [
    [raw('["p"]', '["a"]', '["b", 3]'), 'raw.response_b', /^row "abc": raw\.response_b is not a JSON list of strings: element 1 is number$/],
    [raw('["p"]', 'not json'), 'raw.response_a', /^row "abc": raw\.response_a is not a JSON list of strings: /],
    [raw('"just a string"'), 'raw.prompt', /^row "abc": raw\.prompt is not a JSON list of strings: got string$/],
    [raw('null'), 'raw.prompt', /^row "abc": raw\.prompt is not a JSON list of strings: got null$/],
    [raw('[["nested"]]'), 'raw.prompt', /element 0 is object$/],
  ];
  for (const [c, field, message] of cases) {
    assert.throws(() => parseComparison(c, JSON_ALL), (e: unknown) => {
      assert.ok(e instanceof RowInputError);
      assert.equal(e.field, field);
      assert.match(e.message, message);
      return true;
    });
  }
  // A turn list with a non-string element names the field itself.
  const bad = { id: 'abc', kind: 'turns', prompt: ['ok', 5], response_a: [], response_b: [] } as unknown as Comparison;
  assert.throws(() => parseComparison(bad, JSON_ALL), (e: unknown) => e instanceof RowInputError && e.field === 'prompt');
});

test('naive parser: s.strip("[]").split(\'","\') with quotes stripped; escapes stay literal', () => {
  // Compact separators split; escapes (\n, \") are kept as the two characters backslash + letter.
  // (Python gives the same: the trailing \" loses only its quote, the backslash stays.)
  assert.deepEqual(promptOf(raw('["line\\none","say \\"hi\\""]'), NAIVE), ['line\\none', 'say \\"hi\\']);
  // The Arena form uses ", " which naive does NOT split: one piece with the inner quotes kept.
  assert.deepEqual(promptOf(raw('["a", "b"]'), NAIVE), ['a", "b']);
  assert.deepEqual(promptOf(raw('[null]'), NAIVE), ['null']);
  assert.deepEqual(promptOf(raw('[]'), NAIVE), ['']);
  assert.deepEqual(promptOf(raw('[""]'), NAIVE), ['']);
  // strip('[]') removes ALL leading/trailing brackets, strip('"') all quotes.
  assert.deepEqual(promptOf(raw('[["x"]]'), NAIVE), ['x']);
  assert.deepEqual(promptOf(raw('[[x]]'), NAIVE), ['x']);
  assert.deepEqual(promptOf(raw('["[list]"]'), NAIVE), ['[list]']); // stops at the quote
  assert.deepEqual(promptOf(raw('["""quoted"""]'), NAIVE), ['quoted']);
  // Non-ASCII passes through untouched.
  assert.deepEqual(promptOf(raw('["café 😀"]'), NAIVE), ['café 😀']);
});

test('naive parser: first/last select among the naive pieces', () => {
  const c = raw('["one","two","three"]');
  assert.deepEqual(promptOf(c, { ...NAIVE, turns: 'first' }), ['one']);
  assert.deepEqual(promptOf(c, { ...NAIVE, turns: 'last' }), ['three']);
  assert.deepEqual(promptOf(c, NAIVE), ['one', 'two', 'three']);
});

test('naive parser on turn lists first rebuilds the CSV form', () => {
  // turnsToRaw -> ["say \"hi\"", "b", null] -> strip -> one piece (", " never matches '","').
  assert.deepEqual(promptOf(turns(['say "hi"', 'b', null]), NAIVE), ['say \\"hi\\"", "b", null']);
  assert.deepEqual(promptOf(turns([null]), NAIVE), ['null']);
  assert.deepEqual(promptOf(turns(['x\ny']), NAIVE), ['x\\ny']);
  assert.deepEqual(promptOf(turns([]), NAIVE), ['']);
  const t: Turns = ['q', null, 'r "s"'];
  assert.deepEqual(parseComparison(turns(t, t, t), NAIVE), parseComparison(raw(turnsToRaw(t), turnsToRaw(t), turnsToRaw(t)), NAIVE));
});

test('lone surrogates: drop removes unpaired code units, keeps emoji pairs', () => {
  // High surrogate alone, low surrogate alone, reversed pair (two lone units), valid pair.
  const c = turns(['a\uD83Db', 'c\uDE00d', 'e\uDE00\uD83Df', 'g😀h'], ['\uD800'], ['ok']);
  assert.deepEqual(parseComparison(c, JSON_ALL), { prompt: ['ab', 'cd', 'ef', 'g😀h'], response_a: [''], response_b: ['ok'] });
  // From JSON escapes: a lone "\ud83d" decodes to a lone surrogate; an escaped pair to the emoji.
  assert.deepEqual(promptOf(raw('["x\\ud83dy", "\\ud83d\\ude00"]'), JSON_ALL), ['xy', '😀']);
});

test('lone surrogates: empty-field empties the whole field; keep leaves them', () => {
  const c = turns(['fine', 'bad\uDC00'], ['😀'], ['\uD800 only']);
  const empty = { ...JSON_ALL, lone_surrogates: 'empty-field' } as const;
  assert.deepEqual(parseComparison(c, empty), { prompt: [''], response_a: ['😀'], response_b: [''] });
  // Applied to the selected turns: the bad turn is not selected, so nothing is emptied.
  assert.deepEqual(promptOf(c, { ...empty, turns: 'first' }), ['fine']);
  assert.deepEqual(parseComparison(c, { ...JSON_ALL, lone_surrogates: 'keep' }), {
    prompt: ['fine', 'bad\uDC00'],
    response_a: ['😀'],
    response_b: ['\uD800 only'],
  });
});
