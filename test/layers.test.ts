// The harness's layering, checked from the sources: no import cycles, and no folder importing a
// higher one. From the bottom: the product (server.ts) and the native stack (stack/); the shared
// library (loadtest/lib/); the official test, capacity and the hostile input (loadtest/official/,
// loadtest/capacity/, loadtest/hostile/); the fault scenarios and the experiments
// (loadtest/chaos/, loadtest/bench/); the tests on top.

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO } from '../stack/settings';

const RANKS: [prefix: string, rank: number][] = [
  ['server.ts', 0],
  ['stack/', 0],
  ['loadtest/lib/', 1],
  ['loadtest/official/', 2],
  ['loadtest/capacity/', 2],
  ['loadtest/hostile/', 2],
  ['loadtest/chaos/', 3],
  ['loadtest/bench/', 3],
  ['test/', 4],
];

const layerOf = (file: string): [string, number] => {
  const found = RANKS.find(([prefix]) => file === prefix || file.startsWith(prefix));
  if (!found) throw new Error(`${file} belongs to no layer; add its folder to RANKS`);
  return found;
};

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(REPO, dir), { withFileTypes: true }).flatMap((d) => {
    const rel = path.join(dir, d.name);
    if (d.isDirectory()) return ['node_modules', 'dist', '.git'].includes(d.name) || d.name.startsWith('.stack') || d.name === 'reports' ? [] : sources(rel);
    return d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [rel] : [];
  });
}

/** Every relative module a file imports, re-exports or requires, as repository paths. */
export function importsOf(file: string, text: string): string[] {
  const specs = [...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^import\s+)'(\.{1,2}\/[^']*)'/gm)].map((m) => m[1]);
  return specs.map((spec) => {
    const base = path.normalize(path.join(path.dirname(file), spec));
    const candidates = [`${base}.ts`, path.join(base, 'index.ts')];
    const found = candidates.find((c) => fs.existsSync(path.join(REPO, c)));
    if (!found) throw new Error(`${file}: cannot resolve ${spec}`);
    return found;
  });
}

/** The cycles of a graph (its strongly connected components with more than one node, or a self-loop). */
export function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indices.get(w)!));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indices.has(v)) visit(v);
  return out;
}

const files = ['server.ts', ...sources('stack'), ...sources('loadtest'), ...sources('test')];
const graph = new Map(files.map((f) => [f, importsOf(f, fs.readFileSync(path.join(REPO, f), 'utf8'))]));

test('the check itself finds cycles and resolves imports', () => {
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']]])), [['a', 'b', 'c']]);
  assert.deepEqual(cycles(new Map([['a', ['b']], ['b', []]])), []);
  // Written in pieces, so this file's own scan does not read them as its imports.
  const text = ['import { x } from', "'../lib/stats';\nimport type { Y } from", "'../../stack/state';"].join(' ');
  assert.deepEqual(importsOf('loadtest/bench/bench.ts', text), ['loadtest/lib/stats.ts', 'stack/state.ts']);
});

test('no import cycles among the sources', () => {
  assert.ok(graph.size > 40, `${graph.size} files`);
  assert.deepEqual(cycles(graph), []);
});

test('no folder imports a higher layer, nor a sibling of its own rank', () => {
  const wrong: string[] = [];
  for (const [file, imports] of graph) {
    const [folder, rank] = layerOf(file);
    for (const target of imports) {
      const [targetFolder, targetRank] = layerOf(target);
      if (targetFolder !== folder && targetRank >= rank) wrong.push(`${file} imports ${target}`);
    }
  }
  assert.deepEqual(wrong, []);
});
