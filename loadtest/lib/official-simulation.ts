// The official Rinha de Backend 2024/Q1 Gatling simulation (RinhaBackendCrebitosSimulation.scala,
// described step by step in docs/contest.md) as data and pure functions: the official mix,
// injection profiles and the arrival schedule, request payloads, Gatling-like checks with their
// failure messages, the consistency validator, and the contest's payout computation (the judging,
// also in docs/contest.md). No I/O here. It is in lib/ rather than official/ because every
// generator of the harness sends these requests: official/official-test.ts runs the whole
// simulation, the open-model generator, chaos, profile and coldstart send its requests and mix.

import { asGatlingInt, asGatlingString, jmesPath, parseJson, type JsonValue } from './json-source';

// ---------------------------------------------------------------------------------------------
// Request groups (Gatling request names) and constants
// ---------------------------------------------------------------------------------------------

export const GROUPS = ['débitos', 'créditos', 'extratos', 'validações'] as const;
export type Group = (typeof GROUPS)[number];
export type LoadGroup = Exclude<Group, 'validações'>;
export const LOAD_GROUPS: readonly LoadGroup[] = ['débitos', 'créditos', 'extratos'];

export const USER_AGENT = 'Agente do Caos - 2024/Q1';
/** Gatling's default request timeout. */
export const REQUEST_TIMEOUT_MS = 60_000;
/** Response-time groups of the official reports (gatling.charting.indicators.lowerBound = 250). */
export const LOWER_BOUND_MS = 250;
export const HIGHER_BOUND_MS = 1200;

/** The five clients and their limits (S5's feeder). */
export const CLIENTS: readonly { id: number; limite: number }[] = [
  { id: 1, limite: 1000 * 100 },
  { id: 2, limite: 800 * 100 },
  { id: 3, limite: 10000 * 100 },
  { id: 4, limite: 100000 * 100 },
  { id: 5, limite: 5000 * 100 },
];

/** Requests of the validation scenarios S1-S6: 25 + 1 + 25 + 1 + 5 × 14 + 1. */
export const VALIDATION_REQUESTS = 25 + 1 + 25 + 1 + CLIENTS.length * 14 + 1;

/** Requests per second of each kind, or their proportions. */
export interface Mix {
  debits: number;
  credits: number;
  statements: number;
}

/** The official peak: 220 débitos, 110 créditos and 10 extratos per second (340 in all). */
export const OFFICIAL_MIX: Readonly<Mix> = { debits: 220, credits: 110, statements: 10 };

/** The official checks' notion of success for the load: 200, and 422 for a debit (insufficient limit). */
export const isOkStatus = (group: LoadGroup, status: number): boolean => status === 200 || (group === 'débitos' && status === 422);

// ---------------------------------------------------------------------------------------------
// Injection profiles and the open-model arrival schedule
// ---------------------------------------------------------------------------------------------

export interface ScenarioInjection {
  group: LoadGroup;
  /** rampUsersPerSec(startRate).to(peakRate).during(rampSeconds), then constantUsersPerSec(peakRate).during(constantSeconds) */
  startRate: number;
  peakRate: number;
}

export interface Profile {
  name: 'full' | 'quick';
  rampSeconds: number;
  constantSeconds: number;
  scenarios: ScenarioInjection[];
  description: string;
}

/** The official setUp: 2 minutes of ramp then 2 minutes at 220 + 110 + 10 = 340 users/s. */
export const FULL_PROFILE: Profile = {
  name: 'full',
  rampSeconds: 120,
  constantSeconds: 120,
  scenarios: [
    { group: 'débitos', startRate: 1, peakRate: OFFICIAL_MIX.debits },
    { group: 'créditos', startRate: 1, peakRate: OFFICIAL_MIX.credits },
    { group: 'extratos', startRate: 1, peakRate: OFFICIAL_MIX.statements },
  ],
  description: 'official: ramp 1→220/110/10 users/s over 120 s, then constant 120 s',
};

