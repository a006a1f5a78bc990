// Differential fuzz test of the hand-rolled body parser (parseTransaction) against a reference
// built on JSON.parse.
//
// The reference decodes the bytes with a strict UTF-8 TextDecoder, parses them with JSON.parse
// and a reviver that reads the literal source text of the top-level `valor`
// (`context.source`, node's --harmony-json-parse-with-source), then applies the contract's
// rules, written again here from the contest README rather than imported:
//   - bytes that are not UTF-8, or text that is not JSON: 400;
//   - a JSON document that is not an object: 422;
//   - `valor` must be an integer literal (no fraction, no exponent) in 1..2147483647: else 422;
//   - `tipo` must be exactly "c" or "d": else 422;
//   - `descricao` must be a string of 1..10 Unicode code points, no lone surrogate, no U+0000: else 422.
//
// Bodies are generated with a seeded PRNG (FUZZ_SEED overrides the seed, FUZZ_ITERATIONS the
// count) and kept within MAX_BODY_BYTES; the 413 path is covered by the unit tests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';

import { MAX_BODY_BYTES, isRejection, parseTransaction } from '../server';

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

type Decision =
  | { status: 'accepted'; valor: number; tipo: string; descricao: string }
  | { status: 400 | 413 | 422; why: string }
  | { status: 'threw'; why: string };

const sameDecision = (a: Decision, b: Decision): boolean => {
  if (a.status !== b.status) return false;
  if (a.status === 'accepted' && b.status === 'accepted') {
    return a.valor === b.valor && a.tipo === b.tipo && a.descricao === b.descricao;
  }
  return a.status !== 'threw';
};

function parserDecision(body: Buffer): Decision {
  try {
    const result = parseTransaction(body);
    if (isRejection(result)) return { status: result.status, why: result.error };
    return { status: 'accepted', valor: result.valor, tipo: result.tipo, descricao: result.descricao };
  } catch (err) {
    return { status: 'threw', why: String((err as Error)?.stack ?? err) };
  }
}

// ---------------------------------------------------------------------------------------------
// The reference
// ---------------------------------------------------------------------------------------------

const INT4_MAX = 2147483647n; // written again, not imported
const DESCRICAO_MAX_POINTS = 10;

class SourceTextUnavailable extends Error {}

interface ReviverContext {
  source?: string;
}

/**
 * JSON.parse with a reviver that records, for every object holding a `valor` property, the
 * literal source text of that property's final value (null when it is not a primitive).
 * Throws SourceTextUnavailable when node does not pass `context.source`.
 */
function parseWithValorSource(text: string): { root: unknown; valorSource: WeakMap<object, string | null> } {
  const valorSource = new WeakMap<object, string | null>();
  const root: unknown = JSON.parse(text, valorReviver(valorSource));
  return { root, valorSource };
}

function valorReviver(valorSource: WeakMap<object, string | null>) {
  return function (this: object, key: string, value: unknown, context?: ReviverContext): unknown {
    const primitive = value === null || typeof value !== 'object';
    if (primitive && typeof context?.source !== 'string') {
      throw new SourceTextUnavailable(
        'JSON.parse reviver got no context.source: run node with --harmony-json-parse-with-source (npm test does)',
      );
    }
    if (key === 'valor') valorSource.set(this, primitive ? (context?.source as string) : null);
    return value;
  };
}

/** Why a descricao is invalid, or '' when it is fine. Counts code points with for..of. */
function descricaoFault(text: string): string {
  let points = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    if (cp === 0) return 'descricao-nul';
    if (cp >= 0xd800 && cp <= 0xdfff) return 'descricao-lone-surrogate'; // for..of yields lone surrogates alone
    points++;
  }
  if (points < 1) return 'descricao-empty';
  if (points > DESCRICAO_MAX_POINTS) return 'descricao-long';
  return '';
}

