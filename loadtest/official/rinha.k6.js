// @ts-check
/**
 * Rinha de Backend 2024/Q1: k6 port of the official Gatling simulation
 * (RinhaBackendCrebitosSimulation.scala, Gatling 3.10.3, upstream snapshot aad5e21f).
 * The official test and its judging are described in docs/contest.md.
 *
 *   k6 run loadtest/official/rinha.k6.js
 *   BASE_URL=http://localhost:9999 K6_OUT_DIR=reports/run1 k6 run loadtest/official/rinha.k6.js
 *   PROFILE=quick k6 run loadtest/official/rinha.k6.js      (time × 1/4, peak rates × 1/2: 7,818 requests)
 *
 * It needs nothing but k6 and this file: no remote module is imported (the end-of-test text is
 * written here, resumoTexto), so it runs without a network.
 *
 * Timeline (official `andThen` chain → k6 `startTime` offsets, see FASES_MS below):
 *   S1 25 concurrent debits of 1 on client 1 (200)     startTime 0s
 *   S2 extrato client 1, saldo.total == -25            startTime 1s
 *   S3 25 concurrent credits of 1 on client 1 (200)    startTime 2s
 *   S4 extrato client 1, saldo.total == 0              startTime 3s
 *   S5 "validações": 5 VUs, one per client, 14 reqs    startTime 4s  (overlaps the load, as upstream)
 *   S6 GET /clientes/6/extrato == 404                  startTime 4s
 *   S7-S9 débitos / créditos / extratos                startTime 4s  (first arrival ≈0.64 s later, see below)
 *   → 25+1+25+1+70+1 = 123 validation requests + 39,660 + 19,860 + 1,860 = 61,503 requests.
 *
 * Where k6 forces an approximation (each one is explained again where it is implemented):
 *  1. `andThen` does not exist in k6: a scenario cannot wait for another one. Each sequential phase
 *     gets a fixed `startTime` 1 s after the previous one (Gatling starts the next phase as soon as
 *     the previous one ends, a few ms). Every pre-phase request also runs an extra check,
 *     "[k6] fase terminou antes da próxima (startTime)", which fails the run if a phase overran its
 *     slot, so a broken ordering can never pass silently.
 *  2. k6's ramping-arrival-rate starts iteration i when the integral of the rate reaches i (the first
 *     one at ≈0.64 s for 1→220/s); Gatling starts user 0 at t=0 and then injects per second. Same
 *     totals; the k6 schedule runs at most ~1 arrival behind Gatling's (checked in test/k6.test.ts).
 *     Because the last k6 arrival lands exactly on the end of the 4-minute schedule, where k6's
 *     executor stops, a 4 ms tail stage (rate × 4 ms < 1 arrival) is appended so that the 39,660th
 *     debit is actually started instead of lost (39,659). See TAIL_STAGE.
 *  3. The load scenarios share S6's startTime instead of starting after S6's response: the first k6
 *     arrival comes ≥0.64 s in, long after S6's single GET, so "S6 → load" still holds in practice, and
 *     S5 still runs while the load scenarios are active.
 *  4. Connections: each Gatling virtual user owns its connections, and a load user sends exactly one
 *     request, so every load request is on a fresh TCP connection while S5's 14-request user keeps
 *     its keep-alive connection (plus up to 6 for the parallel "resources"). k6's
 *     `noVUConnectionReuse: true` reproduces exactly that: a VU drops its connections between
 *     iterations (one iteration = one Gatling user) but keeps them inside an iteration. The global
 *     `noConnectionReuse: true` would also break keep-alive inside S5's chain, which Gatling keeps.
 *  5. Response time for the 250 ms SLA: Gatling's clock includes acquiring the (new) connection; k6's
 *     http_req_duration does not. The SLA metric here adds blocked + connecting + tls_handshaking to
 *     http_req_duration (on localhost this is tens of microseconds).
 *  6. Gatling extracts JSON with Jackson and compares numbers as text (`ofType[String]`, `s.toInt`), so
 *     `100000.0` is not `100000` and `"1.2"` cannot be parsed as an int. JavaScript's JSON.parse erases
 *     that difference, so responses are parsed with a small parser that keeps each number's source
 *     text (parseJsonRaw).
 *
 * Checks are evaluated the way Gatling does: all checks of a request run in order, the request is KO
 * if any fails, and only the FIRST failure is what Gatling writes to simulation.log. The contest's
 * penalty greps simulation.log for `ConsistenciaSaldoLimite` and `jmesPath(saldo.total).find.is`, so
 * the two Counter metrics below count requests whose first failure is one of those.
 */

import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter, Rate, Trend } from 'k6/metrics';

// ------------------------------------------------------------------------------------------------
// Configuration
// ------------------------------------------------------------------------------------------------

const BASE_URL = (__ENV.BASE_URL || 'http://localhost:9999').replace(/\/+$/, '');
const USER_AGENT = 'Agente do Caos - 2024/Q1';

/** Gatling request names (the report groups requests by these). */
const NOME = { debitos: 'débitos', creditos: 'créditos', extratos: 'extratos', validacoes: 'validações' };

/** Clients pre-loaded by the contest (README "Cadastro Inicial de Clientes"), as fed to S5. */
export const CLIENTES = [
  { id: 1, limite: 1000 * 100 },
  { id: 2, limite: 800 * 100 },
  { id: 3, limite: 10000 * 100 },
  { id: 4, limite: 100000 * 100 },
  { id: 5, limite: 5000 * 100 },
];

/** validacaConcorrentesNumRequests upstream. */
const CONCORRENTES = 25;

/**
 * startTime of each phase, in ms since the start of the test (approximation 1 in the header).
 * One second per sequential phase is ~10-100x what 25 requests take on a warm local stack.
 */
