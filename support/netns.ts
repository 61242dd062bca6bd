// Network namespaces a privileged scenario makes for itself: a bridge holding
// the gateway address (what an operator would give vman), and a veth pair to
// the suite's namespace on a /30 of its own, so the suite reaches the vman
// that runs inside. Every namespace is named after the run
// (`vman-<run id>-n<k>`): teardown, the leak guard, Ctrl-C and the next run
// find what a run left by that name alone.
import { readlink } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { hostProcesses, signal, waitForExit, type HostProcess } from './proc-reader.ts';
import { formatIpv4, parseIpv4 } from './ipv4.ts';
import { killProcesses, runContext } from './run-context.ts';

export const NETNS_PREFIX = 'vman-';
/** `vman-<pid>-w<worker>-<what>`: the pid of the run that made it comes first. */
const RUN_NETNS = /^vman-(\d+)-w[0-9A-Za-z]+-[0-9A-Za-z-]+$/;

/** The guest network inside every scenario namespace. */
export const BRIDGE_NET = {
  bridge: 'vbr0',
  subnet: '192.168.77.0/24',
  gateway: '192.168.77.1',
  prefix: 24,
  range: '192.168.77.10-192.168.77.20',
} as const;

export interface ScenarioNetns {
  name: string;
  hostVeth: string;
  /** The suite's end of the veth pair, and vman's. */
  hostAddress: string;
  nsAddress: string;
}

let counter = 0;