function reference(body: Buffer): Decision {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    return { status: 400, why: 'invalid-utf8' };
  }
  let parsed: ReturnType<typeof parseWithValorSource>;
  try {
    parsed = parseWithValorSource(text);
  } catch (err) {
    if (err instanceof SyntaxError) return { status: 400, why: 'syntax' };
    throw err;
  }
  const { root, valorSource } = parsed;
  if (root === null || typeof root !== 'object' || Array.isArray(root)) return { status: 422, why: 'not-object' };
  const object = root as Record<string, unknown>;

  if (!Object.hasOwn(object, 'valor')) return { status: 422, why: 'valor-missing' };
  const source = valorSource.get(object);
  if (typeof object.valor !== 'number' || typeof source !== 'string') return { status: 422, why: 'valor-not-number' };
  if (!/^-?(0|[1-9][0-9]*)$/.test(source)) return { status: 422, why: 'valor-not-integer-literal' };
  const big = BigInt(source);
  if (big < 1n || big > INT4_MAX) return { status: 422, why: 'valor-out-of-range' };

  if (object.tipo !== 'c' && object.tipo !== 'd') return { status: 422, why: 'tipo' };

  if (typeof object.descricao !== 'string') return { status: 422, why: 'descricao-not-string' };
  const fault = descricaoFault(object.descricao);
  if (fault) return { status: 422, why: fault };

  return { status: 'accepted', valor: Number(big), tipo: object.tipo, descricao: object.descricao };
}

// ---------------------------------------------------------------------------------------------
// Checks of the reference itself
// ---------------------------------------------------------------------------------------------

test('JSON.parse passes context.source to revivers (needs --harmony-json-parse-with-source)', () => {
  const seen: Array<[string, unknown]> = [];
  JSON.parse('{"a":1.0,"b":"x","c":[1e3],"d":null}', (key: string, value: unknown, context?: ReviverContext) => {
    seen.push([key, context?.source]);
    return value;
  });
  assert.deepEqual(
    seen.filter(([, source]) => source !== undefined),
    [['a', '1.0'], ['b', '"x"'], ['0', '1e3'], ['d', 'null']],
    'context.source is missing: this test must run under node --harmony-json-parse-with-source (see package.json "test")',
  );
});

test('without context.source the reference refuses to decide instead of guessing', () => {
  // What a node without the flag does: call the reviver with no third argument.
  const reviver = valorReviver(new WeakMap());
  assert.throws(() => reviver.call({}, 'valor', 1), SourceTextUnavailable);
  assert.throws(() => reviver.call({}, 'x', 'a', {}), SourceTextUnavailable);
  assert.doesNotThrow(() => reviver.call({}, '', {}, {})); // objects and arrays have no source
  // SourceTextUnavailable is not a SyntaxError, so reference() lets it through rather than answering 400.
  assert.ok(!(new SourceTextUnavailable('x') instanceof SyntaxError));
});

test('duplicate keys: the reviver sees the source of the value JSON.parse kept (the last)', () => {
  const cases: Array<[string, unknown, string | null]> = [
    ['{"valor":1,"valor":2.50}', 2.5, '2.50'],
    ['{"valor":2.50,"valor":1}', 1, '1'],
    ['{"valor":1e0,"x":0,"valor":7}', 7, '7'],
    ['{"valor":{},"valor":1}', 1, '1'],
    ['{"valor":1,"valor":{}}', {}, null],
    ['{"valor":1,"valor":[2]}', [2], null],
    ['{"valor":"1","valor":1.0}', 1, '1.0'],
    ['{"valor":1.0,"valor":"1"}', '1', '"1"'],
    ['{"valor":1,"v\\u0061lor":-0}', -0, '-0'],
    ['{"valor":5,"a":{"valor":6,"valor":7.5},"valor":8}', 8, '8'],
    ['{"valor":1,"tipo":"c","valor":2,"descricao":"a","valor":2147483648}', 2147483648, '2147483648'],
  ];
  for (const [text, value, source] of cases) {
    const { root, valorSource } = parseWithValorSource(text);
    const object = root as Record<string, unknown>;
    assert.deepEqual(object.valor, value, text);
    assert.equal(valorSource.get(object), source, text);
  }
  // A nested object records its own last valor, separately from the top level.
  const nested = parseWithValorSource('{"a":{"valor":6,"valor":7.5},"valor":8}');
  assert.equal(nested.valorSource.get((nested.root as { a: object }).a), '7.5');
  assert.equal(nested.valorSource.get(nested.root as object), '8');
});

