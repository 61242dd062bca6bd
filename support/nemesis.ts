// The nemesis: a few clients run a seeded random workload against vman (VMs
// created, started, stopped, deleted; disks made, attached, detached,
// deleted) while vman is SIGKILLed at random moments, round after round.
// After each restart the suite judges the whole system with its own readers,
// asks the observer, and checks that the next operations work. Every answer
// of every round is kept: none may be a 5xx.
//
// The seed fixes the clients' choices and the moments of the kills; the
// interleaving with QEMU and the guests is the machine's. A failing seed is
// replayed with VMAN_NEMESIS_SEED=<seed>.
import type { Response } from 'got';
import type { VmanWorld } from '../world/vman-world.ts';
import { disagreements } from './coherence.ts';
import { checkNow } from './observer-tasks.ts';

/** mulberry32: small, seeded, good enough to pick operations. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface NemesisSettings { seed: number; clients: number; rounds: number; minRoundMs: number; maxRoundMs: number }

/** The settings of a run: the seed from VMAN_NEMESIS_SEED or a new one; rounds from VMAN_NEMESIS_ROUNDS or the default given. */
export function nemesisSettings(defaults: { clients: number; rounds: number }): NemesisSettings {
  const seedText = process.env.VMAN_NEMESIS_SEED;
  const seed = seedText ? Number(seedText) : Math.floor(Math.random() * 2 ** 31);
  if (!Number.isInteger(seed) || seed < 0) throw new Error(`VMAN_NEMESIS_SEED must be a whole number, not ${seedText}`);
  const rounds = process.env.VMAN_NEMESIS_ROUNDS ? Number(process.env.VMAN_NEMESIS_ROUNDS) : defaults.rounds;
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`VMAN_NEMESIS_ROUNDS must be a whole number from 1, not ${process.env.VMAN_NEMESIS_ROUNDS}`);
  return { seed, clients: defaults.clients, rounds, minRoundMs: 1_500, maxRoundMs: 5_000 };
}

export interface Answered { round: number; client: number; op: string; status: number | 'cut off'; detail: string }

export interface RoundVerdict { round: number; killAfterMs: number; answers: number; cutOff: number; disagreements: string[]; findings: string[]; nextWorks: string[] }

/** A whole run: its settings (the seed among them), each round's verdict and every answer. */
export interface NemesisRun { settings: NemesisSettings; verdicts: RoundVerdict[]; answers: Answered[] }

// A small world of names: clients collide on them on purpose (404s and 409s are answers too).
const VM_NAMES = ['n0', 'n1', 'n2'];
const DISK_NAMES = ['d0', 'd1', 'd2'];

type Op = { name: string; send: (world: VmanWorld) => Promise<Response<unknown>> };

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)]!;
}

/** The next operation a client asks for, chosen by its random source. */
function nextOp(rand: () => number): Op {
  const vm = pick(rand, VM_NAMES);
  const disk = pick(rand, DISK_NAMES);
  const roll = rand();
  // Starts are the costly ones (a boot); the mix keeps about one in six.
  if (roll < 0.18) return { name: `create VM ${vm}`, send: (w) => w.api().http.post('api/v1/vms', { json: { name: vm, template: 'small' } }) };
  if (roll < 0.34) return { name: `start ${vm}`, send: (w) => w.api().http.post(`api/v1/vms/${vm}/start`) };
  if (roll < 0.44) return { name: `stop ${vm}`, send: (w) => w.api().http.post(`api/v1/vms/${vm}/stop`, { json: { force: rand() < 0.5 } }) };
  if (roll < 0.52) return { name: `delete ${vm}`, send: (w) => w.api().http.delete(`api/v1/vms/${vm}`, { searchParams: { force: String(rand() < 0.5) } }) };
  if (roll < 0.70) return { name: `create disk ${disk}`, send: (w) => w.api().http.post('api/v1/disks', { json: { name: disk, size_gb: 1 } }) };
  if (roll < 0.82) return { name: `attach ${disk} to ${vm}`, send: (w) => w.api().http.post(`api/v1/disks/${disk}/attach`, { json: { vm_id: vm } }) };
  if (roll < 0.92) return { name: `detach ${disk}`, send: (w) => w.api().http.post(`api/v1/disks/${disk}/detach`) };
  return { name: `delete disk ${disk}`, send: (w) => w.api().http.delete(`api/v1/disks/${disk}`) };
}

