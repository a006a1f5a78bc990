#!/usr/bin/env bash
# Official profile, A/B: the repository's stack against a variant of it, on fresh stacks, ROUNDS
# times, in ABBA order so that neither variant always runs first. The variant is a SQL overlay
# (a .sql file, run after procedures.sql as CREBITOS_SQL) or any of the stack's settings as
# VAR=value words, e.g. "CREBITOS_SQL=loadtest/bench/variants/x.sql PG_SETTINGS=loadtest/bench/variants/y.conf".
# Prints each run's latency, the database's CPU throttling and the generator's validity, then
# the medians over the valid runs and B/A ratios.
#
#   loadtest/bench/official-ab.sh loadtest/bench/variants/ledger-autovacuum-on.sql 3
#   loadtest/bench/official-ab.sh "PG_SETTINGS=loadtest/bench/variants/autovacuum-1s.conf CREBITOS_SQL=loadtest/bench/variants/accounts-vacuum-often.sql" 3
#
# A full official run takes about 4 minutes, so 3 rounds take 25-30. Needs `npm run build`, and
# the default stack (npm run up) down: this script starts and stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:?usage: loadtest/bench/official-ab.sh OVERLAY.sql|"VAR=value ..." [ROUNDS]}
rounds=${2:-3}
if [[ $variant == *=* ]]; then read -r -a settings <<<"$variant"; else settings=("CREBITOS_SQL=$variant"); fi
for kv in "${settings[@]}"; do
  [[ $kv == *=* ]] || { echo "not VAR=value: $kv" >&2; exit 2; }
  file=${kv#*=}
  case ${kv%%=*} in CREBITOS_SQL | PG_SETTINGS | CREBITOS_NGINX_CONF | CREBITOS_COMPOSE) [ -f "$file" ] || { echo "no such file: $file" >&2; exit 2; } ;; esac
done
[ -f dist/loadtest/official/official-test.js ] || { echo "run npm run build first" >&2; exit 2; }
out=$(mktemp -d /tmp/crebitos-official-ab.XXXXXX)
echo "[official-ab] A: repository; B: ${settings[*]}; $rounds round(s); reports in $out"

if node dist/stack/commands.js status >/dev/null 2>&1; then
  echo "the default stack is up; stop it first (npm run down)" >&2
  exit 2
fi
trap 'node dist/stack/commands.js down >/dev/null 2>&1 || true' EXIT
for round in $(seq 1 "$rounds"); do
  order="A B"
  [ $((round % 2)) -eq 0 ] && order="B A"
  for which in $order; do
    echo "[official-ab] round $round/$rounds, $which: fresh stack, then the official profile (~4 min)"
    if [ "$which" = B ]; then env "${settings[@]}" node dist/stack/commands.js up >/dev/null; else node dist/stack/commands.js up >/dev/null; fi
    node dist/loadtest/official/official-test.js --out "$out/$which-$round" >"$out/$which-$round.log" 2>&1 || echo "[official-ab]   the run reported a failure; see $out/$which-$round.log"
    node dist/stack/commands.js down >/dev/null
    report=$(ls -d "$out/$which-$round"/20*/ 2>/dev/null | tail -1 || true)
    if [ -z "$report" ]; then
      echo "[official-ab]   $which: no report written; left out (see $out/$which-$round.log)"
      continue
    fi
    node -e '
      const s = require(process.argv[1]);
      const db = s.usage?.find((u) => u.name === "db");
      const throttled = db?.throttledPeriods === undefined ? "not measured" : `${db.throttledPeriods} periods (${db.throttledSeconds.toFixed(2)} s)`;
      console.log(`[official-ab]   ${process.argv[2]}: KO ${s.total.ko}  p50 ${s.total.p50Ms} p99 ${s.total.p99Ms} max ${s.total.maxMs} ms  db throttled ${throttled}  lag p99 ${s.lag.p99Ms} ms ${s.lag.valid ? "valid" : "INVALID"}`);
    ' "${report}summary.json" "$which"
  done
done

node -e '
  const fs = require("node:fs"), path = require("node:path");
  const dir = process.argv[1];
  const runs = { A: [], B: [] };
  for (const d of fs.readdirSync(dir).filter((d) => /^[AB]-\d+$/.test(d) && fs.statSync(path.join(dir, d)).isDirectory())) {
    const ts = fs.readdirSync(path.join(dir, d)).filter((t) => /^20/.test(t)).sort().pop();
    if (!ts) continue;
    const s = JSON.parse(fs.readFileSync(path.join(dir, d, ts, "summary.json"), "utf8"));
    if (s.lag.valid) runs[d[0]].push(s);
  }
  const median = (xs) => { const v = [...xs].sort((a, b) => a - b); const m = v.length >> 1; return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2; };
  const metrics = { "p50 ms": (s) => s.total.p50Ms, "p99 ms": (s) => s.total.p99Ms, "max ms": (s) => s.total.maxMs,
    "db throttled periods": (s) => s.usage?.find((u) => u.name === "db")?.throttledPeriods, "db CPU s": (s) => s.usage?.find((u) => u.name === "db")?.cpuSeconds };
  console.log(`\nmedians of the valid runs (A ${runs.A.length}, B ${runs.B.length}) [min–max]`);
  for (const [name, f] of Object.entries(metrics)) {
    const [a, b] = [runs.A.map(f).filter((x) => x !== undefined), runs.B.map(f).filter((x) => x !== undefined)];
    if (!a.length || !b.length) { console.log(`  ${name}: not enough valid runs`); continue; }
    const r = (xs) => `${+median(xs).toFixed(2)} [${+Math.min(...xs).toFixed(2)}–${+Math.max(...xs).toFixed(2)}]`;
    console.log(`  ${name.padEnd(22)} A ${r(a).padEnd(24)} B ${r(b).padEnd(24)} B/A ${(median(b) / median(a)).toFixed(2)}`);
  }
' "$out"