test('the reference decides the contest cases as the contract says', () => {
  const body = (text: string | number[]): Buffer => (typeof text === 'string' ? Buffer.from(text) : Buffer.from(text));
  const expect = (text: string | number[], status: Decision['status'], why?: string): void => {
    const decision = reference(body(text));
    assert.equal(decision.status, status, `${JSON.stringify(text)}: ${JSON.stringify(decision)}`);
    if (why !== undefined) assert.equal((decision as { why: string }).why, why, JSON.stringify(text));
  };
  assert.deepEqual(reference(body('{"valor": 1, "tipo": "d", "descricao": "devolve"}')), {
    status: 'accepted', valor: 1, tipo: 'd', descricao: 'devolve',
  });
  assert.deepEqual(reference(body(`{"descricao":"${'😀'.repeat(10)}","tipo":"c","valor":2147483647}`)), {
    status: 'accepted', valor: 2147483647, tipo: 'c', descricao: '😀'.repeat(10),
  });
  assert.deepEqual(reference(body('{"valor":3,"tipo":"\\u0064","descricao":"\\ud83d\\ude00\\"\\\\\\u00e9"}')), {
    status: 'accepted', valor: 3, tipo: 'd', descricao: '😀"\\é',
  });
  expect('{"valor": 1.2, "tipo": "d", "descricao": "devolve"}', 422, 'valor-not-integer-literal');
  expect('{"valor": 1, "tipo": "x", "descricao": "devolve"}', 422, 'tipo');
  expect('{"valor": 1, "tipo": "c", "descricao": "123456789 e mais um pouco"}', 422, 'descricao-long');
  expect('{"valor": 1, "tipo": "c", "descricao": ""}', 422, 'descricao-empty');
  expect('{"valor": 1, "tipo": "c", "descricao": null}', 422, 'descricao-not-string');
  for (const valor of ['1.0', '1e3', '10E-1']) expect(`{"valor":${valor},"tipo":"c","descricao":"a"}`, 422, 'valor-not-integer-literal');
  for (const valor of ['0', '-1', '-0', '2147483648', '99999999999999999999']) expect(`{"valor":${valor},"tipo":"c","descricao":"a"}`, 422, 'valor-out-of-range');
  for (const valor of ['"1"', 'true', 'null', '[1]']) expect(`{"valor":${valor},"tipo":"c","descricao":"a"}`, 422, 'valor-not-number');
  expect('{"tipo":"c","descricao":"a"}', 422, 'valor-missing');
  expect(`{"valor":1,"tipo":"c","descricao":"${'😀'.repeat(11)}"}`, 422, 'descricao-long');
  expect('{"valor":1,"tipo":"c","descricao":"\\ud800"}', 422, 'descricao-lone-surrogate');
  expect('{"valor":1,"tipo":"c","descricao":"a\\udc00"}', 422, 'descricao-lone-surrogate');
  expect('{"valor":1,"tipo":"c","descricao":"\\u0000"}', 422, 'descricao-nul');
  expect('[{"valor":1,"tipo":"c","descricao":"a"}]', 422, 'not-object');
  expect('null', 422, 'not-object');
  expect([0xef, 0xbb, 0xbf, ...Buffer.from('{"valor":1,"tipo":"c","descricao":"a"}')], 400, 'syntax');
  expect([...Buffer.from('{"valor":1,"tipo":"c","descricao":"'), 0xed, 0xa0, 0x80, ...Buffer.from('"}')], 400, 'invalid-utf8');
  expect('{"valor":01,"tipo":"c","descricao":"a"}', 400, 'syntax');
  expect('', 400, 'syntax');
  expect('{"valor":1,"tipo":"c","descricao":"a"} x', 400, 'syntax');
});

// ---------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------

/** sfc32: small, fast, good enough, and the same on every platform for a given seed. */
function makeRng(seed: number): () => number {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = (): number => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    const t = (a + b + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 16; i++) next();
  return next;
}

class Gen {
  constructor(readonly random: () => number) {}

  /** 0 <= n < max */
  int(max: number): number {
    return Math.floor(this.random() * max);
  }
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  digits(n: number, leadingZeroOk = true): string {
    let out = leadingZeroOk ? String(this.int(10)) : String(1 + this.int(9));
    for (let i = 1; i < n; i++) out += String(this.int(10));
    return out;
  }

  ws(): string {
    const r = this.random();
    if (r < 0.55) return '';
    if (r < 0.8) return ' ';
    let out = '';
    for (let n = this.range(1, 4); n > 0; n--) out += this.pick([' ', '\t', '\n', '\r']);
    return out;
  }

  /** An integer, log-uniform over 1..MAX_INT4 so small and large values are both common. */
  validInteger(): number {
    const max = Math.log(2147483647);
    return Math.min(2147483647, Math.max(1, Math.floor(Math.exp(this.random() * max))));
  }