/** One client: asks, one request at a time, until vman is gone. */
async function client(world: VmanWorld, round: number, index: number, rand: () => number, answers: Answered[], dead: { now: boolean }): Promise<void> {
  while (!dead.now) {
    const op = nextOp(rand);
    const answer = await op.send(world).then(
      (res) => ({ status: res.statusCode, detail: JSON.stringify(res.body).slice(0, 200) }),
      (err: Error & { code?: string }) => ({ status: 'cut off' as const, detail: err.code ?? err.message }),
    );
    answers.push({ round, client: index, op: op.name, ...answer });
    if (answer.status === 'cut off') return;
  }
}

/**
 * Runs the rounds: clients work, vman is killed after a seeded delay, the
 * clients' cut-off requests are noted, vman is started again and the system
 * is judged. Returns each round's verdict and every answer.
 */
export async function runNemesis(world: VmanWorld, s: NemesisSettings, restart: () => Promise<void>): Promise<{ verdicts: RoundVerdict[]; answers: Answered[] }> {
  const rand = seededRandom(s.seed);
  const clientRandoms = Array.from({ length: s.clients }, () => seededRandom(Math.floor(rand() * 2 ** 31)));
  const answers: Answered[] = [];
  const verdicts: RoundVerdict[] = [];
  for (let round = 1; round <= s.rounds; round++) {
    const child = world.child;
    if (!child) throw new Error('vman is not running as a separate process');
    const killAfterMs = Math.round(s.minRoundMs + rand() * (s.maxRoundMs - s.minRoundMs));
    const dead = { now: false };
    const before = answers.length;
    const clients = clientRandoms.map((r, i) => client(world, round, i, r, answers, dead));
    // Not a wait for something to happen: the seeded moment of the kill, while the clients work.
    await new Promise((resolve) => setTimeout(resolve, killAfterMs));
    dead.now = true;
    await child.kill('SIGKILL');
    await Promise.all(clients);
    await restart();
    const found = await disagreements(world);
    const report = await checkNow(world);
    const mine = answers.slice(before);
    verdicts.push({
      round, killAfterMs, answers: mine.length, cutOff: mine.filter((a) => a.status === 'cut off').length,
      disagreements: found, findings: report.findings.map((f) => `${f.kind} ${f.resource_id}: ${f.observed}`), nextWorks: await nextOperationsWork(world, round),
    });
  }
  return { verdicts, answers };
}

/** After a restart: a disk made and removed, and every list read. What failed, in words. */
async function nextOperationsWork(world: VmanWorld, round: number): Promise<string[]> {
  const http = world.api().http;
  const out: string[] = [];
  const name = `after-${round}`;
  const made = await http.post('api/v1/disks', { json: { name, size_gb: 1 } });
  if (made.statusCode !== 201) out.push(`create disk ${name}: HTTP ${made.statusCode} ${JSON.stringify(made.body)}`);
  else {
    const gone = await http.delete(`api/v1/disks/${name}`);
    if (gone.statusCode !== 204) out.push(`delete disk ${name}: HTTP ${gone.statusCode} ${JSON.stringify(gone.body)}`);
  }
  for (const list of ['vms', 'disks', 'templates', 'network']) {
    const r = await http.get(`api/v1/${list}`);
    if (r.statusCode !== 200) out.push(`GET /api/v1/${list}: HTTP ${r.statusCode}`);
  }
  return out;
}

export function describeNemesis(s: NemesisSettings, verdicts: RoundVerdict[], answers: Answered[]): string {
  const lines = [
    `seed ${s.seed} (replay: VMAN_NEMESIS_SEED=${s.seed}${s.rounds !== 3 ? ` VMAN_NEMESIS_ROUNDS=${s.rounds}` : ''} npx cucumber-js --tags @nemesis), ${s.clients} clients, ${s.rounds} rounds`,
    ...verdicts.map((v) => `round ${v.round}: killed after ${v.killAfterMs} ms; ${v.answers} requests, ${v.cutOff} cut off; ` +
      `${v.disagreements.length} disagreement(s), ${v.findings.length} finding(s), next operations ${v.nextWorks.length === 0 ? 'worked' : `failed: ${v.nextWorks.join('; ')}`}`),
    '',
    ...answers.map((a) => `r${a.round} c${a.client} ${a.op.padEnd(22)} ${String(a.status).padEnd(8)} ${a.status === 'cut off' ? a.detail : ''}`),
  ];
  return lines.join('\n');
}