export const FASES_MS = { s1: 0, s2: 1000, s3: 2000, s4: 3000, s5: 4000, s6: 4000, carga: 4000 };

/**
 * Deadline for each phase, relative to its own start: it must be over before the phase that depends
 * on it starts. S6 only has to beat the first load arrival (≥0.64 s after the load's startTime).
 * S5 has no successor (it overlaps the load upstream as well).
 */
export const PRAZO_FASE_MS = { s1: 1000, s2: 1000, s3: 1000, s4: 1000, s6: 500 };

/**
 * The injection profiles, as the Node harness defines them (loadtest/lib/official-simulation.ts):
 * `full` is the official setUp, rampUsersPerSec(1).to(pico).during(2.minutes) then
 * constantUsersPerSec(pico).during(2.minutes); `quick` (PROFILE=quick, for CI-sized runs) is the
 * same shape with time × 1/4 and peak rates × 1/2. The validations S1-S6 are the same in both.
 */
export const PERFIS = {
  full: { rampaS: 120, platoS: 120, picos: { debitos: 220, creditos: 110, extratos: 10 }, requisicoes: 61503 },
  quick: { rampaS: 30, platoS: 30, picos: { debitos: 110, creditos: 55, extratos: 5 }, requisicoes: 7818 },
};
/** The profile of this run: PROFILE=quick, anything else is the official one. */
export const PERFIL = __ENV.PROFILE === 'quick' ? 'quick' : 'full';

/**
 * @param {'debitos' | 'creditos' | 'extratos'} exec
 * @returns {{ exec: string, inicio: number, pico: number, preAllocatedVUs: number, maxVUs: number }}
 */
function injecao(exec) {
  const pico = PERFIS[PERFIL].picos[exec];
  // preAllocatedVUs covers pico × 250 ms in flight (the SLA bound: Little's law, at a few ms per
  // request only 1-3 VUs are busy); maxVUs covers pico × 5 s, so an arrival is only dropped if the
  // API stalls for more than 5 s (Gatling's open model never drops a user). Unplanned VUs are only
  // created if needed.
  return { exec, inicio: 1, pico, preAllocatedVUs: Math.max(5, Math.ceil(pico / 4)), maxVUs: pico * 5 };
}

/** Load injection of the three load scenarios in this run's profile. */
export const CARGA = {
  debitos: injecao('debitos'),
  creditos: injecao('creditos'),
  extratos: injecao('extratos'),
};
const RAMPA = `${PERFIS[PERFIL].rampaS}s`;
const PLATO = `${PERFIS[PERFIL].platoS}s`;
/**
 * k6-only tail (approximation 2). k6 schedules arrival i at the instant the integral of the rate
 * equals i, so arrival N (the last of the schedule) falls exactly on the end of the last stage,
 * where k6's executor stops: it would be lost. A 4 ms stage at the same rate moves the end of the
 * schedule 4 ms later without adding an arrival (220/s × 4 ms = 0.88 < 1), so k6 starts exactly
 * 39,660 / 19,860 / 1,860 iterations, like Gatling.
 */
const TAIL_STAGE = '4ms';

/** Gatling's default status check when a request declares none: 200-209 or 304 (HttpHelper.OkCodes). */
const STATUS_IMPLICITOS = [200, 201, 202, 203, 204, 205, 206, 207, 208, 209, 304];

/** The 250 ms bound of the official report's first group (gatling.charting.indicators.lowerBound). */
const SLA_MS = 250;

// ------------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------------

/**
 * @param {number} milissegundos
 * @returns {string}
 */
function ms(milissegundos) {
  return `${milissegundos}ms`;
}

/**
 * @param {string} execName
 * @param {number} inicioMs
 * @param {number} vus
 * @returns {import('k6/options').PerVUIterationsScenario}
 */
function fase(execName, inicioMs, vus) {
  // per-vu-iterations with 1 iteration per VU = Gatling atOnceUsers(vus): every VU sends its
  // request at the same moment, none can take two (shared-iterations could let a fast VU do so).
  return {
    executor: 'per-vu-iterations',
    exec: execName,
    vus,
    iterations: 1,
    startTime: ms(inicioMs),
    tags: { grupo: 'validacoes' },
  };
}

/**
 * @param {keyof typeof CARGA} nome
 * @returns {import('k6/options').RampingArrivalRateScenario}
 */
function carga(nome) {
  const c = CARGA[nome];
  return {
    executor: 'ramping-arrival-rate',
    exec: c.exec,
    startTime: ms(FASES_MS.carga),
    timeUnit: '1s',
    startRate: c.inicio,
    stages: [
      { duration: RAMPA, target: c.pico }, // rampUsersPerSec(1).to(pico).during(ramp)
      { duration: PLATO, target: c.pico }, // constantUsersPerSec(pico).during(plateau)
      { duration: TAIL_STAGE, target: c.pico }, // k6-only, < 1 arrival, see TAIL_STAGE
    ],
    preAllocatedVUs: c.preAllocatedVUs,
    maxVUs: c.maxVUs,
    tags: { grupo: nome },
  };
}

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    s1_debitos_concorrentes: fase('s1DebitosConcorrentes', FASES_MS.s1, CONCORRENTES),
    s2_saldo_menos_25: fase('s2SaldoAposDebitos', FASES_MS.s2, 1),
    s3_creditos_concorrentes: fase('s3CreditosConcorrentes', FASES_MS.s3, CONCORRENTES),
    s4_saldo_zero: fase('s4SaldoAposCreditos', FASES_MS.s4, 1),
    s5_validacoes: fase('s5Validacoes', FASES_MS.s5, CLIENTES.length),
    s6_http_404: fase('s6Http404', FASES_MS.s6, 1),
    debitos: carga('debitos'),
    creditos: carga('creditos'),
    extratos: carga('extratos'),
  },
  userAgent: USER_AGENT,
  // One iteration = one Gatling user = its own connections (approximation 4 in the header).
  noVUConnectionReuse: true,
  // Gatling fetches "resources" over at most 6 connections per host; the 4 parallel GETs fit.
  batchPerHost: 6,
  summaryTrendStats: ['min', 'med', 'avg', 'p(75)', 'p(95)', 'p(99)', 'max', 'count'],
  thresholds: {
    // Any failed check (status, body, consistency, phase ordering) fails the run.
    checks: ['rate==1.0'],
    // Share of ALL requests that were OK and under 250 ms; the contest pays in full at >= 98%.
    sla_ok_abaixo_250ms: ['rate>=0.98'],
    // Penalised failures (USD 803.01 each).
    ConsistenciaSaldoLimite: ['count==0'],
    jmesPath_saldo_total_find_is: ['count==0'],
    // Gatling's open model never drops a user; a dropped k6 arrival means the count is off.
    dropped_iterations: ['count==0'],
    // Always-true thresholds: they only make k6 keep per-group submetrics for the summary below.
    'gatling_response_time{grupo:validacoes}': ['max>=0'],
    'gatling_response_time{grupo:debitos}': ['max>=0'],
    'gatling_response_time{grupo:creditos}': ['max>=0'],
    'gatling_response_time{grupo:extratos}': ['max>=0'],
  },
};