  /** Number literals of every shape: valid and out of range, fractional, exponent, and (if allowed) malformed. */
  numberLiteral(malformed = true): string {
    const r = this.random();
    if (r < 0.55) return String(this.validInteger());
    if (r < 0.62) return this.pick(['0', '-0', '1', '2147483647', '2147483648', '2147483646', '-1', '-2147483648', '4294967296', '1000000000', '999999999']);
    if (r < 0.67) return (this.chance(0.3) ? '-' : '') + this.digits(this.range(10, 12), false); // around the int4 edge
    if (r < 0.69) return (this.chance(0.3) ? '-' : '') + this.digits(this.range(13, 400), false); // big
    if (r < 0.76) return (this.chance(0.2) ? '-' : '') + String(this.validInteger()) + '.' + this.digits(this.range(1, 4));
    if (r < 0.83) {
      const mantissa = this.chance(0.5) ? String(this.validInteger() % 1000) : `${this.int(10)}.${this.digits(this.range(1, 3))}`;
      return (this.chance(0.2) ? '-' : '') + mantissa + this.pick(['e', 'E']) + this.pick(['', '+', '-']) + this.digits(this.range(1, 3));
    }
    if (r < 0.86 || !malformed) return this.pick(['0.0', '1.0', '-0.0', '0e0', '1e0', '1E+0', '1e400', '-1e400', '1e-400', '0.1e1', '10e-1', '2147483647.0', '2.147483647e9']);
    // Malformed for JSON.
    return this.pick(['01', '00', '-01', '0001', '+1', '.5', '1.', '1.e3', '1e', '1e+', '-', '--1', '0x10', 'NaN', 'Infinity', '-Infinity', '1_0', '١', '1 2', '- 1', '0.', '-.5', '1ee3', '1.2.3']);
  }

  hex4(unit: number): string {
    const hex = unit.toString(16).padStart(4, '0');
    return '\\u' + (this.chance(0.3) ? hex.toUpperCase() : hex);
  }

  /** One code point (or a lone surrogate) of text, drawn from a mix of scripts and troublemakers. */
  codePoint(): number {
    const r = this.random();
    if (r < 0.55) return this.range(0x20, 0x7e);
    if (r < 0.65) return this.range(0xa0, 0x17f);
    if (r < 0.7) return this.pick([0x4e2d, 0x65e5, 0x20ac, 0x2028, 0x2029, 0xfeff, 0xfffd, 0xffff, 0xfffe, 0x0301, 0x200b]);
    if (r < 0.8) return this.pick([0x1f600, 0x1f4a9, 0x10000, 0x10ffff, 0x1d11e, 0x1f1e7]);
    if (r < 0.86) return this.range(0x01, 0x1f);
    if (r < 0.91) return this.pick([0x22, 0x5c, 0x2f]);
    if (r < 0.935) return 0x00;
    if (r < 0.97) return this.pick([0xd800, 0xdbff, 0xdc00, 0xdfff, 0xd83d, 0xde00]); // lone surrogate
    return this.range(0x80, 0x9f); // C1 controls: plain characters for JSON
  }

  /** A JSON string literal for these code points, each written raw or escaped at random. */
  stringLiteral(points: number[]): string {
    let out = '"';
    for (let i = 0; i < points.length; i++) {
      const cp = points[i];
      const escape = this.chance(0.15);
      if (cp >= 0xd800 && cp <= 0xdfff) {
        out += this.hex4(cp); // a lone surrogate can only be written escaped
      } else if (cp === 0x22) {
        out += escape ? this.hex4(cp) : '\\"';
      } else if (cp === 0x5c) {
        out += escape ? this.hex4(cp) : '\\\\';
      } else if (cp < 0x20) {
        const short: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
        out += short[cp] && !escape ? short[cp] : this.hex4(cp);
      } else if (cp === 0x2f && escape) {
        out += this.chance(0.5) ? '\\/' : this.hex4(cp);
      } else if (cp > 0xffff) {
        if (escape) {
          const v = cp - 0x10000;
          out += this.hex4(0xd800 + (v >> 10)) + this.hex4(0xdc00 + (v & 0x3ff));
        } else {
          out += String.fromCodePoint(cp);
        }
      } else {
        out += escape ? this.hex4(cp) : String.fromCharCode(cp);
      }
    }
    return out + '"';
  }