export async function ip(...args: string[]): Promise<string> {
  const r = await execa('ip', args, { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`ip ${args.join(' ')} failed (exit code ${r.exitCode}): ${r.all?.trim() || 'no output'}`);
  return r.stdout;
}

export async function namespaces(): Promise<string[]> {
  const out = await ip('-j', 'netns', 'list');
  return (out.trim() ? (JSON.parse(out) as Array<{ name: string }>) : []).map((n) => n.name);
}

/** A /30 in 10.254.0.0/16 that no address or route of this host touches. */
async function freeSlash30(seed: number): Promise<number> {
  const used = new Set<number>();
  const addrs = JSON.parse(await ip('-j', '-4', 'addr')) as Array<{ addr_info?: Array<{ local: string }> }>;
  const slash30 = (text: string): number => ((parseIpv4(text) ?? 0) & ~3) >>> 0;
  for (const a of addrs.flatMap((x) => x.addr_info ?? [])) used.add(slash30(a.local));
  const routes = JSON.parse(await ip('-j', '-4', 'route')) as Array<{ dst: string }>;
  for (const r of routes) used.add(slash30(r.dst.split('/')[0] ?? ''));
  const base = parseIpv4('10.254.0.0')!;
  for (let i = 0; i < 16384; i++) {
    const net = (base + (((seed + i) % 16384) << 2)) >>> 0;
    if (!used.has(net)) return net;
  }
  throw new Error('no free /30 in 10.254.0.0/16 for a veth pair');
}

/** Makes `vman-<run>-n<k>`: loopback up, the bridge with the gateway address, a veth pair to here. */
export async function createScenarioNetns(): Promise<ScenarioNetns> {
  const k = ++counter;
  const name = `${NETNS_PREFIX}${runContext().id}-n${k}`;
  const hostVeth = `vh${process.pid}n${k}`.slice(0, 15);
  const net = await freeSlash30(process.pid * 8 + k);
  const ns: ScenarioNetns = { name, hostVeth, hostAddress: formatIpv4(net + 1), nsAddress: formatIpv4(net + 2) };
  await ip('netns', 'add', name);
  try {
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    await ip('-n', name, 'link', 'add', BRIDGE_NET.bridge, 'type', 'bridge');
    await ip('-n', name, 'addr', 'add', `${BRIDGE_NET.gateway}/${BRIDGE_NET.prefix}`, 'dev', BRIDGE_NET.bridge);
    await ip('-n', name, 'link', 'set', BRIDGE_NET.bridge, 'up');
    await ip('link', 'add', hostVeth, 'type', 'veth', 'peer', 'name', 'vn0', 'netns', name);
    await ip('addr', 'add', `${ns.hostAddress}/30`, 'dev', hostVeth);
    await ip('link', 'set', hostVeth, 'up');
    await ip('-n', name, 'addr', 'add', `${ns.nsAddress}/30`, 'dev', 'vn0');
    await ip('-n', name, 'link', 'set', 'vn0', 'up');
  } catch (err) {
    await destroyNetns(name).catch(() => undefined);
    throw err;
  }
  return ns;
}

/** Processes whose network namespace is `name` (what `ip netns pids` reports). */
export async function processesIn(name: string): Promise<number[]> {
  const r = await execa('ip', ['netns', 'pids', name], { reject: false });
  return r.exitCode === 0 ? r.stdout.split('\n').map((l) => Number.parseInt(l, 10)).filter(Number.isInteger) : [];
}

/** Kills whatever still runs in the namespace, removes it, and checks that it is gone. Safe to call twice. */
export async function destroyNetns(name: string): Promise<void> {
  if (!name.startsWith(NETNS_PREFIX)) throw new Error(`refusing to remove namespace ${name}: not one of the suite's`);
  if (!(await namespaces()).includes(name)) return;
  const pids = await processesIn(name);
  for (const pid of pids) signal(pid, 'SIGKILL');
  await Promise.all(pids.map((pid) => waitForExit(pid, 10_000)));
  await ip('netns', 'del', name);
  if ((await namespaces()).includes(name)) throw new Error(`network namespace ${name} is still there after ip netns del`);
}

/** The namespaces of run `runId` (e.g. left by a failed teardown). */
export async function namespacesOfRun(runId: string): Promise<string[]> {
  return (await namespaces()).filter((n) => n.startsWith(`${NETNS_PREFIX}${runId}-`));
}

/** dnsmasq processes serving a storage folder under `root` (their command line names a file there). */
export async function dnsmasqProcessesUnder(root: string): Promise<HostProcess[]> {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  return (await hostProcesses()).filter((p) => path.basename(p.argv[0] ?? '') === 'dnsmasq' && p.argv.some((a) => a.includes(prefix)));
}

/**
 * The leak guard's and Ctrl-C's share: removes this run's namespaces (and all
 * that runs in them) and any dnsmasq serving the run's folder; says what it found.
 */
export async function sweepRunNetwork(runId: string, root: string): Promise<string[]> {
  const problems: string[] = [];
  const stray = await dnsmasqProcessesUnder(root);
  await killProcesses(stray);
  problems.push(...stray.map((p) => `dnsmasq ${p.pid} was still running`));
  for (const name of await namespacesOfRun(runId).catch(() => [] as string[])) {
    await destroyNetns(name).catch((err: unknown) => problems.push(String(err)));
    problems.push(`network namespace ${name} was still there`);
  }
  return problems;
}

/** Namespaces that runs which no longer exist left behind, found by the pid in their names. */
export async function reapCrashedNamespaces(): Promise<string[]> {
  if (process.getuid?.() !== 0) return [];
  const reaped: string[] = [];
  for (const name of await namespaces().catch(() => [] as string[])) {
    const m = RUN_NETNS.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || (await processAlive(owner))) continue;
    await destroyNetns(name).catch(() => undefined);
    reaped.push(name);
  }
  return reaped;
}

async function processAlive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The network namespace a process is in, as the kernel names it (net:[inode]). */
export async function netnsOfProcess(pid: number): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/net`).catch(() => undefined);
}

/** The same for a named namespace, through a process started in it. */
export async function netnsId(name: string): Promise<string> {
  const r = await execa('ip', ['netns', 'exec', name, 'readlink', '/proc/self/ns/net']);
  return r.stdout.trim();
}
