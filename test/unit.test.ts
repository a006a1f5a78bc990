// Unit tests of the pure parts of server.ts: routing, body parsing and validation, error bodies,
// status mapping and configuration. No database, no sockets.

import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import {
  MAX_BODY_BYTES,
  MAX_DESCRIPTION,
  MAX_INT4,
  SERVER_ERROR_INTERVAL_MS,
  SERVER_ERROR_STORM,
  TRANSACTION_STATUS,
  descriptionProblem,
  errorBody,
  isRejection,
  keepServingThroughErrors,
  serve,
  parseTransaction,
  readConfig,
  route,
  warmUp,
} from '../server';
import type { Rejection, Transaction } from '../server';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const bytes = (body: string | Buffer | number[]): Buffer =>
  Buffer.isBuffer(body) ? body : Array.isArray(body) ? Buffer.from(body) : Buffer.from(body, 'utf8');

/** Parses and requires acceptance with exactly these values. */
function accepts(body: string | Buffer | number[], expected: Transaction): void {
  const result = parseTransaction(bytes(body));
  assert.ok(!isRejection(result), `expected acceptance of ${show(body)}, got ${JSON.stringify(result)}`);
  assert.deepEqual(result, expected, `body ${show(body)}`);
  assert.equal(typeof result.valor, 'number');
  assert.equal(typeof result.descricao, 'string');
}

/** Parses and requires a rejection with this status and a non-empty message. */
function rejects(body: string | Buffer | number[], status: Rejection['status']): Rejection {
  const result = parseTransaction(bytes(body));
  assert.ok(isRejection(result), `expected ${status} for ${show(body)}, got acceptance ${JSON.stringify(result)}`);
  assert.equal(result.status, status, `body ${show(body)}: ${result.error}`);
  assert.equal(typeof result.error, 'string');
  assert.ok(result.error.length > 0, 'rejection has a message');
  return result;
}

function show(body: string | Buffer | number[]): string {
  const buf = bytes(body);
  const text = buf.length > 120 ? `${buf.subarray(0, 120).toString('latin1')}… (${buf.length} bytes)` : buf.toString('latin1');
  return `${JSON.stringify(text)} [hex ${buf.subarray(0, 60).toString('hex')}]`;
}

/** A body in the contest's own format. */
const official = (valor: string, tipo: string, descricao: string): string =>
  `{"valor": ${valor}, "tipo": ${tipo}, "descricao": ${descricao}}`;

const T = (valor: number, tipo: 'c' | 'd', descricao: string): Transaction => ({ valor, tipo, descricao });

// ---------------------------------------------------------------------------------------------
// route
// ---------------------------------------------------------------------------------------------