  text(length: number): number[] {
    const points: number[] = [];
    for (let i = 0; i < length; i++) points.push(this.codePoint());
    return points;
  }

  /** Mostly plain ASCII text, like real descriptions. */
  plainText(length: number): number[] {
    const points: number[] = [];
    for (let i = 0; i < length; i++) points.push(this.chance(0.85) ? this.range(0x61, 0x7a) : this.range(0x20, 0x7e));
    return points;
  }

  descricaoLength(): number {
    const r = this.random();
    if (r < 0.75) return this.range(1, 10);
    if (r < 0.82) return 0;
    if (r < 0.92) return this.range(11, 14);
    return this.range(0, 30);
  }

  descricaoValue(): string {
    const r = this.random();
    if (r < 0.45) return this.stringLiteral(this.plainText(this.descricaoLength()));
    if (r < 0.9) return this.stringLiteral(this.text(this.descricaoLength()));
    if (r < 0.92) return this.stringLiteral([0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x20, ...Array.from('e mais um pouco', (ch) => ch.codePointAt(0) as number)]);
    return this.anyValue(2);
  }

  tipoValue(): string {
    const r = this.random();
    if (r < 0.42) return '"c"';
    if (r < 0.84) return '"d"';
    if (r < 0.88) return this.stringLiteral([this.pick([0x63, 0x64])]); // maybe escaped
    if (r < 0.95) return this.pick(['"x"', '"C"', '"D"', '""', '"cd"', '"dc"', '" c"', '"d "', '"c\\u0000"', '"\\u0000"', '"ｃ"', '"credito"', '"\\ud800"']);
    return this.anyValue(2);
  }

  valorValue(): string {
    const r = this.random();
    if (r < 0.65) return String(this.validInteger());
    if (r < 0.93) return this.numberLiteral();
    if (r < 0.96) return this.pick(['"1"', '"1000"', '""', 'true', 'false', 'null', '[]', '[1]', '{}', '{"valor":1}']);
    return this.anyValue(2);
  }

  key(name: string): string {
    if (this.chance(0.9)) return `"${name}"`;
    // Some characters escaped: the same key for JSON.
    let out = '"';
    for (const ch of name) out += this.chance(0.4) ? this.hex4(ch.charCodeAt(0)) : ch;
    return out + '"';
  }

  otherKey(): string {
    const r = this.random();
    if (r < 0.3) return this.pick(['"Valor"', '"valor "', '" valor"', '"valo"', '"valorr"', '"Tipo"', '"tip"', '"descrição"', '"descricao\\u0000"', '"Descricao"', '""', '"id"', '"__proto__"', '"constructor"']);
    return this.stringLiteral(this.text(this.int(8)));
  }

  /** Any JSON value, valid, nested up to a few levels; may mention the known keys inside. */
  anyValue(depth: number): string {
    const r = this.random();
    if (depth <= 0 || r < 0.3) {
      const s = this.random();
      if (s < 0.35) return this.numberLiteral(false);
      if (s < 0.7) return this.stringLiteral(this.text(this.int(6)));
      return this.pick(['true', 'false', 'null']);
    }
    if (r < 0.6) {
      const items: string[] = [];
      for (let n = this.int(4); n > 0; n--) items.push(this.ws() + this.anyValue(depth - 1) + this.ws());
      return `[${items.join(',') || this.ws()}]`;
    }
    if (r < 0.95) {
      const members: string[] = [];
      for (let n = this.int(4); n > 0; n--) {
        const key = this.chance(0.3) ? this.key(this.pick(['valor', 'tipo', 'descricao'])) : this.otherKey();
        members.push(`${this.ws()}${key}${this.ws()}:${this.ws()}${this.anyValue(depth - 1)}${this.ws()}`);
      }
      return `{${members.join(',') || this.ws()}}`;
    }
    // Deep nesting, kept small enough for the body cap (and rare: a reviver walks it slowly).
    if (this.chance(0.8)) return '[]';
    const n = this.range(10, 600);
    return this.chance(0.5) ? '['.repeat(n) + ']'.repeat(n) : '{"a":'.repeat(n) + 'null' + '}'.repeat(n);
  }

