// The chaos scenarios' pure parts, without a stack: pg-flap's schedule and its per-flap judgement
// on made-up request records, and the stack's fixed restart delay that pg-flap relies on.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MIN_UP_MS, STEADY_WITHIN_MS, judgeFlaps, planFlaps, type Flap } from '../loadtest/chaos/pg-flap';
import type { RequestOutcome } from '../loadtest/chaos/scenario-kit';
import { readSettings } from '../stack/settings';

describe('pg-flap schedule', () => {
  it('is the same for the same seed and differs for another', () => {
    assert.deepEqual(planFlaps(20, 120, 7), planFlaps(20, 120, 7));
    assert.notDeepEqual(planFlaps(20, 120, 7).upMs, planFlaps(20, 120, 8).upMs);
  });

  it('mixes the three faults in equal shares, in an irregular order and at irregular intervals', () => {
    const plan = planFlaps(20, 120, 3);
    const count = (f: string): number => plan.faults.filter((x) => x === f).length;
    assert.deepEqual([count('restart'), count('immediate'), count('kill')].sort(), [6, 7, 7]);
    assert.notDeepEqual(plan.faults.slice(0, 6), ['restart', 'immediate', 'kill', 'restart', 'immediate', 'kill']);
    assert.ok(Math.min(...plan.upMs) >= MIN_UP_MS);
    assert.ok(Math.max(...plan.upMs) - Math.min(...plan.upMs) > 1000, `up-times ${plan.upMs.join(', ')}`);
  });

  it('fits in the duration, and refuses a duration too short for the flaps', () => {
    const plan = planFlaps(5, 30, 1);
    assert.ok(plan.upMs.reduce((a, b) => a + b, 0) + 5 * 1500 <= 30_000);
    assert.throws(() => planFlaps(20, 60, 1), /do not fit in 60 s.*--duration \d+/);
    assert.throws(() => planFlaps(0, 60, 1), /positive/);
  });
});

let seq = 0;
const req = (startMs: number, endMs: number, status: number, group: RequestOutcome['group'] = 'créditos'): RequestOutcome => ({
  seq: seq++,
  group,
  method: group === 'extratos' ? 'GET' : 'POST',
  client: 1,
  status,
  scheduledMs: startMs,
  startMs,
  endMs,
});

/** 200s every 100 ms from `from` to `to` (ms). */
const oks = (from: number, to: number): RequestOutcome[] => Array.from({ length: Math.floor((to - from) / 100) }, (_, i) => req(from + i * 100, from + i * 100 + 2, 200));

describe('pg-flap judgement', () => {
  const flaps: Flap[] = [
    { fault: 'restart', faultMs: 5000, backMs: 6000 },
    { fault: 'kill', faultMs: 12_000, backMs: 13_000 },
  ];

  it('passes 503s confined to each flap, steady within the bound of "back", with 200s after', () => {
    const outcomes = [...oks(0, 5000), req(5000, 5100, 503), req(6500, 6600, 503), ...oks(7000, 12_000), req(12_100, 12_200, 503), ...oks(13_500, 20_000)];
    const r = judgeFlaps(outcomes, flaps, 20_000);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.perFlap.map((j) => [j.failed, j.steadyAfterBackMs, j.outageMs, j.servedAfter]),
      [
        [2, 600, 1000, true],
        [1, -800, 1000, true],
      ],
    );
    assert.equal(r.perFlap[0].firstOkAfterBackMs, 1002);
  });

  it('fails a flap whose errors last past the bound after "back"', () => {
    const late = 6000 + STEADY_WITHIN_MS + 500;
    const outcomes = [...oks(0, 5000), req(5000, 5100, 503), req(late - 100, late, 503), ...oks(late, 12_000), ...oks(13_500, 20_000)];
    const r = judgeFlaps(outcomes, flaps, 20_000);
    assert.equal(r.problems.length, 1);
    assert.match(r.problems[0], /flap 1 \(restart at 5 s\): steady only 3500 ms after/);
  });

  it('fails resets, 502s, failures before the first fault, and a flap with no 200 after it', () => {
    const reset = { ...req(5000, 5010, 0), error: 'ECONNRESET' };
    const outcomes = [...oks(0, 4000), req(4100, 4200, 502), reset, ...oks(7000, 12_000), req(12_100, 12_200, 503)];
    const r = judgeFlaps(outcomes, flaps, 20_000);
    assert.ok(r.problems.some((p) => /other than 200\/422\/503: .*502.*error\(ECONNRESET\)/.test(p)), r.problems.join('\n'));
    assert.ok(r.problems.some((p) => /1 request\(s\) failed before the first fault/.test(p)));
    assert.ok(r.problems.some((p) => /flap 2 \(kill at 12 s\): no 200/.test(p)));
  });

  it('fails a flap whose postmaster never came back', () => {
    const r = judgeFlaps([...oks(0, 5000), ...oks(7000, 9000)], [{ fault: 'immediate', faultMs: 5000, backMs: null }], 10_000);
    assert.match(r.problems.join('\n'), /not back within 30 s/);
  });

  it("counts a debit's 422 as an answer", () => {
    const r = judgeFlaps([...oks(0, 5000), req(5500, 5510, 422, 'débitos'), req(5600, 5610, 503), ...oks(6500, 8000)], [{ fault: 'restart', faultMs: 5000, backMs: 6000 }], 8000);
    assert.deepEqual(r.problems, []);
    assert.equal(r.perFlap[0].failed, 1);
  });
});

describe("the stack's fixed restart delay", () => {
  it('reads CREBITOS_RESTART_DELAY_MS, defaults to the backoff policy, refuses nonsense', () => {
    assert.equal(readSettings({ CREBITOS_RESTART_DELAY_MS: '500' }).restartDelayMs, 500);
    assert.equal(readSettings({}).restartDelayMs, undefined);
    assert.throws(() => readSettings({ CREBITOS_RESTART_DELAY_MS: 'soon' }), /whole number of milliseconds/);
  });
});