/**
 * CI profile: the same shape compressed. Time × 1/4 (30 s ramp + 30 s constant) and peak rates
 * × 1/2 (110/55/5 users/s, 170/s in all; the ramp still starts at 1/s), so it carries 1/8 of the
 * load requests. The validation scenarios S1-S6 are unchanged (123 requests).
 */
export const QUICK_PROFILE: Profile = {
  name: 'quick',
  rampSeconds: 30,
  constantSeconds: 30,
  scenarios: [
    { group: 'débitos', startRate: 1, peakRate: OFFICIAL_MIX.debits / 2 },
    { group: 'créditos', startRate: 1, peakRate: OFFICIAL_MIX.credits / 2 },
    { group: 'extratos', startRate: 1, peakRate: OFFICIAL_MIX.statements / 2 },
  ],
  description: 'quick (CI): time × 1/4 (ramp 30 s + constant 30 s), peak rates × 1/2 (1→110/55/5 users/s)',
};

export function loadSeconds(profile: Profile): number {
  return profile.rampSeconds + profile.constantSeconds;
}

/** Users of rampUsersPerSec(r1).to(r2).during(d): the integral of the rate, (r1 + r2) / 2 × d. */
export function rampUsers(r1: number, r2: number, seconds: number): number {
  return Math.round(((r1 + r2) / 2) * seconds);
}

/** Users of constantUsersPerSec(rate).during(d), rounded as Gatling does. */
function constantUsers(rate: number, seconds: number): number {
  return Math.round(rate * seconds);
}

/**
 * Gatling's Shard.shards(total, buckets): how many of `total` users fall in each bucket, so that
 * the running sum up to bucket b is ceil(total / buckets × (b + 1)) (the first bucket is never
 * empty) and the last bucket closes the total.
 */
export function shards(total: number, buckets: number): number[] {
  const out: number[] = [];
  let previous = 0;
  for (let b = 0; b < buckets; b++) {
    const sum = b === buckets - 1 ? total : Math.ceil((total / buckets) * (b + 1)); // doubles, as in Scala
    out.push(sum - previous);
    previous = sum;
  }
  return out;
}

/** BigDecimal.setScale(10, HALF_UP), which keeps binary floating-point noise out of ceil/trunc. */
const roundTo10 = (x: number): number => Math.round(x * 1e10) / 1e10;

/** Start times of `n` users within one second: Shard.shards(n, 1000), one slot per ms. */
function spreadOverSecond(second: number, n: number, out: number[]): void {
  if (n <= 0) return;
  const perMs = shards(n, 1000);
  for (let ms = 0; ms < 1000; ms++) for (let k = 0; k < perMs[ms]; k++) out.push(second + ms / 1000);
}

/**
 * Start times (seconds after the scenario starts) of one scenario's users, computed as
 * Gatling 3.10's open injection steps do (OpenInjectionStep.scala):
 * - rampUsersPerSec(r1).to(r2).during(d): second s gets a·(2s+1) + r1 users, a = (r2 − r1)/(2d),
 *   the integral of the linear rate over that second, truncated with the fraction carried over;
 * - constantUsersPerSec(r).during(d): round(r·d) users spread evenly over the seconds;
 * - within a second, users are spread over its 1000 milliseconds by Shard.shards (the first at
 *   millisecond 0), so the times are whole milliseconds.
 */
export function scenarioArrivals(s: ScenarioInjection, rampSeconds: number, constantSeconds: number): number[] {
  const times: number[] = [];
  const a = (s.peakRate - s.startRate) / (2 * rampSeconds);
  let pending = 0;
  for (let second = 0; second < rampSeconds; second++) {
    const x = a * (2 * second + 1) + s.startRate + pending;
    const n = Math.trunc(roundTo10(x));
    pending = x - n;
    spreadOverSecond(second, n, times);
  }
  const perSecond = shards(constantUsers(s.peakRate, constantSeconds), constantSeconds);
  perSecond.forEach((n, second) => spreadOverSecond(rampSeconds + second, n, times));
  return times;
}