  /** A transaction body: the official shape, or a variation of it. */
  body(): string {
    const r = this.random();
    if (r < 0.025) return this.ws() + this.anyValue(3) + this.ws(); // top level not (necessarily) an object
    if (r < 0.035) return `[${this.officialBody()}]`;
    if (r < 0.25) return this.officialBody();

    const members: Array<[string, string]> = [];
    if (this.chance(0.96)) members.push([this.key('valor'), this.valorValue()]);
    if (this.chance(0.97)) members.push([this.key('tipo'), this.tipoValue()]);
    if (this.chance(0.97)) members.push([this.key('descricao'), this.descricaoValue()]);
    if (this.chance(0.3)) {
      for (let n = this.range(1, 3); n > 0; n--) members.push([this.otherKey(), this.anyValue(3)]);
    }
    if (this.chance(0.15)) {
      // Duplicates, valid or not, placed anywhere: JSON.parse keeps the last.
      for (let n = this.range(1, 2); n > 0; n--) {
        const which = this.pick(['valor', 'tipo', 'descricao']);
        const value = which === 'valor' ? this.valorValue() : which === 'tipo' ? this.tipoValue() : this.descricaoValue();
        members.push([this.key(which), value]);
      }
    }
    if (this.chance(0.6)) {
      for (let i = members.length - 1; i > 0; i--) {
        const j = this.int(i + 1);
        [members[i], members[j]] = [members[j], members[i]];
      }
    }
    const compact = this.chance(0.3);
    const w = (): string => (compact ? '' : this.ws());
    const inner = members.map(([k, v]) => `${w()}${k}${w()}:${w()}${v}${w()}`).join(',');
    return `${w()}{${inner || w()}}${w()}`;
  }

  officialBody(): string {
    const descricao = this.stringLiteral(this.plainText(this.chance(0.9) ? 10 : this.range(1, 10)));
    return `{"valor": ${this.validInteger()}, "tipo": "${this.pick(['c', 'd'])}", "descricao": ${descricao}}`;
  }

  // -------------------------------------------------------------------------------------------
  // Byte-level mutations
  // -------------------------------------------------------------------------------------------

  static readonly INTERESTING = [
    0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x3a, 0x2c, 0x30, 0x31, 0x39, 0x2d, 0x2b, 0x2e, 0x65, 0x45, 0x75, 0x20, 0x09, 0x0a,
    0x0d, 0x00, 0x01, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5,
    0xfe, 0xff, 0x74, 0x6e, 0x66, 0x2f,
  ];

  static readonly PIECES: readonly number[][] = [
    ...[
      '\\ud800', '\\udbff', '\\udc00', '\\udfff', '\\ud83d\\ude00', '\\ude00\\ud83d', '\\u0000', '\\u00e9', '\\u0022', '\\u005c',
      '\\u12', '\\u', '\\uZZZZ', '\\x41', '\\"', '\\\\', '\\', '"', '""', '\\/', '\\b', '\\n', '{', '}', '[', ']', ',', ':',
      '{}', '[]', 'null', 'true', '1', '-', '0', '.5', 'e5', '1e3', '"valor":', '"tipo":', '"descricao":', ',"valor":1',
      ',"tipo":"c"', ',"descricao":"a"', '"c"', '"d"', 'é', '€', '😀', '\u0000',
    ].map((s) => [...Buffer.from(s)]),
    [0xef, 0xbb, 0xbf], // BOM
    [0xc0, 0x80], // overlong NUL
    [0xc1, 0xbf],
    [0xe0, 0x80, 0x80],
    [0xf0, 0x80, 0x80, 0x80],
    [0xc3], // truncated sequences
    [0xe2, 0x82],
    [0xf0, 0x9f, 0x98],
    [0xed, 0xa0, 0x80], // encoded surrogates
    [0xed, 0xbf, 0xbf],
    [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80],
    [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
    [0xf8, 0x88, 0x80, 0x80, 0x80],
    [0x80],
    [0xbf, 0xbf],
    [0xff],
  ];

  /** A position likely to be inside a string: just after a quote, or anywhere. */
  position(bytes: number[]): number {
    if (this.chance(0.4)) {
      const quotes: number[] = [];
      for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x22) quotes.push(i + 1);
      if (quotes.length) return Math.min(bytes.length, this.pick(quotes) + this.int(4));
    }
    return this.int(bytes.length + 1);
  }

