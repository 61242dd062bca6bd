// Facts about a VM's network from sources other than vman's API: dnsmasq's
// own files (reservations, leases), the process table, `ip -j` / `bridge -j`
// inside the scenario's namespace, the tun file descriptors QEMU holds, and
// a ping across the bridge.
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { pollUntil } from './poll.ts';
import type { HostProcess } from './proc-reader.ts';
import type { VmanWorld } from '../world/vman-world.ts';
import { recordedVm } from './vm-facts.ts';
import { dnsmasqProcessesUnder, netnsOfProcess, type ScenarioNetns } from './netns.ts';

export interface NetworkJson {
  mode: string;
  bridge: string | null;
  vlan: number | null;
  subnet: string;
  gateway: string;
  range: { start: string; end: string; size: number };
  allocations: Array<{ address: string; vm_id: string; vm_name: string; allocated_at: string }>;
}

export async function networkFromApi(world: VmanWorld): Promise<NetworkJson> {
  const res = await world.api().http.get('api/v1/network');
  if (res.statusCode !== 200) throw new Error(`GET /api/v1/network: HTTP ${res.statusCode}: ${JSON.stringify(res.body)}`);
  return res.body as unknown as NetworkJson;
}

/** The allocations table, as the database file says (sqlite3, not vman). */
/** An address allocation, as the database file records it. */
export interface AllocationInDb { address: string; vmName: string }

export async function allocationsInDb(world: VmanWorld): Promise<AllocationInDb[]> {
  const rows = await world.db().all(
    'SELECT a.address AS address, v.name AS name FROM address_allocations a JOIN vms v ON v.id = a.vm_id ORDER BY a.address',
  );
  return rows.map((r) => ({ address: String(r.address), vmName: String(r.name) }));
}

export async function macOf(world: VmanWorld, name: string): Promise<string> {
  const row = await world.db().vmByName(name);
  if (!row) throw new Error(`the database has no VM named ${name}`);
  return String(row.mac);
}

function vmanStorage(world: VmanWorld): string {
  return world.api().storagePath;
}

/** Where vman's dnsmasq keeps its files: <storage>/network (hosts file, leases). */
export const networkDir = (world: VmanWorld): string => path.join(vmanStorage(world), 'network');

export interface Reservation { mac: string; address: string }
export interface Lease { expires: number; mac: string; address: string; hostname: string }

/** dnsmasq's lease file: `<expiry> <mac> <ip> <hostname|*> <client-id|*>` a line; IPv6 (duid) lines left out. */
function readLeases(text: string): Lease[] {
  return text.split('\n').flatMap((line) => {
    const [expires, mac, address, hostname] = line.trim().split(/\s+/);
    return expires && mac && address && /^\d+\.\d+\.\d+\.\d+$/.test(address)
      ? [{ expires: Number(expires), mac: mac.toLowerCase(), address, hostname: hostname ?? '*' }]
      : [];
  });
}

/** dnsmasq's reservations file: what it hands to whom. */
export async function reservationsInDnsmasq(world: VmanWorld): Promise<Reservation[]> {
  const text = await readFile(path.join(networkDir(world), 'dhcp-hosts'), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [mac, address] = l.trim().split(',');
      return { mac: mac ?? '', address: address ?? '' };
    });
}

export async function leasesOfDnsmasq(world: VmanWorld): Promise<Lease[]> {
  return readLeases(await readFile(path.join(networkDir(world), 'leases'), 'utf8').catch(() => ''));
}

/** Waits until dnsmasq's lease file shows `mac` holding a lease; returns that lease. */
export async function waitForLease(world: VmanWorld, mac: string, timeoutMs = 10_000): Promise<Lease> {
  return pollUntil(
    `a lease for ${mac} in dnsmasq's lease file`,
    async () => {
      const leases = await leasesOfDnsmasq(world);
      const lease = leases.find((l) => l.mac === mac);
      return lease ? { done: true, value: lease } : { done: false, seen: leases.map((l) => `${l.mac} ${l.address}`).join('; ') || 'no leases' };
    },
    { timeoutMs, intervalMs: 100 },
  );
}