export interface Schedule {
  /** Seconds after the load phase starts, ascending. */
  times: Float64Array;
  /** Index into LOAD_GROUPS, parallel to `times`. */
  groups: Uint8Array;
  counts: Record<LoadGroup, number>;
  total: number;
}

/** All load arrivals of a profile merged in time order. */
export function buildSchedule(profile: Profile): Schedule {
  const all: { t: number; g: number }[] = [];
  const counts = { 'débitos': 0, 'créditos': 0, 'extratos': 0 } as Record<LoadGroup, number>;
  for (const s of profile.scenarios) {
    const g = LOAD_GROUPS.indexOf(s.group);
    const times = scenarioArrivals(s, profile.rampSeconds, profile.constantSeconds);
    counts[s.group] += times.length;
    for (const t of times) all.push({ t, g });
  }
  all.sort((x, y) => x.t - y.t || x.g - y.g);
  const times = new Float64Array(all.length);
  const groups = new Uint8Array(all.length);
  all.forEach((a, i) => {
    times[i] = a.t;
    groups[i] = a.g;
  });
  return { times, groups, counts, total: all.length };
}

/** The simulation's phases as the reports name them; both generators (Node and k6) use these. */
export function phaseNames(profile: Profile): Record<'s1' | 's2' | 's3' | 's4' | 's5' | 's6' | 'load', string> {
  const total = buildSchedule(profile).total;
  return {
    s1: 'S1 25 concurrent debits on client 1 (status 200)',
    s2: 'S2 client 1 balance = -25',
    s3: 'S3 25 concurrent credits on client 1 (status 200)',
    s4: 'S4 client 1 balance = 0',
    s5: 'S5 validações: 5 clients x 14 requests (concurrent with the load)',
    s6: 'S6 GET /clientes/6/extrato = 404',
    load: `S7-S9 load: ${total.toLocaleString('en-US')} arrivals over ${loadSeconds(profile)} s, one connection each`,
  };
}

// ---------------------------------------------------------------------------------------------
// Random data, as the simulation draws it
// ---------------------------------------------------------------------------------------------

export type Rng = () => number;
const ALPHANUMERIC = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Random.between(1, 5 + 1) */
export const randomClienteId = (rng: Rng = Math.random): number => 1 + Math.floor(rng() * 5);
/** Random.between(1, 10000 + 1) */
export const randomValor = (rng: Rng = Math.random): number => 1 + Math.floor(rng() * 10000);
/** Random.alphanumeric.take(10).mkString */
export function randomDescricao(rng: Rng = Math.random): string {
  let s = '';
  for (let i = 0; i < 10; i++) s += ALPHANUMERIC[Math.floor(rng() * ALPHANUMERIC.length)];
  return s;
}

/** The simulation's string template: a space after each colon. */
export function transactionPayload(valor: number | string, tipo: string, descricao: string | null): string {
  return `{"valor": ${valor}, "tipo": "${tipo}", "descricao": ${descricao === null ? 'null' : `"${descricao}"`}}`;
}

/** Deterministic PRNG (mulberry32) for tests and --seed. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/** What a check sees of a response. The body is parsed at most once, on demand. */
export class ResponseView {
  private parsed: JsonValue | SyntaxError | undefined;
  private done = false;
  constructor(
    readonly status: number,
    readonly body: string,
  ) {}
  json(): JsonValue | SyntaxError {
    if (!this.done) {
      this.done = true;
      try {
        this.parsed = parseJson(this.body);
      } catch (err) {
        this.parsed = err as SyntaxError;
      }
    }
    return this.parsed as JsonValue | SyntaxError;
  }
}

/** A Gatling user's session: saved attributes as strings (what `#{name}` expands to). */
export type Session = Map<string, string>;

/** Returns undefined on success, else the failure message Gatling would log. */
export type Check = (r: ResponseView, session: Session) => string | undefined;

/** Gatling's implicit check when a request declares no status check. */
const IMPLICIT_STATUSES = [200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 304];