  mutate(body: Buffer, others: Buffer[]): Buffer {
    const bytes = [...body];
    for (let n = this.chance(0.7) ? 1 : this.range(2, 4); n > 0; n--) {
      const op = this.int(12);
      const at = this.position(bytes);
      switch (op) {
        case 0: // flip a bit
          if (bytes.length) bytes[Math.min(at, bytes.length - 1)] ^= 1 << this.int(8);
          break;
        case 1: // replace a byte
          if (bytes.length) bytes[Math.min(at, bytes.length - 1)] = this.chance(0.7) ? this.pick(Gen.INTERESTING) : this.int(256);
          break;
        case 2: // insert a byte
          bytes.splice(at, 0, this.chance(0.7) ? this.pick(Gen.INTERESTING) : this.int(256));
          break;
        case 3: // delete bytes
          bytes.splice(at, this.range(1, 3));
          break;
        case 4: { // duplicate a range
          const len = this.range(1, 8);
          bytes.splice(at, 0, ...bytes.slice(at, at + len));
          break;
        }
        case 5: // truncate
          bytes.length = this.int(bytes.length + 1);
          break;
        case 6: { // splice with another body
          const other = others.length ? [...this.pick(others)] : [];
          const from = this.int(other.length + 1);
          if (this.chance(0.5)) bytes.splice(at, bytes.length - at, ...other.slice(from));
          else bytes.splice(at, this.int(6), ...other.slice(from, from + this.range(1, 20)));
          break;
        }
        case 7: // insert a piece: escapes, structure, invalid UTF-8
        case 8:
          bytes.splice(at, this.chance(0.2) ? 1 : 0, ...this.pick(Gen.PIECES));
          break;
        case 9: { // change one digit of a number, or one letter of a string
          const i = Math.min(at, bytes.length - 1);
          if (i >= 0 && bytes[i] >= 0x30 && bytes[i] <= 0x39) bytes[i] = 0x30 + this.int(10);
          else if (i >= 0 && bytes[i] >= 0x61 && bytes[i] <= 0x7a) bytes[i] = 0x61 + this.int(26);
          else bytes.splice(at, 0, 0x30 + this.int(10));
          break;
        }
        case 10: { // structural: a comma before a closer or after an opener, doubled, or dropped
          const marks: number[] = [];
          for (let i = 0; i < bytes.length; i++) {
            const b = bytes[i];
            if (b === 0x2c || b === 0x5b || b === 0x5d || b === 0x7b || b === 0x7d || b === 0x3a) marks.push(i);
          }
          if (!marks.length) break;
          const i = this.pick(marks);
          const b = bytes[i];
          if (b === 0x5d || b === 0x7d) bytes.splice(i, 0, ...this.pick([[0x2c], [0x2c, 0x20], [0x3a], [0x2c, 0x2c]]));
          else if (b === 0x2c) bytes.splice(i, 1, ...this.pick([[], [0x2c, 0x2c], [0x3a]]));
          else if (b === 0x3a) bytes.splice(i, 1, ...this.pick([[], [0x3a, 0x3a], [0x2c]]));
          else bytes.splice(i + 1, 0, ...this.pick([[0x2c], [0x3a], [0x5d], [0x7d]]));
          break;
        }
        default: // swap two bytes
          if (bytes.length > 1) {
            const i = Math.min(at, bytes.length - 1);
            const j = this.int(bytes.length);
            [bytes[i], bytes[j]] = [bytes[j], bytes[i]];
          }
      }
    }
    return Buffer.from(bytes);
  }
}

// ---------------------------------------------------------------------------------------------
// The fuzz run
// ---------------------------------------------------------------------------------------------

function seedFromEnv(): number {
  const raw = process.env.FUZZ_SEED;
  if (raw === undefined || raw === '') return randomInt(0, 2 ** 32);
  const seed = Number(raw);
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) throw new Error(`FUZZ_SEED must be an integer in 0..2^32-1, got ${JSON.stringify(raw)}`);
  return seed;
}

