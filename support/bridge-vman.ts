// vman in bridge mode, as `vman serve` inside a network namespace of the
// scenario's own (support/netns.ts makes it). Starting it registers the
// teardown with the World's cleanups, so the namespace goes after vman and
// what runs inside it, whatever order the support files load in.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmanWorld } from '../world/vman-world.ts';
import { startChildVman } from '../world/vman-service.ts';
import { DbReader } from './db-reader.ts';
import { killProcesses, qemuProcessesUnder } from './run-context.ts';
import { BRIDGE_NET, createScenarioNetns, destroyNetns, dnsmasqProcessesUnder, type ScenarioNetns } from './netns.ts';

const VMAN_PORT = 8600;


export function scenarioNetns(world: VmanWorld): ScenarioNetns {
  return world.noted('netns', 'a network namespace of this scenario');
}

/** vman in bridge mode as `vman serve` inside a new namespace of the scenario. */
export async function startVmanInNetns(world: VmanWorld, opts: { vlan?: number; crashAt?: string } = {}): Promise<ScenarioNetns> {
  const ns = await createScenarioNetns();
  world.notes.netns = ns;
  world.cleanups.push(() => teardownNetns(world, ns));
  world.notes.netnsEnv = {
    VMAN_NETWORK_MODE: 'bridge',
    VMAN_BRIDGE: BRIDGE_NET.bridge,
    VMAN_SUBNET: BRIDGE_NET.subnet,
    VMAN_GATEWAY: BRIDGE_NET.gateway,
    VMAN_RANGE: BRIDGE_NET.range,
    ...(opts.vlan !== undefined ? { VMAN_VLAN: String(opts.vlan) } : {}),
  };
  await world.vman?.stop();
  await serveInNetns(world, opts.crashAt ? { VMAN_CRASH_AT: opts.crashAt } : {});
  return ns;
}

/** (Re)starts the scenario's vman in its namespace with the settings it was first given (and any extra). */
export async function serveInNetns(world: VmanWorld, extraEnv: Record<string, string> = {}): Promise<void> {
  const ns = scenarioNetns(world);
  world.child = await startChildVman({
    storagePath: path.join(world.storage, 'vman'),
    imageDirs: world.imageDirs(),
    env: { ...world.notes.netnsEnv, ...extraEnv },
    netns: { name: ns.name, listenHost: ns.nsAddress, listenPort: VMAN_PORT },
  });
  world.vman = world.child;
  world.dbReader ??= await DbReader.open(world.vman.dbPath);
}

/** vman, its dnsmasq and QEMUs, then the namespace: what a bridge scenario made, undone (a World cleanup). */
async function teardownNetns(world: VmanWorld, ns: ScenarioNetns): Promise<void> {
  await attachDnsmasqFiles(world);
  const errors: unknown[] = [];
  await world.vman?.stop().catch((e: unknown) => errors.push(e));
  // vman's shutdown stops the dnsmasq it started; one still serving this storage is a leak.
  const dnsmasq = world.storage ? await dnsmasqProcessesUnder(world.storage) : [];
  if (dnsmasq.length > 0) errors.push(new Error(`dnsmasq ${dnsmasq.map((p) => p.pid).join(', ')} outlived vman's shutdown`));
  if (world.storage) await killProcesses(await qemuProcessesUnder(world.storage)).catch((e: unknown) => errors.push(e));
  await destroyNetns(ns.name).catch((e: unknown) => errors.push(e));
  await killProcesses(dnsmasq).catch(() => undefined);
  if (errors.length > 0) throw new AggregateError(errors, `teardown of namespace ${ns.name}: ${errors.map(String).join('; ')}`);
}

async function attachDnsmasqFiles(world: VmanWorld): Promise<void> {
  const dir = path.join(world.storage, 'vman', 'network');
  for (const [file, title] of [['dnsmasq.log', 'dnsmasq log'], ['dhcp-hosts', 'dnsmasq reservations (dhcp-hosts)'], ['leases', 'dnsmasq leases']] as const) {
    const text = await readFile(path.join(dir, file), 'utf8').catch(() => undefined);
    if (text !== undefined) world.attach(text || '(empty)', { mediaType: 'text/plain', fileName: title });
  }
}