function statusIn(...codes: number[]): Check {
  const name = codes.length === 1 ? `status.find.is(${codes[0]})` : `status.find.in(${codes.join(',')})`;
  return (r) => (codes.includes(r.status) ? undefined : `${name}, but actually found ${r.status}`);
}

const implicitStatus = (): Check => statusIn(...IMPLICIT_STATUSES);

/** Runs `check` only when `condition` holds (Gatling's checkIf). */
function checkIf(condition: (r: ResponseView, s: Session) => boolean, check: Check): Check {
  return (r, s) => (condition(r, s) ? check(r, s) : undefined);
}

type Found = { value: JsonValue } | { failure: string };

function find(r: ResponseView, path: string, name: string): Found {
  const json = r.json();
  if (json instanceof SyntaxError) return { failure: `${name}, but the body is not JSON (${json.message})` };
  const value = jmesPath(json, path);
  if (value === undefined) return { failure: `${name}, but actually found nothing` };
  return { value };
}

/** jmesPath(path).saveAs(key): fails when nothing is found. */
export function saveAs(path: string, key: string): Check {
  const name = `jmesPath(${path}).find.exists`;
  return (r, s) => {
    const found = find(r, path, name);
    if ('failure' in found) return found.failure;
    s.set(key, asGatlingString(found.value));
    return undefined;
  };
}

/** Expected value: a constant or a session attribute ("#{name}"). */
type Expected = string | number | { attribute: string };

function expectedText(expected: Expected): string {
  return typeof expected === 'object' ? `#{${expected.attribute}}` : String(expected);
}

/** jmesPath(path).ofType[String|Int].is(expected) */
function jmesIs(path: string, type: 'String' | 'Int', expected: Expected): Check {
  const name = `jmesPath(${path}).find.is(${expectedText(expected)})`;
  return (r, s) => {
    let want: string;
    if (typeof expected === 'object') {
      const v = s.get(expected.attribute);
      if (v === undefined) return `${name}, but No attribute named '${expected.attribute}' is defined`;
      want = v;
    } else {
      want = String(expected);
    }
    const found = find(r, path, name);
    if ('failure' in found) return found.failure;
    if (type === 'Int') {
      const n = asGatlingInt(found.value);
      if (n === undefined) return `${name}, but actually found ${asGatlingString(found.value)}, which is not an Int`;
      return String(n) === want ? undefined : `${name}, but actually found ${n}`;
    }
    const text = asGatlingString(found.value);
    return text === want ? undefined : `${name}, but actually found ${text}`;
  };
}

/**
 * The simulation's validarConsistenciaSaldoLimite: `valor` (the balance as Gatling read it) and
 * the saved `limite` must parse as Scala Ints; the balance may not be below −limite.
 * Returns the failure ("Limite ultrapassado!" or "WTF?!") or undefined when consistent.
 */
export function consistenciaSaldoLimite(valor: string | undefined, limite: string | undefined): string | undefined {
  const saldo = scalaToInt(valor);
  const lim = scalaToInt(limite);
  if (saldo !== undefined && lim !== undefined) return saldo < -lim ? 'Limite ultrapassado!' : undefined;
  return 'WTF?!';
}

