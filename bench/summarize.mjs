// summarize.mjs turns cibaload's JSON output (one "run" line per run and a
// final "summary" line) into the Markdown table of bench/README.md.
//
//   node bench/summarize.mjs runs/…/results.jsonl [more.jsonl …]
//
// Every figure is a median over the runs of one target × mode × concurrency,
// with [min–max]. "ratio" is cibaload's flows_per_s_ratio_vs_first_target
// (target / the first target of that mode and concurrency in the same
// interleaved run — Countersign is listed first, so a peer's ratio below 1
// means Countersign is faster); "ours ×" is the first target's median over
// this target's median (Countersign's speed-up over this target).
import { readFileSync } from 'node:fs';

const f = (x, d = 0) => (x === undefined || x === null ? '–' : Number(x).toFixed(d));
const fl = (x) => f(x, x < 10 ? 1 : 0);
const sp = (s) => (s ? `**${fl(s.median)}** [${fl(s.min)}–${fl(s.max)}]` : '–');
const ms = (a, b) => (a?.median || b?.median ? `${f(a?.median, 1)} / ${f(b?.median, 1)}` : '–');

for (const file of process.argv.slice(2)) {
  const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const sum = lines.find((l) => l.type === 'summary');
  if (!sum) {
    console.log(`${file}: no summary line (run did not finish)`);
    continue;
  }
  console.log(`\n${file}: ${sum.date}, ${sum.rounds} rounds, warm-up ${sum.warmup_s} s + ${sum.duration_s} s each\n`);
  console.log('| target | mode | c | runs | flows/s | ratio vs first | ours × | bc p50 / p99 ms | token p50 / p99 ms | flow p50 / p99 ms | pending / flow | server CPU cores | server RSS MB | redis CPU | errors |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  // Non-terminal token answers (authorization_pending, slow_down) per flow, from the run lines.
  const pend = {};
  for (const r of lines.filter((l) => l.type === 'run')) {
    const k = `${r.target}/${r.mode}/${r.concurrency}`;
    pend[k] ??= { p: 0, n: 0 };
    pend[k].p += Object.values(r.pending || {}).reduce((a, b) => a + b, 0);
    pend[k].n += r.flows;
  }
  const groups = [...sum.groups].sort((a, b) => a.mode.localeCompare(b.mode) || a.concurrency - b.concurrency);
  const first = {};
  for (const g of groups) {
    const mk = `${g.mode}/${g.concurrency}`;
    first[mk] ??= g.flows_per_s.median;
    const ratio = g.flows_per_s_ratio_vs_first_target;
    const oursX = ratio ? f(first[mk] / g.flows_per_s.median, 2) : '';
    const pk = pend[`${g.target}/${g.mode}/${g.concurrency}`];
    const pending = g.mode === 'authorize-only' || !pk?.n ? '–' : f(pk.p / pk.n, 2);
    const errs = g.error_total ? `${g.error_total} ${JSON.stringify(g.errors)}` : '0';
    console.log(`| ${g.target} | ${g.mode} | ${g.concurrency} | ${g.runs} | ${sp(g.flows_per_s)} | ${ratio ? f(ratio, 3) : '(first)'} | ${oursX} | `
      + `${ms(g.bc_p50_ms, g.bc_p99_ms)} | ${ms(g.token_p50_ms, g.token_p99_ms)} | ${ms(g.flow_p50_ms, g.flow_p99_ms)} | ${pending} | ${g.server_cpu_cores ? f(g.server_cpu_cores.median, 2) : '–'} | `
      + `${f(g.server_rss_mb_after_last)} | ${g.aux_cpu_cores ? f(g.aux_cpu_cores.median, 2) : '–'} | ${errs} |`);
  }
}
