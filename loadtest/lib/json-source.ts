// A small JSON reader that keeps every number's source text: the official test's checks, and the
// tests' check that responses write integers only. The k6 port (official/rinha.k6.js) keeps its
// own copy, because k6's runtime cannot import this module.
//
// Gatling's jmesPath checks (Jackson underneath) see numbers as they were written: `saldo.total`
// read "as a string" is "0" for `0` but "0.0" for `0.0`, and the consistency validator then fails
// to parse it. JSON.parse forgets that difference, so this parser keeps every number's source
// text. Bodies are small (< 2 KB), so a hand-written recursive-descent parser costs nothing here.

/** A JSON number with the exact text it had in the body. */
export class JsonNumber {
  constructor(readonly raw: string) {}
  get value(): number {
    return Number(this.raw);
  }
}

export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | { [key: string]: JsonValue };

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/** Parses `text` strictly (RFC 8259); throws SyntaxError on anything else. */
export function parseJson(text: string): JsonValue {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at offset ${i}`);
  };
  const skip = (): void => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) i++;
      else break;
    }
  };
  const string = (): string => {
    const start = i; // at the opening quote
    i++;
    for (;;) {
      if (i >= text.length) fail('unterminated string');
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x5c) i++; // skip the escaped character
      else if (c < 0x20) fail('control character in string');
      i++;
    }
    i++;
    // The slice is a complete JSON string literal: let the engine decode its escapes.
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (): JsonValue => {
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj: { [key: string]: JsonValue } = Object.create(null);
      skip();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        skip();
        if (text[i] !== '"') fail('expected a key');
        const key = string();
        skip();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        obj[key] = value();
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return obj;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      skip();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        skip();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return arr;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (text.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (text.startsWith('null', i)) {
      i += 4;
      return null;
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m) {
      i += m[0].length;
      return new JsonNumber(m[0]);
    }
    return fail('unexpected character');
  };
  const result = value();
  skip();
  if (i !== text.length) fail('trailing characters');
  return result;
}

/**
 * The subset of JMESPath the simulation uses: dotted fields and array indexes, e.g.
 * `saldo.total` or `ultimas_transacoes[0].descricao`. Returns undefined when nothing is found
 * (JMESPath's null, which Gatling reports as "found nothing").
 */
export function jmesPath(value: JsonValue | undefined, path: string): JsonValue | undefined {
  let current: JsonValue | undefined = value;
  for (const part of path.match(/[^.[\]]+|\[\d+\]/g) ?? []) {
    if (current === undefined || current === null) return undefined;
    if (part.startsWith('[')) {
      if (!Array.isArray(current)) return undefined;
      current = current[Number(part.slice(1, -1))];
    } else {
      if (typeof current !== 'object' || Array.isArray(current) || current instanceof JsonNumber) return undefined;
      current = Object.prototype.hasOwnProperty.call(current, part) ? current[part] : undefined;
    }
  }
  return current === null ? undefined : current;
}

/** Gatling's `ofType[String]`: strings as is, numbers as written, anything else as JSON text. */
export function asGatlingString(value: JsonValue): string {
  if (typeof value === 'string') return value;
  if (value instanceof JsonNumber) return value.raw;
  if (typeof value === 'boolean' || value === null) return String(value);
  return stringify(value);
}

/** Gatling's `ofType[Int]`: only an integer JSON number within 32 bits maps to an Int. */
export function asGatlingInt(value: JsonValue): number | undefined {
  if (!(value instanceof JsonNumber) || !/^-?\d+$/.test(value.raw)) return undefined;
  const n = Number(value.raw);
  return n >= -2147483648 && n <= 2147483647 ? n : undefined;
}

function stringify(value: JsonValue): string {
  if (value instanceof JsonNumber) return value.raw;
  if (Array.isArray(value)) return `[${value.map(stringify).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.keys(value).map((k) => `${JSON.stringify(k)}:${stringify(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The value as JSON.parse gives it (numbers as numbers). */
export function toPlain(value: JsonValue): unknown {
  if (value instanceof JsonNumber) return value.value;
  if (Array.isArray(value)) return value.map(toPlain);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toPlain(v)]));
  return value;
}

/** The source text of every number in the value. */
export function numberTexts(value: JsonValue): string[] {
  if (value instanceof JsonNumber) return [value.raw];
  if (Array.isArray(value)) return value.flatMap(numberTexts);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(numberTexts);
  return [];
}