/** Scala's String.toInt: optional sign, decimal digits, 32-bit range; nothing else. */
export function scalaToInt(s: string | undefined): number | undefined {
  if (s === undefined || !/^[+-]?\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n >= -2147483648 && n <= 2147483647 ? n : undefined;
}

/** jmesPath(path).validate(name, validarConsistenciaSaldoLimite) with the session's `limite`. */
function validateConsistency(path: string, validatorName: string): Check {
  const name = `jmesPath(${path}).find.validate(${validatorName})`;
  return (r, s) => {
    const json = r.json();
    let valor: string | undefined;
    if (!(json instanceof SyntaxError)) {
      const v = jmesPath(json, path);
      valor = v === undefined ? undefined : asGatlingString(v);
    }
    const failure = consistenciaSaldoLimite(valor, s.get('limite'));
    return failure === undefined ? undefined : `${name}, but actually ${failure}`;
  };
}

/**
 * The judging (docs/contest.md): the consistency penalty counts simulation.log KO lines that contain
 * `ConsistenciaSaldoLimite` or `jmesPath(saldo.total).find.is`. A KO line carries the first
 * failed check's message, which is what `runChecks` returns.
 */
export function isConsistencyFailure(message: string): boolean {
  return message.includes('ConsistenciaSaldoLimite') || message.includes('jmesPath(saldo.total).find.is');
}

/** Gatling evaluates status checks first, then the others in order; the first failure is logged. */
export function runChecks(checks: Check[], r: ResponseView, session: Session): string | undefined {
  let first: string | undefined;
  for (const check of checks) {
    const failure = check(r, session);
    if (failure !== undefined && first === undefined) first = failure;
  }
  return first;
}

// ---------------------------------------------------------------------------------------------
// Requests of every scenario
// ---------------------------------------------------------------------------------------------

export interface RequestSpec {
  group: Group;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  /** In evaluation order (status checks first, as Gatling sorts them). */
  checks: Check[];
}

const statusIs200 = (r: ResponseView): boolean => r.status === 200;

/** S7 "débitos": status in (200, 422); only on 200, save limite and validate saldo. */
export function debitRequest(rng: Rng = Math.random): RequestSpec {
  return {
    group: 'débitos',
    method: 'POST',
    path: `/clientes/${randomClienteId(rng)}/transacoes`,
    body: transactionPayload(randomValor(rng), 'd', randomDescricao(rng)),
    checks: [
      statusIn(200, 422),
      checkIf(statusIs200, saveAs('limite', 'limite')),
      checkIf(statusIs200, validateConsistency('saldo', 'ConsistenciaSaldoLimite - Transação')),
    ],
  };
}

/** S8 "créditos": status 200 only, save limite, validate saldo. */
export function creditRequest(rng: Rng = Math.random): RequestSpec {
  return {
    group: 'créditos',
    method: 'POST',
    path: `/clientes/${randomClienteId(rng)}/transacoes`,
    body: transactionPayload(randomValor(rng), 'c', randomDescricao(rng)),
    checks: [statusIn(200), saveAs('limite', 'limite'), validateConsistency('saldo', 'ConsistenciaSaldoLimite - Transação')],
  };
}

/** S9 "extratos": implicit status check, save saldo.limite, validate saldo.total. */
export function statementRequest(rng: Rng = Math.random): RequestSpec {
  return {
    group: 'extratos',
    method: 'GET',
    path: `/clientes/${randomClienteId(rng)}/extrato`,
    checks: [implicitStatus(), saveAs('saldo.limite', 'limite'), validateConsistency('saldo.total', 'ConsistenciaSaldoLimite - Extrato')],
  };
}

export function loadRequest(group: LoadGroup, rng: Rng = Math.random): RequestSpec {
  return group === 'débitos' ? debitRequest(rng) : group === 'créditos' ? creditRequest(rng) : statementRequest(rng);
}

/** S1 (tipo d) and S3 (tipo c): one of the 25 concurrent transactions on client 1. */
export function concurrentTransaction(tipo: 'c' | 'd'): RequestSpec {
  return {
    group: 'validações',
    method: 'POST',
    path: '/clientes/1/transacoes',
    body: transactionPayload(1, tipo, 'validacao'),
    checks: [statusIn(200)],
  };
}

/** S2 (−25) and S4 (0): client 1's balance after the concurrent transactions. */
export function concurrentBalance(expected: number): RequestSpec {
  return {
    group: 'validações',
    method: 'GET',
    path: '/clientes/1/extrato',
    checks: [implicitStatus(), jmesIs('saldo.total', 'Int', expected)],
  };
}

/** S6: GET of a client that does not exist. */
export function notFoundRequest(): RequestSpec {
  return { group: 'validações', method: 'GET', path: '/clientes/6/extrato', checks: [statusIn(404)] };
}

/**
 * S5 "validações" for one client, as steps run in sequence. Each step is a request or, after
 * `danada`, a batch of 4 parallel GETs (Gatling resources fetched once the POST has answered).
 * `session` must hold `id` and `limite` from the feeder.
 */
export function clientValidationSteps(id: number): (RequestSpec | RequestSpec[])[] {
  const post = (body: string, checks: Check[]): RequestSpec => ({ group: 'validações', method: 'POST', path: `/clientes/${id}/transacoes`, body, checks });
  const get = (checks: Check[]): RequestSpec => ({ group: 'validações', method: 'GET', path: `/clientes/${id}/extrato`, checks });
  const transactionChecks = (): Check[] => [statusIn(200), saveAs('limite', 'limite'), validateConsistency('saldo', 'ConsistenciaSaldoLimite - Transação')];
  const invalid = (body: string): RequestSpec => post(body, [statusIn(422, 400)]);
  const danadaGet = (): RequestSpec =>
    get([
      implicitStatus(),
      jmesIs('ultimas_transacoes[0].descricao', 'String', 'danada'),
      jmesIs('ultimas_transacoes[0].tipo', 'String', 'c'),
      jmesIs('ultimas_transacoes[0].valor', 'Int', 1),
      jmesIs('saldo.limite', 'String', { attribute: 'limite' }),
      jmesIs('saldo.total', 'String', { attribute: 'saldo' }),
    ]);
  return [
    get([statusIn(200), jmesIs('saldo.limite', 'String', { attribute: 'limite' }), jmesIs('saldo.total', 'String', '0')]),
    post(transactionPayload(1, 'c', 'toma'), transactionChecks()),
    post(transactionPayload(1, 'd', 'devolve'), transactionChecks()),
    get([
      implicitStatus(),
      jmesIs('ultimas_transacoes[0].descricao', 'String', 'devolve'),
      jmesIs('ultimas_transacoes[0].tipo', 'String', 'd'),
      jmesIs('ultimas_transacoes[0].valor', 'Int', 1),
      jmesIs('ultimas_transacoes[1].descricao', 'String', 'toma'),
      jmesIs('ultimas_transacoes[1].tipo', 'String', 'c'),
      jmesIs('ultimas_transacoes[1].valor', 'Int', 1),
    ]),
    post(transactionPayload(1, 'c', 'danada'), [statusIn(200), saveAs('saldo', 'saldo'), saveAs('limite', 'limite')]),
    [danadaGet(), danadaGet(), danadaGet(), danadaGet()],
    invalid(transactionPayload(1.2, 'd', 'devolve')),
    invalid(transactionPayload(1, 'x', 'devolve')),
    invalid(transactionPayload(1, 'c', '123456789 e mais um pouco')),
    invalid(transactionPayload(1, 'c', '')),
    invalid(transactionPayload(1, 'c', null)),
  ];
}

// ---------------------------------------------------------------------------------------------
// Judging (docs/contest.md)
// ---------------------------------------------------------------------------------------------

const BASE_PAYOUT = 100_000;
const SLA_TARGET_PCT = 98;
const SLA_PENALTY_PER_POINT = 1000;
const CONSISTENCY_PENALTY = 803.01;

export interface Payout {
  /** round(OK-and-under-250-ms / all requests × 100, 2) */
  pct: number;
  slaPenalty: number;
  consistencyFailures: number;
  consistencyPenalty: number;
  totalPenalty: number;
  payout: number;
}

const cents = (x: number): number => Math.round(x * 100) / 100;

export function computePayout(total: number, okUnder250: number, consistencyFailures: number): Payout {
  const pct = total === 0 ? 0 : cents((okUnder250 / total) * 100);
  const slaPenalty = cents(Math.max(0, (SLA_TARGET_PCT - pct) * SLA_PENALTY_PER_POINT));
  const consistencyPenalty = cents(CONSISTENCY_PENALTY * consistencyFailures);
  const totalPenalty = cents(slaPenalty + consistencyPenalty);
  return { pct, slaPenalty, consistencyFailures, consistencyPenalty, totalPenalty, payout: cents(Math.max(0, BASE_PAYOUT - totalPenalty)) };
}