// ------------------------------------------------------------------------------------------------
// Metrics
// ------------------------------------------------------------------------------------------------

/** Requests whose first failed check is the saldo/limite validator (`ConsistenciaSaldoLimite - …`). */
const consistenciaSaldoLimite = new Counter('ConsistenciaSaldoLimite');
/** Requests whose first failed check is `jmesPath(saldo.total).find.is(…)` (S2, S4, S5). */
const saldoTotalFindIs = new Counter('jmesPath_saldo_total_find_is');
/** Gatling group 1: OK and under 250 ms, over all requests. */
const slaOkAbaixo250 = new Rate('sla_ok_abaixo_250ms');
/** Requests KO in Gatling's sense (any failed check). */
const requisicoesKo = new Counter('gatling_ko');
/** Response time as Gatling counts it (includes acquiring the connection). */
const tempoResposta = new Trend('gatling_response_time', true);

// ------------------------------------------------------------------------------------------------
// JSON with number source text (approximation 6)
// ------------------------------------------------------------------------------------------------

/** A JSON number, kept as written in the response. */
class NumeroJson {
  /** @param {string} texto */
  constructor(texto) {
    this.texto = texto;
  }
}

const NUMERO_JSON = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/;

/**
 * Strict JSON parser that returns numbers as NumeroJson. Throws on malformed input.
 * @param {string} texto
 * @returns {any}
 */
export function parseJsonRaw(texto) {
  let i = 0;
  const espacos = () => {
    while (i < texto.length && ' \t\n\r'.indexOf(texto.charAt(i)) >= 0) i++;
  };
  /** @returns {never} */
  const erro = () => {
    throw new Error(`JSON inválido na posição ${i}`);
  };
  const str = () => {
    let j = i + 1;
    while (j < texto.length && texto.charAt(j) !== '"') j += texto.charAt(j) === '\\' ? 2 : 1;
    if (j >= texto.length) erro();
    const s = JSON.parse(texto.slice(i, j + 1));
    i = j + 1;
    return s;
  };
  /** @returns {any} */
  const valor = () => {
    espacos();
    const c = texto.charAt(i);
    if (c === '{') {
      i++;
      /** @type {Record<string, any>} */
      const obj = {};
      espacos();
      if (texto.charAt(i) === '}') {
        i++;
        return obj;
      }
      for (;;) {
        espacos();
        if (texto.charAt(i) !== '"') erro();
        const k = str();
        espacos();
        if (texto.charAt(i) !== ':') erro();
        i++;
        obj[k] = valor();
        espacos();
        const sep = texto.charAt(i++);
        if (sep === '}') return obj;
        if (sep !== ',') erro();
      }
    }
    if (c === '[') {
      i++;
      /** @type {any[]} */
      const arr = [];
      espacos();
      if (texto.charAt(i) === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(valor());
        espacos();
        const sep = texto.charAt(i++);
        if (sep === ']') return arr;
        if (sep !== ',') erro();
      }
    }
    if (c === '"') return str();
    if (texto.startsWith('true', i)) {
      i += 4;
      return true;
    }
    if (texto.startsWith('false', i)) {
      i += 5;
      return false;
    }
    if (texto.startsWith('null', i)) {
      i += 4;
      return null;
    }
    const m = NUMERO_JSON.exec(texto.slice(i, i + 64));
    if (!m) erro();
    i += m[0].length;
    return new NumeroJson(m[0]);
  };
  const v = valor();
  espacos();
  if (i !== texto.length) erro();
  return v;
}

/**
 * Minimal JMESPath for the paths the simulation uses (`a.b`, `a[0].b`). JSON null counts as not
 * found, as in Gatling's jmesPath `find`.
 * @param {any} raiz
 * @param {string} caminho
 * @returns {any}
 */
export function jmes(raiz, caminho) {
  let v = raiz;
  const partes = caminho.match(/[^.[\]]+|\[\d+\]/g) || [];
  for (const p of partes) {
    if (v === null || v === undefined || typeof v !== 'object' || v instanceof NumeroJson) return undefined;
    v = p.charAt(0) === '[' ? (Array.isArray(v) ? v[Number(p.slice(1, -1))] : undefined) : Array.isArray(v) ? undefined : v[p];
  }
  return v === null ? undefined : v;
}

/**
 * Jackson's asText as Gatling's `ofType[String]` sees it: strings as-is, numbers as written
 * (an integer literal stays `100000`, anything with a fraction/exponent is not an int).
 * @param {any} v
 * @returns {string | undefined}
 */