/** The dnsmasq serving this scenario's vman storage, and the namespace it runs in. */
export async function dnsmasqOf(world: VmanWorld): Promise<{ proc: HostProcess; netns: string | undefined } | undefined> {
  const [proc] = await dnsmasqProcessesUnder(vmanStorage(world));
  return proc ? { proc, netns: await netnsOfProcess(proc.pid) } : undefined;
}

interface IpLinkJson {
  ifname: string;
  master?: string;
  linkinfo?: { info_kind?: string };
}

/** The interfaces enslaved to the bridge inside the namespace (`ip -j -d link show master`). */
export async function bridgePorts(ns: ScenarioNetns, bridge: string): Promise<IpLinkJson[]> {
  const r = await execa('ip', ['-n', ns.name, '-j', '-d', 'link', 'show', 'master', bridge]);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as IpLinkJson[]) : [];
}

/** Tap devices a process holds open: /proc/<pid>/fdinfo of each /dev/net/tun descriptor names its interface (iff:). */
export async function tapsHeldBy(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  const taps: string[] = [];
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (target !== '/dev/net/tun') continue;
    const info = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '');
    const m = /^iff:\s*(\S+)/m.exec(info);
    if (m?.[1]) taps.push(m[1]);
  }
  return taps;
}

/** The VLANs a port belongs to inside the namespace (`bridge -j vlan show`). */
export async function vlansOfPort(ns: ScenarioNetns, dev: string): Promise<Array<{ vlan: number; flags: string[] }>> {
  const r = await execa('bridge', ['-n', ns.name, '-j', 'vlan', 'show', 'dev', dev]);
  const entries = (r.stdout.trim() ? JSON.parse(r.stdout) : []) as Array<{ ifname: string; vlans?: Array<{ vlan: number; flags?: string[] }> }>;
  return entries.filter((e) => e.ifname === dev).flatMap((e) => e.vlans ?? []).map((v) => ({ vlan: v.vlan, flags: v.flags ?? [] }));
}

/**
 * Pings `address` from the namespace's bridge side until it answers (busybox
 * ping: setup.sh installs busybox-static for the guest), then reads which MAC
 * answered from the neighbour table.
 */
export async function pingAcrossBridge(ns: ScenarioNetns, bridge: string, address: string, timeoutMs = 15_000): Promise<{ reply: string; mac: string }> {
  const reply = await pollUntil(
    `${address} to answer a ping from the bridge ${bridge} in ${ns.name}`,
    async () => {
      const r = await execa('ip', ['netns', 'exec', ns.name, 'busybox', 'ping', '-c', '1', '-W', '2', address], { reject: false, all: true });
      const line = r.all?.split('\n').find((l) => /bytes from/.test(l));
      return r.exitCode === 0 && line ? { done: true, value: line.trim() } : { done: false, seen: r.all?.trim().split('\n').at(-1) ?? `exit ${r.exitCode}` };
    },
    { timeoutMs, intervalMs: 200 },
  );
  const n = await execa('ip', ['-n', ns.name, '-j', 'neigh', 'show', address, 'dev', bridge]);
  const neigh = (n.stdout.trim() ? JSON.parse(n.stdout) : []) as Array<{ lladdr?: string }>;
  return { reply, mac: neigh[0]?.lladdr ?? '(no neighbour entry)' };
}

/** A VM's QEMU process id from the database, for /proc evidence. */
export async function qemuPidOf(world: VmanWorld, name: string): Promise<number> {
  const vm = await recordedVm(world, name);
  if (vm.pid === null) throw new Error(`VM ${name} has no QEMU pid recorded (state ${vm.state})`);
  return vm.pid;
}

