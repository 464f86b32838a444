// `npm run bench [-- p1 p5 …]`: runs the chosen benchmarks (all by default), prints one table
// and writes it as JSON to bench/results/. What each measures: bench/README.md.
import { mkdirSync, writeFileSync } from 'node:fs';
import { REPO, testbed, testbedStatus } from '../test/support/testbed.js';
import { type Row, table } from './lib.js';

export interface Bench {
  id: string;
  title: string;
  /** Needs the testbed (`up --nodes 4`); run.sh brings one up when any chosen bench does. */
  testbed: boolean;
  run: () => Promise<Row[]>;
}

/** Each bench module default-exports its Bench; loaded only when chosen. */
const all: Record<string, () => Promise<Bench>> = {
  p1: () => import('./p1-preexec.js').then((m) => m.default),
  p2: () => import('./p2-cli.js').then((m) => m.default),
  p3: () => import('./p3-starter.js').then((m) => m.default),
  p4: () => import('./p4-postexec.js').then((m) => m.default),
  p5: () => import('./p5-ports.js').then((m) => m.default),
  p6: () => import('./p6-fanout.js').then((m) => m.default),
  p7: () => import('./p7-mpi.js').then((m) => m.default),
};

const chosen = process.argv.slice(2).map((a) => a.toLowerCase());
const ids = chosen.length ? chosen : Object.keys(all);
const unknown = ids.filter((id) => !all[id]);
if (unknown.length) {
  console.error(`jobbox: bench: unknown benchmark: ${unknown.join(' ')} (known: ${Object.keys(all).join(' ')})`);
  process.exit(2);
}

const benches = await Promise.all(ids.map((id) => all[id]!()));
// P1 needs four nodes. Reuse a testbed that has them; bring one up (and down) otherwise.
let started = false;
if (benches.some((b) => b.testbed)) {
  const status = await testbedStatus();
  if (status.up && status.nodes.length < 4) {
    console.error(`jobbox: bench: the testbed has too few nodes: ${status.nodes.length} (take it down, or: npm run testbed -- up --nodes 4)`);
    process.exit(2);
  }
  if (!status.up) {
    await testbed(['up', '--nodes', '4'], { stdio: 'inherit' });
    started = true;
  }
}

// A failed bench still takes down the testbed it brought up.
try {
  const rows: Row[] = [];
  for (const b of benches) {
    console.error(`bench: ${b.id} ${b.title}`);
    const got = await b.run();
    for (const r of got) console.error(`  ${r.case}: ${r.stats.median.toFixed(2)} ${r.unit}${r.ratio === undefined ? '' : ` (${r.ratio.toFixed(2)}×)`}`);
    rows.push(...got);
  }

  console.log(table(rows));
  const notes = rows.filter((r) => r.note).map((r) => `${r.bench} ${r.case}: ${r.note}`);
  if (notes.length) console.log(`\n${notes.join('\n')}`);
  const dir = `${REPO}/bench/results`;
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const json = JSON.stringify({ date: new Date().toISOString(), node: process.version, rows }, null, 2);
  writeFileSync(`${dir}/bench-${stamp}.json`, json);
  writeFileSync(`${dir}/latest.json`, json);
  console.log(`\nwritten: bench/results/bench-${stamp}.json`);
} finally {
  if (started) await testbed(['down'], { stdio: 'inherit' });
}