export function comoTexto(v) {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (v instanceof NumeroJson) return v.texto;
  if (typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/**
 * Scala's `String.toInt` (Integer.parseInt): optional sign, decimal digits, 32-bit range.
 * @param {string | undefined} s
 * @returns {number | null}
 */
export function scalaToInt(s) {
  if (typeof s !== 'string' || !/^[+-]?[0-9]+$/.test(s)) return null;
  const n = Number(s);
  return n >= -2147483648 && n <= 2147483647 ? n : null;
}

/**
 * Gatling's `ofType[Int]` on a JSON node: only an integral JSON number in int range.
 * @param {any} v
 * @returns {number | null}
 */
function comoInt(v) {
  return v instanceof NumeroJson ? scalaToInt(v.texto) : null;
}

// ------------------------------------------------------------------------------------------------
// Gatling-style checks
// ------------------------------------------------------------------------------------------------

/**
 * Per-user Gatling session (saveAs targets).
 * @typedef {{ id?: number, limite?: string, saldo?: string, httpStatus?: number }} Sessao
 */

/**
 * Response wrapper with the JSON parsed once (Gatling's prepared cache).
 * @typedef {{ status: number, corpo: () => any }} Resposta
 */

/**
 * `penalidade` tells which simulation.log line the failure would produce, if it is the first one.
 * `teste` returns true (ok), false (failed) or null (failed while resolving a session attribute:
 * Gatling logs "Check … resolution crashed", which matches neither penalty pattern).
 * @typedef {{ nome: string, penalidade?: 'consistencia' | 'saldoTotal', teste: (r: Resposta, s: Sessao) => boolean | null }} CheckGatling
 */

/**
 * @param {import('k6/http').RefinedResponse<any>} res
 * @returns {Resposta}
 */
function resposta(res) {
  /** @type {{ v: any } | null} */
  let cache = null;
  return {
    status: res.status,
    corpo: () => {
      if (cache === null) cache = { v: parseJsonRaw(typeof res.body === 'string' ? res.body : '') };
      return cache.v;
    },
  };
}

/**
 * Response time as Gatling measures it: from the moment the request wants a connection until the
 * last byte of the response (approximation 5).
 * @param {import('k6/http').RefinedResponse<any>} res
 * @returns {number}
 */
export function tempoGatling(res) {
  const t = res.timings;
  return (t.blocked || 0) + (t.connecting || 0) + (t.tls_handshaking || 0) + (t.duration || 0);
}

/**
 * Runs the checks of one request the way Gatling does and records everything.
 * @param {import('k6/http').RefinedResponse<any>} res
 * @param {string} nomeRequisicao Gatling request name (débitos, créditos, extratos, validações)
 * @param {string} grupo ASCII tag used for the per-group submetrics
 * @param {CheckGatling[]} checks in Gatling's order (status checks first)
 * @param {Sessao} sessao
 * @returns {boolean} true if the request is OK
 */
function avaliar(res, nomeRequisicao, grupo, checks, sessao) {
  const r = resposta(res);
  /** @type {CheckGatling | null} */
  let primeiraFalha = null;
  let falhaDeResolucao = false;
  /** @type {Record<string, boolean>} */
  const resultados = {};
  for (const c of checks) {
    /** @type {boolean | null} */
    let resultado;
    try {
      resultado = c.teste(r, sessao);
    } catch (_) {
      resultado = false; // unparsable body or missing node: Gatling fails the check too
    }
    const ok = resultado === true;
    if (!ok && primeiraFalha === null) {
      primeiraFalha = c;
      falhaDeResolucao = resultado === null;
    }
    const nome = `${nomeRequisicao}: ${c.nome}`;
    // A name used twice in one request must not let a pass hide a failure.
    resultados[nome] = nome in resultados ? resultados[nome] && ok : ok;
  }
  /** @type {Record<string, () => boolean>} */
  const k6checks = {};
  for (const nome of Object.keys(resultados)) {
    const ok = resultados[nome];
    k6checks[nome] = () => ok;
  }
  check(res, k6checks, { name: nomeRequisicao, grupo });

  const okRequisicao = primeiraFalha === null;
  const tags = { grupo };
  const t = tempoGatling(res);
  // This sample is the request's record in `k6 run --out json` (loadtest/lib/k6-results.ts reads
  // it): one per Gatling request, with what the report needs that k6's own http_req_* samples lack,
  // the request's verdict and first failure.
  /** @type {Record<string, string>} */
  const registro = { grupo, status: String(res.status), metodo: res.request ? res.request.method : '' };
  if (primeiraFalha !== null) registro.falha = mensagemDeFalha(primeiraFalha, res);
  tempoResposta.add(t, registro);
  slaOkAbaixo250.add(okRequisicao && t < SLA_MS, tags);
  requisicoesKo.add(okRequisicao ? 0 : 1, tags);
  const pen = primeiraFalha !== null && !falhaDeResolucao ? primeiraFalha.penalidade : undefined;
  // add(0) keeps both counters in the summary even on a clean run.
  consistenciaSaldoLimite.add(pen === 'consistencia' ? 1 : 0, tags);
  saldoTotalFindIs.add(pen === 'saldoTotal' ? 1 : 0, tags);
  return okRequisicao;
}

/**
 * The first failure as Gatling would log it (and as the Node harness words it): a transport error
 * as k6 reports it, a status check with the status found, any other check by its name.
 * @param {CheckGatling} c
 * @param {import('k6/http').RefinedResponse<any>} res
 * @returns {string}
 */
function mensagemDeFalha(c, res) {
  if (res.status === 0 && res.error) return res.error;
  return c.nome.indexOf('status.') === 0 ? `${c.nome}, but actually found ${res.status}` : c.nome;
}

/** @type {CheckGatling} */
const statusImplicito = {
  nome: 'status.find.in(200,201,202,203,204,205,206,207,208,209,304)',
  teste: (r) => STATUS_IMPLICITOS.indexOf(r.status) >= 0,
};

/**
 * @param {...number} codigos
 * @returns {CheckGatling}
 */
function statusIn(...codigos) {
  return {
    nome: codigos.length === 1 ? `status.find.is(${codigos[0]})` : `status.find.in(${codigos.join(',')})`,
    teste: (r) => codigos.indexOf(r.status) >= 0,
  };
}

/**
 * jmesPath(caminho).saveAs(chave): fails if the node is missing.
 * @param {string} caminho
 * @param {'limite' | 'saldo'} chave
 * @returns {CheckGatling}
 */
function salvar(caminho, chave) {
  return {
    nome: `jmesPath(${caminho}).find.exists (saveAs ${chave})`,
    teste: (r, s) => {
      const v = comoTexto(jmes(r.corpo(), caminho));
      if (v === undefined) return false;
      s[chave] = v;
      return true;
    },
  };
}

/**
 * `jmesPath(caminho).validate("ConsistenciaSaldoLimite - <origem>", validarConsistenciaSaldoLimite)`:
 * saldo and the saved limite parsed with toInt; fails "Limite ultrapassado!" if saldo < -limite and
 * "WTF?!" if either cannot be parsed. Penalised.
 * @param {string} caminho
 * @param {'Transação' | 'Extrato'} origem
 * @returns {CheckGatling}
 */
function consistencia(caminho, origem) {
  return {
    nome: `jmesPath(${caminho}).find.validate(ConsistenciaSaldoLimite - ${origem})`,
    penalidade: 'consistencia',
    teste: (r, s) => {
      const saldo = scalaToInt(comoTexto(jmes(r.corpo(), caminho)));
      const limite = scalaToInt(s.limite);
      if (saldo === null || limite === null) return false; // "WTF?!"
      return saldo >= limite * -1; // otherwise "Limite ultrapassado!"
    },
  };
}

/**
 * jmesPath(caminho).ofType[String].is(esperado()); esperado() undefined = unresolved session attribute.
 * @param {string} caminho
 * @param {string} rotulo
 * @param {(s: Sessao) => string | undefined} esperado
 * @returns {CheckGatling}
 */
function textoIgual(caminho, rotulo, esperado) {
  /** @type {CheckGatling} */
  const c = {
    nome: `jmesPath(${caminho}).find.is(${rotulo})`,
    teste: (r, s) => {
      const e = esperado(s);
      if (e === undefined) return null;
      return comoTexto(jmes(r.corpo(), caminho)) === e;
    },
  };
  if (caminho === 'saldo.total') c.penalidade = 'saldoTotal';
  return c;
}

/**
 * jmesPath(caminho).ofType[Int].is(esperado)
 * @param {string} caminho
 * @param {number} esperado
 * @returns {CheckGatling}
 */
function inteiroIgual(caminho, esperado) {
  /** @type {CheckGatling} */
  const c = {
    nome: `jmesPath(${caminho}).find.is(${esperado})`,
    teste: (r) => comoInt(jmes(r.corpo(), caminho)) === esperado,
  };
  if (caminho === 'saldo.total') c.penalidade = 'saldoTotal';
  return c;
}

/**
 * Extra k6-only check for the sequential phases (approximation 1).
 * @param {keyof typeof PRAZO_FASE_MS} faseId
 */
function conferirPrazoDaFase(faseId) {
  const decorrido = Date.now() - exec.scenario.startTime;
  const prazo = PRAZO_FASE_MS[faseId];
  check(decorrido, { [`[k6] fase ${faseId} terminou antes da próxima (startTime, ${prazo} ms)`]: (d) => d < prazo }, {
    grupo: 'validacoes',
  });
}

// ------------------------------------------------------------------------------------------------
// Requests
// ------------------------------------------------------------------------------------------------

const TRANSACOES_OK = http.expectedStatuses(200);
const DEBITOS_OK = http.expectedStatuses(200, 422);
const INVALIDOS_OK = http.expectedStatuses(400, 422);
const NAO_ENCONTRADO_OK = http.expectedStatuses(404);
const EXTRATO_OK = http.expectedStatuses({ min: 200, max: 209 }, 304);

/**
 * @param {number} id
 * @param {string} corpo
 * @param {string} nome
 * @param {ReturnType<typeof http.expectedStatuses>} esperado
 */
function postTransacao(id, corpo, nome, esperado) {
  return http.post(`${BASE_URL}/clientes/${id}/transacoes`, corpo, {
    headers: { 'content-type': 'application/json' },
    tags: { name: nome },
    responseCallback: esperado,
  });
}

/**
 * @param {number} id
 * @param {string} nome
 * @param {ReturnType<typeof http.expectedStatuses>} esperado
 */
function getExtrato(id, nome, esperado) {
  return http.get(`${BASE_URL}/clientes/${id}/extrato`, { tags: { name: nome }, responseCallback: esperado });
}

/**
 * The official bodies are Scala string templates with a space after each colon.
 * @param {number | string} valor already formatted (the invalid payloads use 1.2)
 * @param {string} tipo
 * @param {string | null} descricao null is sent as JSON null
 * @returns {string}
 */
export function corpoTransacao(valor, tipo, descricao) {
  const d = descricao === null ? 'null' : `"${descricao}"`;
  return `{"valor": ${valor}, "tipo": "${tipo}", "descricao": ${d}}`;
}

// ------------------------------------------------------------------------------------------------
// Random data, as the simulation draws it
// ------------------------------------------------------------------------------------------------

/**
 * Random.between(min, max + 1)
 * @param {number} min
 * @param {number} max
 */
function inteiroEntre(min, max) {
  return min + Math.floor(Math.random() * (max - min + 1));
}

/** randomClienteId(): uniform 1..5 */
export function clienteAleatorio() {
  return inteiroEntre(1, 5);
}

/** randomValorTransacao(): uniform 1..10000 */
export function valorAleatorio() {
  return inteiroEntre(1, 10000);
}

/** Scala's Random.alphanumeric draws uniformly from these 62 characters. */
const ALFANUMERICOS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** randomDescricao(): Random.alphanumeric.take(10).mkString */
export function descricaoAleatoria() {
  let s = '';
  for (let i = 0; i < 10; i++) s += ALFANUMERICOS.charAt(Math.floor(Math.random() * ALFANUMERICOS.length));
  return s;
}

// ------------------------------------------------------------------------------------------------
// S1-S6: validations (request name "validações")
// ------------------------------------------------------------------------------------------------

/** @param {'d' | 'c'} tipo */
function transacaoConcorrente(tipo) {
  const res = postTransacao(1, corpoTransacao(1, tipo, 'validacao'), NOME.validacoes, TRANSACOES_OK);
  avaliar(res, NOME.validacoes, 'validacoes', [statusIn(200)], {});
}

/** @param {number} saldoEsperado */
function saldoConcorrente(saldoEsperado) {
  const res = getExtrato(1, NOME.validacoes, EXTRATO_OK);
  avaliar(res, NOME.validacoes, 'validacoes', [statusImplicito, inteiroIgual('saldo.total', saldoEsperado)], {});
}

/** S1 "validação concorrência transações - d": one of 25 simultaneous debits of 1 on client 1. */
export function s1DebitosConcorrentes() {
  transacaoConcorrente('d');
  conferirPrazoDaFase('s1');
}

/** S2 "validação concorrência saldo - -25" */
export function s2SaldoAposDebitos() {
  saldoConcorrente(CONCORRENTES * -1);
  conferirPrazoDaFase('s2');
}

/** S3 "validação concorrência transações - c" */
export function s3CreditosConcorrentes() {
  transacaoConcorrente('c');
  conferirPrazoDaFase('s3');
}

/** S4 "validação concorrência saldo - 0" */
export function s4SaldoAposCreditos() {
  saldoConcorrente(0);
  conferirPrazoDaFase('s4');
}

/** The five invalid payloads of S5 (steps 9-13), byte for byte as upstream. */
export const PAYLOADS_INVALIDOS = [
  corpoTransacao('1.2', 'd', 'devolve'),
  corpoTransacao(1, 'x', 'devolve'),
  corpoTransacao(1, 'c', '123456789 e mais um pouco'),
  corpoTransacao(1, 'c', ''),
  corpoTransacao(1, 'c', null),
];

/** Number of parallel GETs fired as Gatling "resources" after "danada" (the comment upstream says 5). */
export const GETS_PARALELOS = 4;

/**
 * S5 "validações": one VU per client (feeder order 1..5), 14 requests in the official order.
 */
export function s5Validacoes() {
  const cliente = CLIENTES[exec.scenario.iterationInTest % CLIENTES.length];
  const id = cliente.id;
  /** @type {Sessao} */
  const s = { id, limite: String(cliente.limite) };
  const V = NOME.validacoes;
  const g = 'validacoes';

  // 1. initial extrato
  avaliar(getExtrato(id, V, EXTRATO_OK), V, g, [
    statusIn(200),
    textoIgual('saldo.limite', '#{limite}', (x) => x.limite),
    textoIgual('saldo.total', '0', () => '0'),
  ], s);

  // 2. credit "toma", 3. debit "devolve"
  for (const [tipo, descricao] of [['c', 'toma'], ['d', 'devolve']]) {
    avaliar(postTransacao(id, corpoTransacao(1, tipo, descricao), V, TRANSACOES_OK), V, g, [
      statusIn(200),
      salvar('limite', 'limite'),
      consistencia('saldo', 'Transação'),
    ], s);
  }

  // 4. newest first: devolve, then toma (status only implicitly checked)
  avaliar(getExtrato(id, V, EXTRATO_OK), V, g, [
    statusImplicito,
    textoIgual('ultimas_transacoes[0].descricao', 'devolve', () => 'devolve'),
    textoIgual('ultimas_transacoes[0].tipo', 'd', () => 'd'),
    inteiroIgual('ultimas_transacoes[0].valor', 1),
    textoIgual('ultimas_transacoes[1].descricao', 'toma', () => 'toma'),
    textoIgual('ultimas_transacoes[1].tipo', 'c', () => 'c'),
    inteiroIgual('ultimas_transacoes[1].valor', 1),
  ], s);

  // 5. credit "danada", then 4 parallel extratos once its response is in (Gatling .resources(...))
  avaliar(postTransacao(id, corpoTransacao(1, 'c', 'danada'), V, TRANSACOES_OK), V, g, [
    statusIn(200),
    salvar('saldo', 'saldo'),
    salvar('limite', 'limite'),
  ], s);
  /** @type {import('k6/http').ArrayBatchRequest[]} */
  const paralelos = [];
  for (let i = 0; i < GETS_PARALELOS; i++) {
    paralelos.push(['GET', `${BASE_URL}/clientes/${id}/extrato`, null, { tags: { name: V }, responseCallback: EXTRATO_OK }]);
  }
  for (const res of http.batch(paralelos)) {
    avaliar(res, V, g, [
      statusImplicito,
      textoIgual('ultimas_transacoes[0].descricao', 'danada', () => 'danada'),
      textoIgual('ultimas_transacoes[0].tipo', 'c', () => 'c'),
      inteiroIgual('ultimas_transacoes[0].valor', 1),
      textoIgual('saldo.limite', '#{limite}', (x) => x.limite),
      textoIgual('saldo.total', '#{saldo}', (x) => x.saldo),
    ], s);
  }

  // 9-13. invalid payloads: 422 or 400
  for (const corpo of PAYLOADS_INVALIDOS) {
    avaliar(postTransacao(id, corpo, V, INVALIDOS_OK), V, g, [statusIn(422, 400)], s);
  }
}

/** S6 "validação HTTP 404" */
export function s6Http404() {
  avaliar(getExtrato(6, NOME.validacoes, NAO_ENCONTRADO_OK), NOME.validacoes, 'validacoes', [statusIn(404)], {});
  conferirPrazoDaFase('s6');
}

// ------------------------------------------------------------------------------------------------
// S7-S9: load (one request per iteration = per Gatling user)
// ------------------------------------------------------------------------------------------------

/** S7 "débitos": 200 or 422; only on 200 save limite and validate saldo. */
export function debitos() {
  const res = postTransacao(clienteAleatorio(), corpoTransacao(valorAleatorio(), 'd', descricaoAleatoria()), NOME.debitos, DEBITOS_OK);
  /** @type {CheckGatling[]} */
  const checks = [statusIn(200, 422)];
  // .checkIf(httpStatus == "200") { jmesPath("limite").saveAs("limite") } / { validate(saldo) }
  if (res.status === 200) checks.push(salvar('limite', 'limite'), consistencia('saldo', 'Transação'));
  avaliar(res, NOME.debitos, 'debitos', checks, {});
}

/** S8 "créditos": 200 only, save limite, validate saldo. */
export function creditos() {
  const res = postTransacao(clienteAleatorio(), corpoTransacao(valorAleatorio(), 'c', descricaoAleatoria()), NOME.creditos, TRANSACOES_OK);
  avaliar(res, NOME.creditos, 'creditos', [statusIn(200), salvar('limite', 'limite'), consistencia('saldo', 'Transação')], {});
}

/** S9 "extratos": implicit status, save saldo.limite, validate saldo.total. */
export function extratos() {
  const res = getExtrato(clienteAleatorio(), NOME.extratos, EXTRATO_OK);
  avaliar(res, NOME.extratos, 'extratos', [statusImplicito, salvar('saldo.limite', 'limite'), consistencia('saldo.total', 'Extrato')], {});
}

// ------------------------------------------------------------------------------------------------
// End of test: summary files and the contest's payout (the judging)
// ------------------------------------------------------------------------------------------------

/** Requests this profile sends; the official simulation's: 123 validations + 39,660 + 19,860 + 1,860. */
export const REQUISICOES_ESPERADAS = PERFIS[PERFIL].requisicoes;

/**
 * @typedef {{ type?: string, contains?: string, values: Record<string, number>, thresholds?: Record<string, { ok: boolean }> }} MetricaResumo
 * @typedef {{ metrics: Record<string, MetricaResumo>, [k: string]: any }} DadosResumo
 */

/**
 * @param {DadosResumo} data
 * @param {string} nome
 * @param {string} campo
 * @returns {number}
 */
function valorMetrica(data, nome, campo) {
  const m = data.metrics[nome];
  return m && typeof m.values[campo] === 'number' ? m.values[campo] : 0;
}

/** @param {number} x */
function centavos(x) {
  return Math.round(x * 100) / 100;
}

/**
 * RESULTADOS-HEADER.md / executar-testes-final.sh generateResults:
 * pct = round(group1 / total × 100, 2); SLA fine = max(0, (98 − pct) × 1000);
 * consistency fine = 803.01 × N; payout = max(0, 100000 − fines).
 * @param {DadosResumo} data
 */
export function calcularPagamento(data) {
  const okAbaixo250 = valorMetrica(data, 'sla_ok_abaixo_250ms', 'passes');
  const total = okAbaixo250 + valorMetrica(data, 'sla_ok_abaixo_250ms', 'fails');
  const pct = total > 0 ? Math.round((okAbaixo250 / total) * 100 * 100) / 100 : 0;
  const multaSla = centavos(Math.max(0, (98 - pct) * 1000));
  const consistencias = valorMetrica(data, 'ConsistenciaSaldoLimite', 'count');
  const saldosTotais = valorMetrica(data, 'jmesPath_saldo_total_find_is', 'count');
  const inconsistencias = consistencias + saldosTotais;
  const multaInconsistencia = centavos(803.01 * inconsistencias);
  const multaTotal = centavos(multaSla + multaInconsistencia);
  return {
    perfil: PERFIL,
    requisicoes: valorMetrica(data, 'http_reqs', 'count'),
    requisicoesEsperadas: REQUISICOES_ESPERADAS,
    requisicoesAvaliadas: total,
    okAbaixo250ms: okAbaixo250,
    ko: valorMetrica(data, 'gatling_ko', 'count'),
    iteracoesDescartadas: valorMetrica(data, 'dropped_iterations', 'count'),
    pctOkAbaixo250ms: pct,
    multaSla,
    inconsistencias,
    consistenciaSaldoLimite: consistencias,
    saldoTotalFindIs: saldosTotais,
    multaInconsistencia,
    multaTotal,
    valorAReceber: centavos(Math.max(0, 100000 - multaTotal)),
  };
}

/** @param {number} x */
function usd(x) {
  return `USD ${x.toFixed(2)}`;
}

/**
 * @param {DadosResumo} data
 * @param {ReturnType<typeof calcularPagamento>} p
 * @returns {string}
 */
export function textoPagamento(data, p) {
  const linhas = [
    '',
    '█ Rinha de Backend 2024/Q1: SLA payout (RESULTADOS-HEADER.md)',
    `  requests: ${p.requisicoes} (${p.perfil} profile: ${p.requisicoesEsperadas}), KO: ${p.ko}, dropped arrivals: ${p.iteracoesDescartadas}`,
    `  OK and < ${SLA_MS} ms: ${p.okAbaixo250ms}/${p.requisicoesAvaliadas} = ${p.pctOkAbaixo250ms.toFixed(2)}%`,
    `  multa SLA (> 249ms): ${usd(p.multaSla)}`,
    `  multa SLA (inconsistência saldo): ${usd(p.multaInconsistencia)} = 803.01 × ${p.inconsistencias} (ConsistenciaSaldoLimite ${p.consistenciaSaldoLimite}, jmesPath(saldo.total).find.is ${p.saldoTotalFindIs})`,
    `  multa total: ${usd(p.multaTotal)}`,
    `  valor a receber: ${usd(p.valorAReceber)}`,
    '',
    '  response time (Gatling clock, ms)   p50      p75      p95      p99      max      count',
  ];
  for (const grupo of ['validacoes', 'debitos', 'creditos', 'extratos']) {
    const m = data.metrics[`gatling_response_time{grupo:${grupo}}`];
    if (!m) continue;
    /** @param {string} k */
    const f = (k) => (typeof m.values[k] === 'number' ? m.values[k].toFixed(2) : '-').padStart(8);
    const count = typeof m.values.count === 'number' ? String(m.values.count).padStart(8) : '       -';
    linhas.push(`  ${grupo.padEnd(35)} ${f('med')} ${f('p(75)')} ${f('p(95)')} ${f('p(99)')} ${f('max')} ${count}`);
  }
  return `${linhas.join('\n')}\n`;
}

/**
 * @typedef {{ name: string, passes: number, fails: number }} CheckResumo
 * @typedef {{ groups?: GrupoResumo[], checks?: CheckResumo[] }} GrupoResumo
 */

/**
 * Every check of a summary's group tree (k6 nests checks under their group()).
 * @param {GrupoResumo | undefined} grupo
 * @returns {CheckResumo[]}
 */
function checksDoGrupo(grupo) {
  if (!grupo) return [];
  /** @type {CheckResumo[]} */
  const todos = (grupo.checks || []).slice();
  for (const g of grupo.groups || []) todos.push(...checksDoGrupo(g));
  return todos;
}

/**
 * k6's end-of-test numbers as text, written here so that the script needs no remote module (and
 * so no network): the checks, with every failing one, http_req_duration's percentiles, the
 * request, iteration and dropped-arrival counts, and each threshold's verdict.
 * @param {DadosResumo} data
 * @returns {string}
 */
export function resumoTexto(data) {
  const checks = checksDoGrupo(data.root_group);
  let passaram = 0;
  let falharam = 0;
  for (const c of checks) {
    passaram += c.passes;
    falharam += c.fails;
  }
  const total = passaram + falharam;
  const linhas = [
    '',
    '█ k6 summary',
    `  checks: ${total ? ((passaram / total) * 100).toFixed(2) : '-'}% passed (${passaram} ✓, ${falharam} ✗, ${checks.length} distinct checks)`,
  ];
  for (const c of checks) if (c.fails > 0) linhas.push(`    ✗ ${c.name}: ${c.fails} of ${c.passes + c.fails} failed`);
  const d = data.metrics.http_req_duration;
  if (d) {
    /** @param {string} k */
    const v = (k) => (typeof d.values[k] === 'number' ? d.values[k].toFixed(2) : '-');
    linhas.push(`  http_req_duration (ms): min ${v('min')}, avg ${v('avg')}, p50 ${v('med')}, p75 ${v('p(75)')}, p95 ${v('p(95)')}, p99 ${v('p(99)')}, max ${v('max')}`);
  }
  const taxa = valorMetrica(data, 'http_reqs', 'rate');
  linhas.push(
    `  http_reqs: ${valorMetrica(data, 'http_reqs', 'count')} (${taxa.toFixed(1)}/s); iterations: ${valorMetrica(data, 'iterations', 'count')}; ` +
      `dropped arrivals (dropped_iterations): ${valorMetrica(data, 'dropped_iterations', 'count')}; KO (gatling_ko): ${valorMetrica(data, 'gatling_ko', 'count')}`,
  );
  linhas.push('  thresholds:');
  for (const nome of Object.keys(data.metrics).sort()) {
    const limites = data.metrics[nome].thresholds;
    if (!limites) continue;
    for (const regra of Object.keys(limites)) linhas.push(`    ${limites[regra].ok ? '✓' : '✗ FAILED'} ${nome}: ${regra}`);
  }
  return `${linhas.join('\n')}\n`;
}

/**
 * Output files. k6 does not create directories, so K6_OUT_DIR must exist; without it the files go
 * to the working directory with a timestamped prefix.
 * @param {string | undefined} dir
 * @param {string} carimbo
 */
export function arquivosDeSaida(dir, carimbo) {
  const prefixo = dir ? `${dir.replace(/\/+$/, '')}/` : `k6-${carimbo}-`;
  // k6-summary.*, not summary.*: the harness writes its own summary.json beside them (npm run k6).
  return { json: `${prefixo}k6-summary.json`, texto: `${prefixo}k6-summary.txt`, pagamento: `${prefixo}payout.json` };
}

/**
 * @param {DadosResumo} data
 * @returns {Record<string, string>}
 */
export function handleSummary(data) {
  const p = calcularPagamento(data);
  const arquivos = arquivosDeSaida(__ENV.K6_OUT_DIR, new Date().toISOString().replace(/[:.]/g, '-'));
  const texto = `${resumoTexto(data)}${textoPagamento(data, p)}`;
  /** @type {Record<string, string>} */
  const saida = { stdout: texto };
  saida[arquivos.json] = JSON.stringify(data, null, 2);
  saida[arquivos.texto] = texto;
  saida[arquivos.pagamento] = JSON.stringify(p, null, 2);
  return saida;
}