function iterationsFromEnv(): number {
  const raw = process.env.FUZZ_ITERATIONS;
  if (raw === undefined || raw === '') return 100_000;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`FUZZ_ITERATIONS must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

function describeBody(body: Buffer): string {
  return [
    `  body (latin1, JSON-escaped): ${JSON.stringify(body.toString('latin1'))}`,
    `  body (UTF-8, lossy):         ${JSON.stringify(body.toString('utf8'))}`,
    `  body (hex):                  ${body.toString('hex')}`,
  ].join('\n');
}

test('fuzz: parseTransaction decides every body as JSON.parse plus the contract rules', (t) => {
  const seed = seedFromEnv();
  const iterations = iterationsFromEnv();
  const line = `fuzz seed ${seed} (override with FUZZ_SEED=${seed}), ${iterations} bodies`;
  console.log(line); // printed at once, so a crash still shows the seed

  const gen = new Gen(makeRng(seed));
  const outcomes: Record<string, number> = { accepted: 0, 400: 0, 422: 0 };
  const reasons = new Map<string, number>();
  const mutatedOutcomes: Record<string, number> = { accepted: 0, 400: 0, 422: 0 };
  const mismatches: string[] = [];
  let mismatchCount = 0;
  let truncatedToCap = 0;
  let biggest = 0;
  const recent: Buffer[] = [];
  const started = process.hrtime.bigint();
  // Both sides throw a SyntaxError for every malformed body; stack traces are most of that cost.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  t.after(() => {
    Error.stackTraceLimit = stackTraceLimit;
  });

  for (let i = 0; i < iterations; i++) {
    let body: Buffer = Buffer.from(gen.body(), 'utf8');
    const mutated = gen.chance(0.45);
    if (mutated) body = gen.mutate(body, recent);
    if (body.length > MAX_BODY_BYTES) {
      body = body.subarray(0, MAX_BODY_BYTES);
      truncatedToCap++;
    }
    biggest = Math.max(biggest, body.length);
    if (recent.length < 64) recent.push(body);
    else recent[gen.int(64)] = body;

    const expected = reference(body);
    const actual = parserDecision(body);
    const key = String(expected.status);
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (mutated) mutatedOutcomes[key] = (mutatedOutcomes[key] ?? 0) + 1;
    const why = expected.status === 'accepted' ? 'accepted' : (expected as { why: string }).why;
    reasons.set(why, (reasons.get(why) ?? 0) + 1);

    if (!sameDecision(expected, actual)) {
      mismatchCount++;
      if (mismatches.length < 8) {
        mismatches.push(
          [
            `#${i} (${mutated ? 'mutated' : 'generated'})`,
            describeBody(body),
            `  reference: ${JSON.stringify(expected)}`,
            `  parser:    ${JSON.stringify(actual)}`,
          ].join('\n'),
        );
      }
    }
  }

  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  Error.stackTraceLimit = stackTraceLimit;
  const summary =
    `fuzz: ${iterations} bodies in ${ms.toFixed(0)} ms; outcomes ${JSON.stringify(outcomes)}; ` +
    `mutated ${JSON.stringify(mutatedOutcomes)}; largest ${biggest} bytes, ${truncatedToCap} cut to the cap; ` +
    `reasons ${JSON.stringify(Object.fromEntries([...reasons].sort((a, b) => b[1] - a[1])))}`;
  t.diagnostic(summary);

  assert.equal(
    mismatchCount,
    0,
    `${mismatchCount} of ${iterations} bodies decided differently (seed ${seed}, rerun with FUZZ_SEED=${seed}):\n${mismatches.join('\n')}`,
  );

  // The run must not pass vacuously: every outcome and every rule was exercised.
  const scale = iterations / 100_000;
  for (const outcome of ['accepted', '400', '422']) {
    assert.ok(outcomes[outcome] >= 10_000 * scale, `outcome ${outcome} reached only ${outcomes[outcome]} times`);
    assert.ok(mutatedOutcomes[outcome] >= 1_000 * scale, `mutated bodies reached outcome ${outcome} only ${mutatedOutcomes[outcome]} times`);
  }
  const minimum: Record<string, number> = {
    accepted: 10_000,
    'invalid-utf8': 1_000,
    syntax: 10_000,
    'not-object': 500,
    'valor-missing': 500,
    'valor-not-number': 500,
    'valor-not-integer-literal': 1_000,
    'valor-out-of-range': 1_000,
    tipo: 1_000,
    'descricao-not-string': 500,
    'descricao-empty': 500,
    'descricao-long': 1_000,
    'descricao-nul': 500,
    'descricao-lone-surrogate': 500,
  };
  for (const [why, min] of Object.entries(minimum)) {
    assert.ok((reasons.get(why) ?? 0) >= min * scale, `reason ${why} reached only ${reasons.get(why) ?? 0} times (want ${min * scale})`);
  }
  assert.equal(outcomes['413'] ?? 0, 0, 'no generated body exceeds MAX_BODY_BYTES');
});
