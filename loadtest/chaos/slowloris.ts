// slowloris: 1,000 slow clients on nginx (500 idle connections that never send a byte, 500 POSTs
// whose headers arrive and whose body drips one byte per second and never completes) while the
// official peak load runs. Other clients' p99 is compared with a clean run on the same stack
// just before; no incomplete request may change the books.

import * as net from 'node:net';
import { ChaosStack, PEAK, VerdictBuilder, errorWindow, latency, reconcile, report, runLoad, runPrefix, statusCounts, type ScenarioOptions, type Verdict } from './scenario-kit';
import { setTimeout as sleep } from 'node:timers/promises';

export async function slowloris(options: ScenarioOptions = {}): Promise<Verdict> {
  const log = options.log ?? console.log;
  const durationS = options.durationS ?? 20;
  const slowClients = 1000;
  const v = new VerdictBuilder('slowloris');
  const stack = new ChaosStack('slowloris', { log });
  await stack.up();
  const sockets: net.Socket[] = [];
  let drip: NodeJS.Timeout | undefined;
  try {
    const cleanPrefix = runPrefix('L');
    const clean = await runLoad({ port: stack.httpPort, rates: PEAK, durationS, prefix: cleanPrefix, seed: options.seed });
    // The slow clients.
    for (let i = 0; i < slowClients; i++) {
      const s = net.connect(stack.httpPort, '127.0.0.1');
      s.on('error', () => {});
      if (i % 2 === 1) {
        // 60-byte body announced; only the first byte sent, then one per second.
        s.write(`POST /clientes/1/transacoes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n{`);
      }
      sockets.push(s);
      if (i % 100 === 99) await sleep(10);
    }
    drip = setInterval(() => {
      for (let i = 1; i < sockets.length; i += 2) if (!sockets[i].destroyed) sockets[i].write(' ');
    }, 1000);
    await sleep(1000);
    const attackedPrefix = runPrefix('M');
    const attacked = await runLoad({ port: stack.httpPort, rates: PEAK, durationS, prefix: attackedPrefix, seed: options.seed });
    const stillOpen = sockets.filter((s) => !s.destroyed).length;
    clearInterval(drip);
    for (const s of sockets) s.destroy();
    await sleep(500);
    const c = latency(clean.outcomes);
    const a = latency(attacked.outcomes);
    const ratio = c.p99 && a.p99 ? Math.round((a.p99 / c.p99) * 100) / 100 : null;
    v.set('clean', { p50: c.p50, p99: c.p99, max: c.max, statuses: statusCounts(clean.outcomes) });
    v.set('underSlowClients', { p50: a.p50, p99: a.p99, max: a.max, statuses: statusCounts(attacked.outcomes) });
    v.set('p99Ratio', ratio);
    v.set('slowClientsOpenAtEnd', stillOpen);
    v.set('slowClientsClosedByServer', Math.max(0, slowClients - stillOpen));
    v.lag(attacked);
    const errs = errorWindow(attacked.outcomes);
    v.check(errs.failed === 0, `other clients saw no error (${JSON.stringify(errs.byStatus)})`);
    v.check(ratio !== null && ratio <= 2, `other clients' p99 at most 2x the clean run (${ratio}x: ${a.p99} vs ${c.p99} ms)`);
    const books = await reconcile(stack.state.database, cleanPrefix, clean.outcomes);
    const books2 = await reconcile(stack.state.database, attackedPrefix, attacked.outcomes);
    v.books({ ...books2, problems: [...books.problems, ...books2.problems] });
  } finally {
    if (drip) clearInterval(drip);
    for (const s of sockets) s.destroy();
    stack.down();
  }
  const verdict = v.finish();
  if (!options.quiet) report(verdict, log);
  return verdict;
}