describe('route', () => {
  test('POST /clientes/{id}/transacoes is the transaction route', () => {
    assert.deepEqual(route('POST', '/clientes/1/transacoes'), { name: 'transaction', id: 1 });
    assert.deepEqual(route('POST', '/clientes/5/transacoes'), { name: 'transaction', id: 5 });
    assert.deepEqual(route('POST', '/clientes/6/transacoes'), { name: 'transaction', id: 6 }); // 404 is the database's call
    assert.deepEqual(route('POST', '/clientes/1234567/transacoes'), { name: 'transaction', id: 1234567 });
  });

  test('GET /clientes/{id}/extrato is the statement route', () => {
    assert.deepEqual(route('GET', '/clientes/1/extrato'), { name: 'statement', id: 1 });
    assert.deepEqual(route('GET', '/clientes/6/extrato'), { name: 'statement', id: 6 });
    assert.deepEqual(route('GET', '/clientes/42/extrato'), { name: 'statement', id: 42 });
  });

  test('the id is returned as a number', () => {
    const r = route('GET', '/clientes/10/extrato');
    assert.ok(r.name === 'statement');
    assert.equal(typeof r.id, 'number');
    assert.equal(r.id, 10);
  });

  test('a query string is ignored', () => {
    assert.deepEqual(route('GET', '/clientes/3/extrato?x=1'), { name: 'statement', id: 3 });
    assert.deepEqual(route('GET', '/clientes/3/extrato?'), { name: 'statement', id: 3 });
    assert.deepEqual(route('POST', '/clientes/3/transacoes?a=b&c=/d'), { name: 'transaction', id: 3 });
    assert.deepEqual(route('POST', '/clientes/3/transacoes?/extrato'), { name: 'transaction', id: 3 });
    // The query string only starts after the path: it cannot stand in for part of it.
    assert.deepEqual(route('GET', '/clientes/3?/extrato'), { name: 'not_found' });
    assert.deepEqual(route('GET', '/clientes/3/extr?ato'), { name: 'not_found' });
    assert.deepEqual(route('GET', '/clientes/?3/extrato'), { name: 'not_found' });
  });

  test('a trailing slash is not found', () => {
    assert.deepEqual(route('GET', '/clientes/1/extrato/'), { name: 'not_found' });
    assert.deepEqual(route('POST', '/clientes/1/transacoes/'), { name: 'not_found' });
    assert.deepEqual(route('GET', '/clientes/1/extrato/?x'), { name: 'not_found' });
  });

  test('double slashes are not found', () => {
    for (const url of [
      '//clientes/1/extrato',
      '/clientes//1/extrato',
      '/clientes/1//extrato',
      '/clientes/1/extrato//',
      '//clientes/1/transacoes',
      '/clientes//1/transacoes',
      '/clientes/1//transacoes',
    ]) {
      assert.deepEqual(route('GET', url), { name: 'not_found' }, url);
      assert.deepEqual(route('POST', url), { name: 'not_found' }, url);
    }
  });

  test('leading zeros, signs and id 0 are not found', () => {
    for (const id of ['0', '00', '01', '001', '0001', '+1', '-1', '-0', '+0', '0x1', '1e1']) {
      assert.deepEqual(route('GET', `/clientes/${id}/extrato`), { name: 'not_found' }, id);
      assert.deepEqual(route('POST', `/clientes/${id}/transacoes`), { name: 'not_found' }, id);
    }
  });

  test('ids up to MAX_INT4 are accepted, beyond it not found', () => {
    assert.equal(MAX_INT4, 2147483647);
    assert.deepEqual(route('GET', `/clientes/${MAX_INT4}/extrato`), { name: 'statement', id: MAX_INT4 });
    assert.deepEqual(route('POST', `/clientes/${MAX_INT4}/transacoes`), { name: 'transaction', id: MAX_INT4 });
    assert.deepEqual(route('GET', `/clientes/${MAX_INT4 - 1}/extrato`), { name: 'statement', id: MAX_INT4 - 1 });
    assert.deepEqual(route('GET', '/clientes/1000000000/extrato'), { name: 'statement', id: 1000000000 });
    for (const id of [String(MAX_INT4 + 1), '2147483650', '4294967295', '4294967296', '9999999999']) {
      assert.deepEqual(route('GET', `/clientes/${id}/extrato`), { name: 'not_found' }, id);
      assert.deepEqual(route('POST', `/clientes/${id}/transacoes`), { name: 'not_found' }, id);
    }
  });

  test('ids of 11 or more digits are not found, whatever their value', () => {
    for (const id of ['10000000000', '00000000001', '12345678901', '99999999999', '1'.repeat(30), '2'.repeat(400)]) {
      assert.deepEqual(route('GET', `/clientes/${id}/extrato`), { name: 'not_found' }, id);
      assert.deepEqual(route('POST', `/clientes/${id}/transacoes`), { name: 'not_found' }, id);
    }
  });

  test('ids with non-digits are not found', () => {
    for (const id of ['a', 'abc', '1a', 'a1', '1.0', '1,0', '%31', '1%20', ' 1', '1 ', '١', '１', '1_0', 'Infinity', 'NaN', '']) {
      assert.deepEqual(route('GET', `/clientes/${id}/extrato`), { name: 'not_found' }, JSON.stringify(id));
      assert.deepEqual(route('POST', `/clientes/${id}/transacoes`), { name: 'not_found' }, JSON.stringify(id));
    }
  });

  test('a wrong method on a known route is method_not_allowed with the right Allow', () => {
    for (const method of ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'post', 'Post', '']) {
      assert.deepEqual(route(method, '/clientes/1/transacoes'), { name: 'method_not_allowed', allow: 'POST' }, method);
      assert.deepEqual(route(method, '/clientes/1/transacoes?x=1'), { name: 'method_not_allowed', allow: 'POST' }, method);
    }
    for (const method of ['POST', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'get', 'Get', '']) {
      assert.deepEqual(route(method, '/clientes/1/extrato'), { name: 'method_not_allowed', allow: 'GET' }, method);
      assert.deepEqual(route(method, `/clientes/${MAX_INT4}/extrato?`), { name: 'method_not_allowed', allow: 'GET' }, method);
    }
  });

  test('a wrong method on an unknown path is not_found, not method_not_allowed', () => {
    assert.deepEqual(route('PUT', '/clientes/0/transacoes'), { name: 'not_found' });
    assert.deepEqual(route('POST', '/clientes/1/extrato/'), { name: 'not_found' });
    assert.deepEqual(route('DELETE', '/'), { name: 'not_found' });
    assert.deepEqual(route('GET', `/clientes/${MAX_INT4 + 1}/transacoes`), { name: 'not_found' });
  });

  test('other paths are not found', () => {
    for (const url of [
      '',
      '/',
      '*',
      '/clientes',
      '/clientes/',
      '/clientes/1',
      '/clientes/1/',
      '/clientes/1?',
      '/clientes/1/transacao',
      '/clientes/1/transacoess',
      '/clientes/1/extratos',
      '/clientes/1/Extrato',
      '/clientes/1/extrato#x',
      '/clientes/1/extrato/1',
      '/clientes/1/transacoes/extrato',
      '/clientes/1/extrato%3Fx',
      '/clientes/1/../2/extrato',
      '/clientes/1;/extrato',
      '/cliente/1/extrato',
      '/Clientes/1/extrato',
      '/CLIENTES/1/TRANSACOES',
      'clientes/1/extrato',
      '/api/clientes/1/extrato',
      'http://localhost:9999/clientes/1/extrato',
      '/clientes/1/extrato\u0000',
    ]) {
      assert.deepEqual(route('GET', url), { name: 'not_found' }, JSON.stringify(url));
      assert.deepEqual(route('POST', url), { name: 'not_found' }, JSON.stringify(url));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// parseTransaction: the contest's own bodies
// ---------------------------------------------------------------------------------------------

describe('parseTransaction: contest bodies', () => {
  test('the valid bodies of the load test are accepted', () => {
    accepts('{"valor": 1, "tipo": "d", "descricao": "validacao"}', T(1, 'd', 'validacao'));
    accepts('{"valor": 1, "tipo": "c", "descricao": "validacao"}', T(1, 'c', 'validacao'));
    accepts('{"valor": 1, "tipo": "c", "descricao": "toma"}', T(1, 'c', 'toma'));
    accepts('{"valor": 1, "tipo": "d", "descricao": "devolve"}', T(1, 'd', 'devolve'));
    accepts('{"valor": 1, "tipo": "c", "descricao": "danada"}', T(1, 'c', 'danada'));
    accepts('{"valor": 1000, "tipo": "c", "descricao": "descricao"}', T(1000, 'c', 'descricao'));
    accepts('{"valor": 9876, "tipo": "d", "descricao": "abcdefghij"}', T(9876, 'd', 'abcdefghij'));
    accepts('{"valor":1,"tipo":"c","descricao":"a"}', T(1, 'c', 'a'));
  });

  // Section 3.4, S5 steps 9-13: each must be 422 (or 400); this parser answers 422.
  test('valor 1.2 is 422', () => void rejects('{"valor": 1.2, "tipo": "d", "descricao": "devolve"}', 422));
  test('tipo "x" is 422', () => void rejects('{"valor": 1, "tipo": "x", "descricao": "devolve"}', 422));
  test('a 25-character descricao is 422', () => {
    assert.equal('123456789 e mais um pouco'.length, 25);
    rejects('{"valor": 1, "tipo": "c", "descricao": "123456789 e mais um pouco"}', 422);
  });
  test('an empty descricao is 422', () => void rejects('{"valor": 1, "tipo": "c", "descricao": ""}', 422));
  test('a null descricao is 422', () => void rejects('{"valor": 1, "tipo": "c", "descricao": null}', 422));
});

// ---------------------------------------------------------------------------------------------
// parseTransaction: valor
// ---------------------------------------------------------------------------------------------

describe('parseTransaction: valor', () => {
  test('integers from 1 to MAX_INT4 are accepted with their exact value', () => {
    for (const valor of [1, 2, 9, 10, 99, 100, 1000, 65535, 100000, 10000000, 999999999, 1000000000, 2000000000, MAX_INT4 - 1, MAX_INT4]) {
      accepts(official(String(valor), '"c"', '"x"'), T(valor, 'c', 'x'));
    }
    accepts(official('2147483647', '"d"', '"max"'), T(2147483647, 'd', 'max'));
  });

  test('non-integer literals are 422 even when their value is integral', () => {
    for (const valor of ['1.0', '1.00', '1e3', '1E3', '1e+3', '1e-0', '1E0', '10e-1', '0.5', '1.5', '1.2', '2147483647.0', '2.147483647e9', '1e400']) {
      rejects(official(valor, '"c"', '"x"'), 422);
    }
  });

  test('values out of 1..MAX_INT4 are 422', () => {
    for (const valor of ['0', '-0', '-1', '-2147483647', '-2147483648', '2147483648', '2147483649', '4294967296', '9999999999', '10000000000', '99999999999', '12345678901234567890', '9'.repeat(400)]) {
      rejects(official(valor, '"c"', '"x"'), 422);
    }
  });

  test('non-numbers are 422', () => {
    for (const valor of ['"1"', '"1000"', '""', 'true', 'false', 'null', '[1]', '[]', '{}', '{"valor":1}']) {
      rejects(official(valor, '"c"', '"x"'), 422);
    }
  });

  test('a missing valor is 422', () => {
    rejects('{"tipo": "c", "descricao": "x"}', 422);
    rejects('{"Valor": 1, "tipo": "c", "descricao": "x"}', 422);
    rejects('{"valor ": 1, "tipo": "c", "descricao": "x"}', 422);
    rejects('{"x": {"valor": 1}, "tipo": "c", "descricao": "x"}', 422);
  });

  test('number syntax JSON forbids is 400', () => {
    for (const valor of ['01', '00', '-01', '+1', '.5', '1.', '1.e3', '1e', '1e+', '-', '--1', '0x10', 'NaN', 'Infinity', '-Infinity', '1_000', '1 000', '١']) {
      rejects(official(valor, '"c"', '"x"'), 400);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// parseTransaction: tipo
// ---------------------------------------------------------------------------------------------

describe('parseTransaction: tipo', () => {
  test('exactly "c" or "d"', () => {
    accepts(official('5', '"c"', '"x"'), T(5, 'c', 'x'));
    accepts(official('5', '"d"', '"x"'), T(5, 'd', 'x'));
  });

  test('escaped forms of "c" and "d" decode to them', () => {
    accepts(official('5', '"\\u0063"', '"x"'), T(5, 'c', 'x'));
    accepts(official('5', '"\\u0064"', '"x"'), T(5, 'd', 'x'));
  });

  test('anything else is 422', () => {
    for (const tipo of ['"x"', '"C"', '"D"', '""', '"cd"', '"dc"', '" c"', '"c "', '"c\\u0000"', '"\\u0000c"', '"credito"', '"ｃ"', 'null', 'true', '1', '0', '["c"]', '{"tipo":"c"}']) {
      rejects(official('5', tipo, '"x"'), 422);
    }
  });

  test('a missing tipo is 422', () => {
    rejects('{"valor": 5, "descricao": "x"}', 422);
    rejects('{"valor": 5, "Tipo": "c", "descricao": "x"}', 422);
  });
});

// ---------------------------------------------------------------------------------------------
// parseTransaction: descricao
// ---------------------------------------------------------------------------------------------

describe('parseTransaction: descricao', () => {
  test(`1 to ${MAX_DESCRIPTION} characters are accepted`, () => {
    assert.equal(MAX_DESCRIPTION, 10);
    for (let n = 1; n <= 10; n++) {
      const text = 'abcdefghijklmnop'.slice(0, n);
      accepts(official('7', '"c"', JSON.stringify(text)), T(7, 'c', text));
    }
  });

  test('11 or more characters are 422', () => {
    for (const text of ['abcdefghijk', 'a'.repeat(12), 'a'.repeat(100), ' '.repeat(11)]) {
      rejects(official('7', '"c"', JSON.stringify(text)), 422);
    }
  });

  test('length is counted in code points: 10 emoji are fine, 11 are not', () => {
    const ten = '😀'.repeat(10);
    assert.equal(ten.length, 20); // 20 UTF-16 units
    assert.equal(Buffer.byteLength(ten), 40); // 40 UTF-8 bytes
    accepts(official('7', '"c"', JSON.stringify(ten)), T(7, 'c', ten));
    rejects(official('7', '"c"', JSON.stringify('😀'.repeat(11))), 422);
    // Same with escaped surrogate pairs.
    accepts(official('7', '"c"', `"${'\\ud83d\\ude00'.repeat(10)}"`), T(7, 'c', ten));
    rejects(official('7', '"c"', `"${'\\ud83d\\ude00'.repeat(11)}"`), 422);
  });

  test('two- and three-byte characters count once each', () => {
    accepts(official('7', '"c"', '"ação é bom"'), T(7, 'c', 'ação é bom'));
    accepts(official('7', '"c"', '"éééééééééé"'), T(7, 'c', 'é'.repeat(10)));
    rejects(official('7', '"c"', '"ééééééééééé"'), 422);
    accepts(official('7', '"c"', '"日本語のテキスト十字"'), T(7, 'c', '日本語のテキスト十字'));
    rejects(official('7', '"c"', '"日本語のテキスト十一字"'), 422);
    accepts(official('7', '"d"', '"\u{10FFFF}"'), T(7, 'd', '\u{10FFFF}'));
  });

  test('combining marks are separate code points', () => {
    const five = 'e\u0301'.repeat(5); // 10 code points, 5 graphemes
    accepts(official('7', '"c"', JSON.stringify(five)), T(7, 'c', five));
    rejects(official('7', '"c"', JSON.stringify('e\u0301'.repeat(6))), 422);
  });

  test('escapes are decoded exactly', () => {
    accepts(official('7', '"c"', '"a\\"b"'), T(7, 'c', 'a"b'));
    accepts(official('7', '"c"', '"a\\\\b"'), T(7, 'c', 'a\\b'));
    accepts(official('7', '"c"', '"\\\\"'), T(7, 'c', '\\'));
    accepts(official('7', '"c"', '"\\""'), T(7, 'c', '"'));
    accepts(official('7', '"c"', '"a\\/b"'), T(7, 'c', 'a/b'));
    accepts(official('7', '"c"', '"\\b\\f\\n\\r\\t"'), T(7, 'c', '\b\f\n\r\t'));
    accepts(official('7', '"c"', '"caf\\u00e9"'), T(7, 'c', 'café'));
    accepts(official('7', '"c"', '"caf\\u00E9"'), T(7, 'c', 'café'));
    accepts(official('7', '"c"', '"\\u0041\\u00e9\\u20AC"'), T(7, 'c', 'Aé€'));
    accepts(official('7', '"c"', '"\\ud83d\\ude00"'), T(7, 'c', '😀'));
    accepts(official('7', '"c"', '"\\uD83D\\uDE00!"'), T(7, 'c', '😀!'));
    accepts(official('7', '"c"', '"x\\u0001y"'), T(7, 'c', 'x\u0001y'));
    accepts(official('7', '"c"', '"\\u007f"'), T(7, 'c', '\u007f'));
    accepts(official('7', '"c"', '"\\uffff"'), T(7, 'c', '\uffff'));
    // Raw UTF-8 and escapes mixed, ten code points in all.
    accepts(official('7', '"c"', '"ç\\u00e7😀\\ud83d\\ude00\\"\\\\\\/\\nça"'), T(7, 'c', 'çç😀😀"\\/\nça'));
    // A raw surrogate pair written as one UTF-8 sequence next to an escape.
    accepts(official('7', '"c"', '"\\n😀"'), T(7, 'c', '\n😀'));
  });

  test('escaped and raw strings agree with JSON.parse', () => {
    for (const descricao of ['"\\\\\\""', '"\\u005c"', '"\\u0022"', '"\\/\\/"', '"a\\u0020"', '"\\u00e9\\u00e9"', '"é\\u00e9é"']) {
      const expected = JSON.parse(descricao) as string;
      accepts(official('3', '"d"', descricao), T(3, 'd', expected));
    }
  });

  test('lone surrogates are 422', () => {
    for (const d of ['"\\ud800"', '"\\udbff"', '"\\udc00"', '"\\udfff"', '"a\\ud83d"', '"\\ud83da"', '"\\ude00\\ud83d"', '"\\ud83d\\ud83d"', '"\\ude00"', '"\\ud83d\\u0041"', '"😀\\udc00"']) {
      rejects(official('7', '"c"', d), 422);
    }
  });

  test('NUL is 422 when escaped and 400 when raw', () => {
    rejects(official('7', '"c"', '"\\u0000"'), 422);
    rejects(official('7', '"c"', '"a\\u0000b"'), 422);
    rejects(bytes([...Buffer.from('{"valor":7,"tipo":"c","descricao":"a'), 0x00, ...Buffer.from('b"}')]), 400);
  });

  test('non-strings and a missing descricao are 422', () => {
    for (const d of ['null', '1', '0', 'true', 'false', '["a"]', '{}', '{"descricao":"a"}']) {
      rejects(official('7', '"c"', d), 422);
    }
    rejects('{"valor": 7, "tipo": "c"}', 422);
    rejects('{"valor": 7, "tipo": "c", "Descricao": "a"}', 422);
  });
});

// ---------------------------------------------------------------------------------------------
// parseTransaction: JSON structure
// ---------------------------------------------------------------------------------------------

describe('parseTransaction: JSON structure', () => {
  test('any key order is accepted', () => {
    const parts = ['"valor": 12', '"tipo": "d"', '"descricao": "ordem"'];
    const orders = [
      [0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0],
    ];
    for (const order of orders) {
      accepts(`{${order.map((i) => parts[i]).join(', ')}}`, T(12, 'd', 'ordem'));
    }
  });

  test('JSON whitespace anywhere between tokens is accepted', () => {
    accepts(' \t\r\n{ \t\r\n"valor" \t\r\n: \t\r\n12 \t\r\n, \n"tipo"\n:\n"d"\r\n,\t"descricao"\t:\t"a b"\r\n} \t\r\n', T(12, 'd', 'a b'));
    accepts('{"valor":12,"tipo":"d","descricao":"x"}\n', T(12, 'd', 'x'));
  });

  test('whitespace JSON does not define is 400', () => {
    for (const ws of ['\u000b', '\u000c', '\u00a0', '\u2028', '\ufeff', '\u3000']) {
      rejects(`{"valor":${ws}12,"tipo":"d","descricao":"x"}`, 400);
      rejects(`${ws}{"valor":12,"tipo":"d","descricao":"x"}`, 400);
    }
  });

  test('unknown keys are ignored, whatever their value', () => {
    accepts('{"valor":1,"tipo":"c","descricao":"a","extra":1}', T(1, 'c', 'a'));
    accepts('{"a":null,"b":true,"c":false,"d":-1.5e-7,"e":"s","valor":1,"tipo":"c","descricao":"a"}', T(1, 'c', 'a'));
    accepts('{"x":{"valor":0,"tipo":"x","descricao":""},"valor":2,"tipo":"c","descricao":"a"}', T(2, 'c', 'a'));
    accepts('{"valor":2,"y":[1,{"descricao":null},[[]],{}],"tipo":"c","descricao":"a","z":{"a":{"b":[{"c":"\\u00e9"}]}}}', T(2, 'c', 'a'));
    accepts('{"":1,"valorr":"x","tip":0,"descricao ":null,"valor":3,"tipo":"d","descricao":"ok"}', T(3, 'd', 'ok'));
    accepts('{"valor":3,"tipo":"d","descricao":"ok","😀":"😀","\\u0000":[]}', T(3, 'd', 'ok'));
  });

  test('unknown values are still checked for syntax', () => {
    rejects('{"valor":1,"tipo":"c","descricao":"a","x":[1,]}', 400);
    rejects('{"valor":1,"tipo":"c","descricao":"a","x":{"a"}}', 400);
    rejects('{"valor":1,"tipo":"c","descricao":"a","x":{"a":1,}}', 400);
    rejects('{"valor":1,"tipo":"c","descricao":"a","x":01}', 400);
    rejects('{"valor":1,"tipo":"c","descricao":"a","x":"\\x"}', 400);
    rejects('{"valor":1,"tipo":"c","descricao":"a","x":tru}', 400);
    rejects('{"valor":1,"tipo":"c","descricao":"a","x":{1:2}}', 400);
    rejects('{"valor":1,"tipo":"c","descricao":"a","x\\q":1}', 400);
  });

  test('keys written with escapes are recognised', () => {
    accepts('{"v\\u0061lor":4,"\\u0074ipo":"c","descri\\u00e7ao":"no","descricao":"yes"}', T(4, 'c', 'yes'));
    accepts('{"\\u0076\\u0061\\u006c\\u006f\\u0072":4,"tipo":"c","descr\\u0069cao":"esc"}', T(4, 'c', 'esc'));
    rejects('{"v\\u0061lor":"4","tipo":"c","descricao":"a"}', 422);
  });

  test('duplicate keys: the last one wins, as in JSON.parse', () => {
    const cases: Array<[string, Transaction | 422]> = [
      ['{"valor":1,"valor":2,"tipo":"c","descricao":"a"}', T(2, 'c', 'a')],
      ['{"valor":1.5,"valor":2,"tipo":"c","descricao":"a"}', T(2, 'c', 'a')],
      ['{"valor":"x","valor":2,"tipo":"c","descricao":"a"}', T(2, 'c', 'a')],
      ['{"valor":2,"valor":1.5,"tipo":"c","descricao":"a"}', 422],
      ['{"valor":2,"valor":0,"tipo":"c","descricao":"a"}', 422],
      ['{"valor":2,"valor":"2","tipo":"c","descricao":"a"}', 422],
      ['{"valor":2,"valor":null,"tipo":"c","descricao":"a"}', 422],
      ['{"valor":2,"tipo":"c","descricao":"a","valor":99999999999}', 422],
      ['{"valor":2,"tipo":"c","tipo":"d","descricao":"a"}', T(2, 'd', 'a')],
      ['{"valor":2,"tipo":"x","tipo":"c","descricao":"a"}', T(2, 'c', 'a')],
      ['{"valor":2,"tipo":"c","tipo":"x","descricao":"a"}', 422],
      ['{"valor":2,"tipo":"c","tipo":1,"descricao":"a"}', 422],
      ['{"valor":2,"tipo":"c","descricao":"toolongtoolong","descricao":"ok"}', T(2, 'c', 'ok')],
      ['{"valor":2,"tipo":"c","descricao":"ok","descricao":""}', 422],
      ['{"valor":2,"tipo":"c","descricao":"ok","descricao":["ok"]}', 422],
      ['{"valor":2,"tipo":"c","descricao":null,"descricao":"ok"}', T(2, 'c', 'ok')],
      ['{"valor":1,"v\\u0061lor":3,"tipo":"c","descricao":"a"}', T(3, 'c', 'a')],
      ['{"valor":1,"tipo":"c","descricao":"a","valor":5,"tipo":"d","descricao":"b"}', T(5, 'd', 'b')],
    ];
    for (const [body, expected] of cases) {
      // The expectation itself is JSON.parse's reading of the body.
      const parsed = JSON.parse(body) as Record<string, unknown>;
      if (expected === 422) {
        rejects(body, 422);
      } else {
        assert.deepEqual({ valor: parsed.valor, tipo: parsed.tipo, descricao: parsed.descricao }, expected);
        accepts(body, expected);
      }
    }
  });

  test('a top-level value that is not an object is 422', () => {
    for (const body of ['[]', '[{"valor":1,"tipo":"c","descricao":"a"}]', '"x"', '""', '1', '0', '-1.5e3', 'null', 'true', 'false', ' [ ] ', '"{\\"valor\\":1}"']) {
      rejects(body, 422);
    }
  });

  test('an empty object is 422', () => {
    rejects('{}', 422);
    rejects(' { } ', 422);
  });

  test('malformed JSON is 400', () => {
    const bad = [
      '{',
      '}',
      '{"valor":1,"tipo":"c","descricao":"a"',
      '{"valor":1,"tipo":"c","descricao":"a}',
      '{"valor":1,"tipo":"c","descricao":"a",}',
      '{"valor":1,"tipo":"c",,"descricao":"a"}',
      '{,"valor":1,"tipo":"c","descricao":"a"}',
      '{"valor":1 "tipo":"c","descricao":"a"}',
      '{"valor" 1,"tipo":"c","descricao":"a"}',
      '{"valor"::1,"tipo":"c","descricao":"a"}',
      '{valor:1,"tipo":"c","descricao":"a"}',
      "{'valor':1,'tipo':'c','descricao':'a'}",
      '{"valor":1,"tipo":"c","descricao":"a"/*x*/}',
      '{"valor":1,"tipo":"c","descricao":"a"}//',
      '{"valor":1,"tipo":c,"descricao":"a"}',
      '{"valor":1,"tipo":"c","descricao":"a\\x41"}',
      '{"valor":1,"tipo":"c","descricao":"a\\u41"}',
      '{"valor":1,"tipo":"c","descricao":"\\u12G4"}',
      '{"valor":1,"tipo":"c","descricao":"\\U0041"}',
      '{"valor":1,"tipo":"c","descricao":"\\\'"}',
      '{"valor":1,"tipo":"c","descricao":"\\"}',
      '{"valor":1,"tipo":"c","descricao":"\\u"}',
      '{"valor":1,"tipo":"c","descricao":"a\tb"}',
      '{"valor":1,"tipo":"c","descricao":"a\nb"}',
      '{"valor":1,"tipo":"c","descricao":"a\u001fb"}',
      '[',
      '[1,]',
      '"abc',
      'tru',
      'True',
      'nul',
      'undefined',
      '{"a":[}',
      '{"a":]}',
      '{"a" : {"b" : }}',
    ];
    for (const body of bad) rejects(body, 400);
  });

  test('an empty or blank body is 400', () => {
    rejects('', 400);
    rejects(' ', 400);
    rejects(' \t\r\n', 400);
  });

  test('data after the JSON document is 400', () => {
    const ok = '{"valor":1,"tipo":"c","descricao":"a"}';
    for (const tail of ['x', '}', '{}', ok, ',', '0', 'null', '"', '\u0000', ' ]']) {
      rejects(ok + tail, 400);
      rejects(`${ok} ${tail}`, 400);
    }
    rejects('[] []', 400);
    rejects('1 2', 400);
  });

  test('a byte-order mark is 400', () => {
    rejects(bytes([0xef, 0xbb, 0xbf, ...Buffer.from('{"valor":1,"tipo":"c","descricao":"a"}')]), 400);
  });

  test('a raw BOM or other noncharacter inside a string is kept as text', () => {
    accepts(bytes([...Buffer.from('{"valor":1,"tipo":"c","descricao":"'), 0xef, 0xbb, 0xbf, ...Buffer.from('a"}')]), T(1, 'c', '\ufeffa'));
    accepts(bytes([...Buffer.from('{"valor":1,"tipo":"c","descricao":"\\n'), 0xef, 0xbb, 0xbf, ...Buffer.from('"}')]), T(1, 'c', '\n\ufeff'));
    accepts(official('1', '"c"', '"\uffff\ufffe"'), T(1, 'c', '\uffff\ufffe'));
  });

  test('invalid UTF-8 inside strings is 400, wherever the string is', () => {
    const sequences: number[][] = [
      [0xff],
      [0xfe],
      [0x80], // lone continuation byte
      [0xbf],
      [0xc0, 0x80], // overlong NUL
      [0xc1, 0xbf], // overlong
      [0xe0, 0x80, 0x80], // overlong
      [0xf0, 0x80, 0x80, 0x80], // overlong
      [0xc3], // truncated two-byte
      [0xe2, 0x82], // truncated three-byte
      [0xf0, 0x9f, 0x98], // truncated four-byte
      [0xed, 0xa0, 0x80], // UTF-8 encoded surrogate U+D800
      [0xed, 0xbf, 0xbf], // U+DFFF
      [0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80], // CESU-8 surrogate pair
      [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
      [0xf5, 0x80, 0x80, 0x80],
      [0xc3, 0x41], // lead byte followed by ASCII
    ];
    const wrap = (before: string, seq: number[], after: string): Buffer =>
      Buffer.concat([Buffer.from(before), Buffer.from(seq), Buffer.from(after)]);
    for (const seq of sequences) {
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"', seq, '"}'), 400);
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"a', seq, 'b"}'), 400);
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"\\n', seq, '"}'), 400); // after an escape
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"é', seq, '"}'), 400); // after valid UTF-8
      rejects(wrap('{"valor":1,"tipo":"', seq, '","descricao":"a"}'), 400);
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"a","x":"', seq, '"}'), 400); // unknown value
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"a","', seq, '":1}'), 400); // unknown key
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"a","x":{"', seq, '":1}}'), 400); // nested key
      rejects(wrap('{"valor":1,"tipo":"c","descricao":"a","x":["', seq, '"]}'), 400); // array element
      rejects(wrap('', seq, ''), 400);
    }
  });

  test('a failed UTF-8 decode does not poison the next parse', () => {
    rejects(bytes([...Buffer.from('{"valor":1,"tipo":"c","descricao":"'), 0xe2, 0x82, ...Buffer.from('"}')]), 400);
    accepts('{"valor":1,"tipo":"c","descricao":"€uro"}', T(1, 'c', '€uro'));
    rejects(bytes([...Buffer.from('{"valor":1,"tipo":"c","descricao":"'), 0xf0, 0x9f, ...Buffer.from('"}')]), 400);
    // The rest of the truncated sequence, alone, is invalid too; the full sequence is fine.
    rejects(bytes([...Buffer.from('{"valor":1,"tipo":"c","descricao":"\\n'), 0x98, 0x80, ...Buffer.from('"}')]), 400);
    accepts(bytes([...Buffer.from('{"valor":1,"tipo":"c","descricao":"\\n'), 0xf0, 0x9f, 0x98, 0x80, ...Buffer.from('"}')]), T(1, 'c', '\n😀'));
  });

  test('no state leaks from one parse to the next', () => {
    accepts('{"valor":5,"tipo":"c","descricao":"a"}', T(5, 'c', 'a'));
    rejects('{"tipo":"c","descricao":"a"}', 422);
    accepts('{"valor":5,"tipo":"d","descricao":"a"}', T(5, 'd', 'a'));
    rejects('{"valor":5,"descricao":"a"}', 422);
    accepts('{"valor":5,"tipo":"d","descricao":"a"}', T(5, 'd', 'a'));
    rejects('{"valor":5,"tipo":"d"}', 422);
    accepts('{"valor":6,"tipo":"d","descricao":"b"}', T(6, 'd', 'b'));
    rejects('{"valor":1.5,"tipo":"d","descricao":"b"}', 422);
    rejects('{"valor":6,"tipo":"d","descricao":"b"', 400);
    rejects('{"valor":"6","tipo":"d","descricao":"b"}', 422);
  });

  test('a body that is a view into a larger buffer is read within its bounds', () => {
    const big = Buffer.from('xxxxx{"valor":77,"tipo":"d","descricao":"slice"}yyyyy');
    accepts(big.subarray(5, big.length - 5), T(77, 'd', 'slice'));
    rejects(big.subarray(5, big.length - 6), 400); // the closing brace is outside the view
    const tight = Buffer.from('{"valor":7,"tipo":"c","descricao":"abc"}1');
    accepts(tight.subarray(0, tight.length - 1), T(7, 'c', 'abc'));
    const number = Buffer.from('{"valor":7,"tipo":"c","descricao":"a","x":1}');
    rejects(number.subarray(0, number.length - 1), 400);
    const literal = Buffer.from('{"valor":7,"tipo":"c","descricao":"a","x":true}');
    rejects(literal.subarray(0, literal.length - 2), 400);
  });
});

// ---------------------------------------------------------------------------------------------
// parseTransaction: size and depth
// ---------------------------------------------------------------------------------------------

describe('parseTransaction: size and depth', () => {
  const valid = '{"valor":1,"tipo":"c","descricao":"a"}';

  test(`a body of exactly MAX_BODY_BYTES (${MAX_BODY_BYTES}) is parsed`, () => {
    const body = valid + ' '.repeat(MAX_BODY_BYTES - valid.length);
    assert.equal(Buffer.byteLength(body), MAX_BODY_BYTES);
    accepts(body, T(1, 'c', 'a'));
  });

  test('a body over MAX_BODY_BYTES is 413, whatever it holds', () => {
    rejects(valid + ' '.repeat(MAX_BODY_BYTES - valid.length + 1), 413);
    rejects('x'.repeat(MAX_BODY_BYTES + 1), 413);
    rejects(Buffer.alloc(MAX_BODY_BYTES * 4, 0x5b), 413);
    const padded = `{"pad":"${'p'.repeat(MAX_BODY_BYTES)}","valor":1,"tipo":"c","descricao":"a"}`;
    rejects(padded, 413);
  });

  test('deeply nested arrays filling MAX_BODY_BYTES do not throw', () => {
    const tail = ',"valor":1,"tipo":"c","descricao":"a"}';
    const head = '{"x":';
    const depth = Math.floor((MAX_BODY_BYTES - head.length - tail.length) / 2);
    const body = head + '['.repeat(depth) + ']'.repeat(depth) + tail;
    assert.ok(Buffer.byteLength(body) <= MAX_BODY_BYTES && Buffer.byteLength(body) > MAX_BODY_BYTES - 2);
    accepts(body, T(1, 'c', 'a'));
    rejects('['.repeat(MAX_BODY_BYTES), 400); // unclosed
    rejects('['.repeat(MAX_BODY_BYTES / 2) + ']'.repeat(MAX_BODY_BYTES / 2), 422);
    rejects('{"x":' + '['.repeat(MAX_BODY_BYTES - 5), 400);
  });

  test('deeply nested objects filling MAX_BODY_BYTES do not throw', () => {
    const tail = ',"valor":1,"tipo":"c","descricao":"a"}';
    const depth = Math.floor((MAX_BODY_BYTES - 1 - tail.length) / 6);
    const body = '{' + '"a":{'.repeat(depth) + '}'.repeat(depth) + tail;
    assert.ok(Buffer.byteLength(body) <= MAX_BODY_BYTES);
    accepts(body, T(1, 'c', 'a'));
    const unclosed = '{"a":'.repeat(Math.floor(MAX_BODY_BYTES / 5));
    rejects(unclosed, 400);
    const mixed = '[{"a":'.repeat(Math.floor(MAX_BODY_BYTES / 6));
    rejects(mixed, 400);
  });
});

// ---------------------------------------------------------------------------------------------
// descriptionProblem
// ---------------------------------------------------------------------------------------------

describe('descriptionProblem', () => {
  test('accepts 1 to MAX_DESCRIPTION code points', () => {
    for (const text of ['a', 'ab', 'abcdefghij', ' ', '          ', 'é', '😀', '😀'.repeat(10), '\u{10FFFF}'.repeat(10), '\uffff', 'a\u0001b', '\ufeff']) {
      assert.equal(descriptionProblem(text), '', JSON.stringify(text));
    }
  });

  test('refuses empty and too long texts with a message naming the range', () => {
    for (const text of ['', 'abcdefghijk', '😀'.repeat(11), 'a'.repeat(1000), '😀'.repeat(5) + 'abcdef']) {
      const problem = descriptionProblem(text);
      assert.notEqual(problem, '', JSON.stringify(text));
      assert.match(problem, new RegExp(`1 to ${MAX_DESCRIPTION}`));
    }
  });

  test('counts a surrogate pair as one and a mixed text correctly', () => {
    assert.equal(descriptionProblem('😀'.repeat(9) + 'a'), '');
    assert.notEqual(descriptionProblem('😀'.repeat(10) + 'a'), '');
    assert.equal(descriptionProblem('a😀b😀c😀d😀e😀'), '');
  });

  test('refuses lone surrogates anywhere', () => {
    for (const text of ['\ud800', '\udbff', '\udc00', '\udfff', 'a\ud83d', '\ud83da', '\ude00\ud83d', '\ud83d\ud83d', '😀\udc00', 'abc\ud800def', '\ud800'.repeat(20)]) {
      const problem = descriptionProblem(text);
      assert.notEqual(problem, '', JSON.stringify(text));
      assert.match(problem, /Unicode/);
    }
  });

  test('refuses NUL anywhere', () => {
    for (const text of ['\u0000', 'a\u0000', '\u0000a', 'abc\u0000def']) {
      assert.match(descriptionProblem(text), /NUL/, JSON.stringify(text));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// errorBody, isRejection, TRANSACTION_STATUS
// ---------------------------------------------------------------------------------------------

describe('errorBody', () => {
  test('is a JSON object with the message under "error"', () => {
    for (const message of ['not found', '', 'a "quoted" word', 'back\\slash', 'line\nbreak\r\ttab', 'ctrl \u0000\u0001\u001f', 'ação ✓ 😀', '</script>', '{"error":"x"}']) {
      const body = errorBody(message);
      assert.deepEqual(JSON.parse(body), { error: message }, JSON.stringify(message));
    }
  });

  test('escapes what must be escaped and stays valid UTF-8', () => {
    assert.equal(errorBody('a"b'), '{"error":"a\\"b"}');
    assert.equal(errorBody('a\\b'), '{"error":"a\\\\b"}');
    assert.equal(errorBody('a\nb'), '{"error":"a\\nb"}');
    assert.equal(errorBody('\u0000'), '{"error":"\\u0000"}');
    // A lone surrogate is written as an escape, so the body survives a UTF-8 round trip.
    const body = errorBody('x\ud800y');
    assert.equal(body, '{"error":"x\\ud800y"}');
    assert.equal(Buffer.from(body, 'utf8').toString('utf8'), body);
    assert.deepEqual(JSON.parse(body), { error: 'x\ud800y' });
  });

  test('messages of rejections round-trip through it', () => {
    const rejection = parseTransaction(Buffer.from('{"valor":1,"tipo":"c","descricao":"a'));
    assert.ok(isRejection(rejection));
    assert.deepEqual(JSON.parse(errorBody(rejection.error)), { error: rejection.error });
  });
});

describe('isRejection', () => {
  test('tells rejections from transactions', () => {
    assert.equal(isRejection({ status: 400, error: 'x' }), true);
    assert.equal(isRejection({ status: 422, error: '' }), true);
    assert.equal(isRejection({ valor: 1, tipo: 'c', descricao: 'a' }), false);
    assert.equal(isRejection(parseTransaction(Buffer.from('{}'))), true);
    assert.equal(isRejection(parseTransaction(Buffer.from('{"valor":1,"tipo":"c","descricao":"a"}'))), false);
  });
});

describe('TRANSACTION_STATUS', () => {
  test('maps every post_transaction status to its HTTP status', () => {
    assert.deepEqual({ ...TRANSACTION_STATUS }, { ok: 200, over_limit: 422, overflow: 422, no_account: 404 });
    assert.equal(TRANSACTION_STATUS.unknown, undefined);
    assert.equal(TRANSACTION_STATUS.OK, undefined);
  });

  test('covers every status procedures.sql can return', () => {
    const sql = fs.readFileSync(path.join(__dirname, '..', '..', 'procedures.sql'), 'utf8');
    const fn = sql.slice(sql.indexOf('CREATE FUNCTION post_transaction'));
    const body = fn.slice(0, fn.indexOf('$$;'));
    const returned = new Set<string>();
    // `status := 'x'` and the branches of `status := CASE … THEN 'x' … ELSE 'y' END`.
    for (const m of body.matchAll(/(?:status\s*:=|THEN|ELSE)\s*'([a-z_]+)'/g)) returned.add(m[1]);
    assert.ok(returned.size >= 4, `found statuses ${[...returned].join(', ')}`);
    for (const status of returned) {
      assert.ok(Object.hasOwn(TRANSACTION_STATUS, status), `status ${status} from procedures.sql is mapped`);
    }
    assert.deepEqual([...returned].sort(), Object.keys(TRANSACTION_STATUS).sort());
  });
});

// ---------------------------------------------------------------------------------------------
// readConfig
// ---------------------------------------------------------------------------------------------

describe('readConfig', () => {
  test('empty values mean the default', () => {
    assert.deepEqual(
      readConfig({ PORT: '', HOST: '', DATABASE_URL: '', POOL_SIZE: '', MAX_QUEUE: '', QUERY_TIMEOUT_MS: '', DRAIN_MS: '', STARTUP_TIMEOUT_MS: '', WARM_UP_REQUESTS: '' }),
      readConfig({}),
    );
  });

  test('reads every variable', () => {
    assert.deepEqual(
      readConfig({
        SOCKET_PATH: '/run/crebitos/api1.sock',
        PORT: '8080',
        HOST: '127.0.0.1',
        DATABASE_URL: 'host=/tmp port=5433 user=app dbname=rinha',
        POOL_SIZE: '12',
        MAX_QUEUE: '0',
        QUERY_TIMEOUT_MS: '750',
        DRAIN_MS: '250',
        STARTUP_TIMEOUT_MS: '1500',
        WARM_UP_REQUESTS: '0',
      }),
      {
        socketPath: '/run/crebitos/api1.sock',
        port: 8080,
        host: '127.0.0.1',
        database: 'host=/tmp port=5433 user=app dbname=rinha',
        poolSize: 12,
        maxQueue: 0,
        queryTimeoutMs: 750,
        drainMs: 250,
        startupTimeoutMs: 1500,
        warmUpRequests: 0,
      },
    );
  });

  test('accepts each minimum', () => {
    const config = readConfig({ PORT: '0', POOL_SIZE: '1', MAX_QUEUE: '0', QUERY_TIMEOUT_MS: '100', DRAIN_MS: '0', STARTUP_TIMEOUT_MS: '0' });
    assert.equal(config.port, 0);
    assert.equal(config.queryTimeoutMs, 100);
    assert.equal(config.poolSize, 1);
    assert.equal(config.maxQueue, 0);
    assert.equal(config.drainMs, 0);
    assert.equal(config.startupTimeoutMs, 0);
  });

  test('ignores unrelated variables, including the removed PG_CALLS and JSON_IN switches', () => {
    assert.deepEqual(readConfig({ PATH: '/bin', NODE_ENV: 'production', port: '1', PG_CALLS: 'sync', JSON_IN: 'node' }), readConfig({}));
  });

  test('bad values throw an error naming the variable', () => {
    const bad: Array<[string, string]> = [
      ['PORT', 'abc'],
      ['PORT', '-1'],
      ['PORT', '1.5'],
      ['PORT', '3000x'],
      ['PORT', 'NaN'],
      ['PORT', 'Infinity'],
      ['POOL_SIZE', '0'],
      ['POOL_SIZE', '-3'],
      ['POOL_SIZE', 'two'],
      ['POOL_SIZE', '2.5'],
      ['MAX_QUEUE', '-1'],
      ['MAX_QUEUE', 'lots'],
      ['DRAIN_MS', '-1'],
      ['DRAIN_MS', '1s'],
      ['DRAIN_MS', '0.5'],
      ['QUERY_TIMEOUT_MS', '99'],
      ['QUERY_TIMEOUT_MS', '2s'],
      ['STARTUP_TIMEOUT_MS', '-5'],
      ['STARTUP_TIMEOUT_MS', '30s'],
    ];
    for (const [name, value] of bad) {
      assert.throws(
        () => readConfig({ [name]: value }),
        (err: unknown) => {
          assert.ok(err instanceof Error);
          assert.ok(err.message.includes(name), `message ${JSON.stringify(err.message)} names ${name}`);
          assert.ok(err.message.includes(JSON.stringify(value)), `message ${JSON.stringify(err.message)} shows ${value}`);
          return true;
        },
        `${name}=${value}`,
      );
    }
  });
});

describe('the start-up warm-up', () => {
  // A stand-in for the service's handler: the answers the real one gives each kind of warm-up request.
  const handler: http.RequestListener = (req, res) => {
    req.resume();
    req.on('end', () => {
      const status = req.method === 'GET' ? 200 : req.url === `/clientes/${MAX_INT4}/transacoes` ? 404 : 422;
      res.writeHead(status, { 'content-length': 2 }).end('{}');
    });
  };
  const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'crebitos-warm-up-'));

  test("serves every request on a unix socket beside the service's, replacing a stale file, and leaves none behind", async () => {
    const dir = tmp();
    const socketPath = path.join(dir, 'api1.sock');
    fs.writeFileSync(`${socketPath}.warm-up`, 'left by a warm-up cut short');
    const logged: string[] = [];
    const answered = await warmUp(handler, 40, socketPath, (m) => logged.push(m));
    assert.deepEqual([...answered].sort(([a], [b]) => a - b), [[200, 20], [404, 10], [422, 10]]);
    assert.deepEqual(logged, []);
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  test('falls back to a loopback port, and says so, when its socket cannot be used', async () => {
    const cases = [path.join(tmp(), 'no-such-directory', 'api1.sock'), path.join(tmp(), `${'x'.repeat(120)}.sock`)];
    for (const socketPath of cases) {
      const logged: string[] = [];
      const answered = await warmUp(handler, 8, socketPath, (m) => logged.push(m));
      assert.equal(answered.get(200), 4, socketPath);
      assert.equal(logged.length, 1);
      assert.match(logged[0], /warm-up socket .* unusable \(.+\); warming up on a loopback port instead/);
    }
  });

  test('without a unix socket it warms up on a loopback port, silently', async () => {
    const logged: string[] = [];
    assert.equal((await warmUp(handler, 4, '', (m) => logged.push(m))).get(404), 1);
    assert.deepEqual(logged, []);
  });
});

describe("the service's server", () => {
  const accept = (server: net.Server, code: string): boolean => server.emit('error', Object.assign(new Error(`accept ${code}`), { code }));
  /** A server watched by keepServingThroughErrors, on a mocked clock from 0, with what it logged and how often it exited. */
  const watched = (t: TestContext): { server: net.Server; logged: string[]; exits: () => number } => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
    const server = new net.Server();
    const logged: string[] = [];
    let exits = 0;
    keepServingThroughErrors(server, (m) => logged.push(m), () => exits++);
    return { server, logged, exits: () => exits };
  };

  test('logs the first error of an interval at once, counts the rest for its end, and never throws', (t) => {
    const { server, logged, exits } = watched(t);
    // Without a listener, emit('error') throws: the crash this prevents.
    assert.equal(accept(server, 'EMFILE'), true);
    t.mock.timers.tick(SERVER_ERROR_INTERVAL_MS - 1);
    accept(server, 'EMFILE');
    accept(server, 'ENFILE');
    assert.equal(logged.length, 1);
    t.mock.timers.tick(1);
    accept(server, 'EMFILE');
    // A later interval starts its count again.
    t.mock.timers.tick(SERVER_ERROR_INTERVAL_MS);
    accept(server, 'EMFILE');
    t.mock.timers.tick(SERVER_ERROR_INTERVAL_MS);
    assert.deepEqual(logged, [
      'server error (accept EMFILE); still serving',
      `server errors: 2 more within ${SERVER_ERROR_INTERVAL_MS} ms, the last (accept ENFILE); still serving`,
      'server error (accept EMFILE); still serving',
      'server error (accept EMFILE); still serving',
    ]);
    assert.equal(exits(), 0);
  });

  test('exits for a restart when errors come faster than it can serve through', (t) => {
    const { server, logged, exits } = watched(t);
    for (let i = 0; i < SERVER_ERROR_STORM; i++) accept(server, 'EMFILE');
    assert.equal(exits(), 0);
    accept(server, 'EMFILE');
    assert.equal(exits(), 1);
    assert.equal(logged.at(-1), `server error (accept EMFILE): over ${SERVER_ERROR_STORM} within ${SERVER_ERROR_INTERVAL_MS} ms; exiting for a restart`);
  });

  test('serve listens with exactly one error listener, its own, and keeps answering through errors', async () => {
    const socketPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'crebitos-serve-')), 'api1.sock');
    const logged: string[] = [];
    const server = await serve((_req, res) => res.end('ok'), { socketPath, port: 0, host: '' }, (m) => logged.push(m));
    try {
      assert.equal(server.listenerCount('error'), 1);
      accept(server, 'EMFILE');
      accept(server, 'EMFILE');
      const body = await new Promise<string>((resolve, reject) => {
        http.get({ socketPath, path: '/' }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      assert.equal(body, 'ok');
      assert.deepEqual(logged, ['server error (accept EMFILE); still serving']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
