// dnsmasq (Debian's dnsmasq-base) as the DHCP server of the bridge: DNS off,
// static reservations only (one `<mac>,<ip>` line per VM in a hosts file),
// its pidfile, lease file and log in `<storage>/network`. It daemonizes like
// QEMU does, so it is found again by its pidfile and by its command line
// naming our hosts file, never by its process name.
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { listProcesses, readProcess, signal, waitForExit, type ProcessInfo } from '../operator/proc.ts';
import { pollUntil } from '../poll.ts';
import { runCommand, resolveTool } from './host-command.ts';
import { formatIpv4, inCidr, parseIpv4, type Cidr } from './ipv4.ts';

export interface Reservation {
  mac: string;
  address: string;
}

export interface DnsmasqFiles {
  dir: string;
  pidfile: string;
  hostsfile: string;
  leasefile: string;
  logfile: string;
}

export function dnsmasqFiles(storagePath: string): DnsmasqFiles {
  const dir = path.join(storagePath, 'network');
  return {
    dir,
    pidfile: path.join(dir, 'dnsmasq.pid'),
    hostsfile: path.join(dir, 'dhcp-hosts'),
    leasefile: path.join(dir, 'leases'),
    logfile: path.join(dir, 'dnsmasq.log'),
  };
}

export interface DnsmasqSettings {
  bridge: string;
  subnet: Cidr;
  gateway: number;
  files: DnsmasqFiles;
}

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
// dnsmasq splits some option values on commas; a path never needs one here.
const SAFE_PATH = /^\/[^,\0\n\r]*$/;

function netmask(prefix: number): string {
  return formatIpv4(prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0);
}

/** dnsmasq's command line. Every value is validated; the result is an argument array (no shell). */
export function dnsmasqArgs(s: DnsmasqSettings): string[] {
  if (!IFNAME.test(s.bridge)) throw new Error(`invalid bridge name ${JSON.stringify(s.bridge)}`);
  for (const f of [s.files.pidfile, s.files.hostsfile, s.files.leasefile, s.files.logfile]) {
    if (!SAFE_PATH.test(f)) throw new Error(`dnsmasq cannot be given the path ${JSON.stringify(f)}: it must be absolute, without commas or line breaks`);
  }
  return [
    '--conf-file=/dev/null', // nothing from /etc/dnsmasq.conf
    '--no-resolv', '--no-hosts', '--port=0', // no DNS at all
    `--interface=${s.bridge}`, '--bind-interfaces', '--except-interface=lo',
    // `static`: only reserved MACs get an address, and only their own.
    `--dhcp-range=${formatIpv4(s.subnet.network)},static,${netmask(s.subnet.prefix)}`,
    `--dhcp-option=option:router,${formatIpv4(s.gateway)}`,
    '--dhcp-authoritative',
    `--dhcp-hostsfile=${s.files.hostsfile}`,
    `--dhcp-leasefile=${s.files.leasefile}`,
    `--pid-file=${s.files.pidfile}`,
    `--log-facility=${s.files.logfile}`, '--log-dhcp',
    // dnsmasq would drop to `nobody`, which cannot read the hosts file inside
    // vman's storage (mode 0700) when it re-reads it on SIGHUP.
    '--user=root', '--group=root',
  ];
}

/** The hosts file: one `<mac>,<ip>` per line, sorted by address. */
export function renderHostsFile(reservations: readonly Reservation[], subnet?: Cidr): string {
  const lines = reservations.map((r) => {
    if (!MAC.test(r.mac)) throw new Error(`invalid MAC address ${JSON.stringify(r.mac)} in a DHCP reservation`);
    const ip = parseIpv4(r.address);
    if (ip === undefined) throw new Error(`invalid IPv4 address ${JSON.stringify(r.address)} in a DHCP reservation`);
    if (subnet && !inCidr(subnet, ip)) throw new Error(`reserved address ${r.address} is outside the subnet`);
    return { ip, line: `${r.mac},${r.address}` };
  });
  const macs = new Set(reservations.map((r) => r.mac));
  const ips = new Set(lines.map((l) => l.ip));
  if (macs.size !== reservations.length) throw new Error('two DHCP reservations for one MAC address');
  if (ips.size !== reservations.length) throw new Error('two DHCP reservations for one address');
  return lines.sort((a, b) => a.ip - b.ip).map((l) => `${l.line}\n`).join('');
}

/** The hosts file back: one reservation per `<mac>,<ip>` line; anything else is skipped. */
export function parseHostsFile(text: string): Reservation[] {
  const out: Reservation[] = [];
  for (const line of text.split('\n')) {
    const [mac, address, ...rest] = line.trim().split(',');
    if (!mac || !address || rest.length > 0 || !MAC.test(mac.toLowerCase()) || parseIpv4(address) === undefined) continue;
    out.push({ mac: mac.toLowerCase(), address });
  }
  return out;
}

export interface Lease {
  expires: number;
  mac: string;
  address: string;
  hostname: string;
  clientId: string;
}

/** dnsmasq's lease file: `<expiry> <mac> <ip> <hostname|*> <client-id|*>` per line. */
export function parseLeases(text: string): Lease[] {
  const out: Lease[] = [];
  for (const line of text.split('\n')) {
    const [expires, mac, address, hostname, clientId] = line.trim().split(/\s+/);
    if (!expires || !mac || !address || parseIpv4(address) === undefined) continue; // duid lines (IPv6), blanks
    out.push({ expires: Number(expires), mac: mac.toLowerCase(), address, hostname: hostname ?? '*', clientId: clientId ?? '*' });
  }
  return out;
}

/**
 * The lease file without leases that no reservation backs. dnsmasq refuses a
 * reserved address that it remembers leasing to another MAC, so an address
 * given back by a stopped VM must leave the lease file before its next holder asks.
 */
export function pruneLeases(text: string, reservations: readonly Reservation[]): string {
  const keep = new Set(reservations.map((r) => `${r.mac.toLowerCase()} ${r.address}`));
  return text
    .split('\n')
    .filter((line) => {
      const [, mac, address] = line.trim().split(/\s+/);
      if (!mac || !address || parseIpv4(address) === undefined) return line.trim() !== '';
      return keep.has(`${mac.toLowerCase()} ${address}`);
    })
    .map((l) => `${l}\n`)
    .join('');
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, file);
}

/** One dnsmasq serving one bridge for one vman storage. */
export class DnsmasqServer {
  readonly args: string[];
  private pid: number | undefined;

  constructor(readonly settings: DnsmasqSettings) {
    this.args = dnsmasqArgs(settings);
  }

  get files(): DnsmasqFiles {
    return this.settings.files;
  }

  /** dnsmasq processes serving this storage: their command line names our hosts file. */
  async findOurs(): Promise<ProcessInfo[]> {
    const marker = `--dhcp-hostsfile=${this.files.hostsfile}`;
    return (await listProcesses()).filter((p) => path.basename(p.argv[0] ?? '') === 'dnsmasq' && p.argv.includes(marker));
  }

  /** The running dnsmasq of this storage, if its pidfile names one that is ours. */
  async runningPid(): Promise<number | undefined> {
    const pid = this.pid ?? Number.parseInt(await readFile(this.files.pidfile, 'utf8').catch(() => ''), 10);
    if (!Number.isInteger(pid)) return undefined;
    const proc = await readProcess(pid);
    const ours = proc !== undefined && proc.state !== 'Z' && proc.argv.includes(`--dhcp-hostsfile=${this.files.hostsfile}`);
    return ours ? pid : undefined;
  }

  /**
   * Starts dnsmasq serving `reservations`. A dnsmasq that a previous vman left
   * on this storage is stopped first (it may have been started with other settings).
   */
  async start(reservations: readonly Reservation[]): Promise<number> {
    await mkdir(this.files.dir, { recursive: true, mode: 0o700 });
    await this.stop();
    await writeAtomically(this.files.hostsfile, renderHostsFile(reservations, this.settings.subnet));
    const leases = await readFile(this.files.leasefile, 'utf8').catch(() => undefined);
    if (leases !== undefined) await writeAtomically(this.files.leasefile, pruneLeases(leases, reservations));
    await rm(this.files.pidfile, { force: true });
    // dnsmasq's parent exits once the daemon is set up, with a message and a
    // non-zero code when it could not (socket in use, no such interface, ...).
    await runCommand(await resolveTool('dnsmasq'), this.args, { timeoutMs: 15_000 });
    const pid = await pollUntil(
      `dnsmasq to write its pidfile ${this.files.pidfile}`,
      async () => {
        const text = await readFile(this.files.pidfile, 'utf8').catch(() => '');
        const n = Number.parseInt(text, 10);
        const proc = Number.isInteger(n) ? await readProcess(n) : undefined;
        return proc && proc.argv.includes(`--dhcp-hostsfile=${this.files.hostsfile}`)
          ? { done: true, value: n }
          : { done: false, seen: text ? `pidfile says ${text.trim()}, no such dnsmasq` : 'no pidfile' };
      },
      { timeoutMs: 5_000 },
    );
    this.pid = pid;
    return pid;
  }

  /** New reservations only: rewrite the hosts file and have dnsmasq re-read it (SIGHUP). */
  async reload(reservations: readonly Reservation[]): Promise<void> {
    const pid = await this.runningPid();
    if (pid === undefined) {
      await this.start(reservations);
      return;
    }
    await writeAtomically(this.files.hostsfile, renderHostsFile(reservations, this.settings.subnet));
    signal(pid, 'SIGHUP');
  }

  /** A reservation went away: restart, so dnsmasq also forgets the lease that went with it. */
  async restart(reservations: readonly Reservation[]): Promise<void> {
    await this.start(reservations);
  }

  /** Stops every dnsmasq of this storage (graceful, then forced). Safe to call twice. */
  async stop(): Promise<void> {
    const pids = new Set((await this.findOurs()).map((p) => p.pid));
    const fromPidfile = await this.runningPid();
    if (fromPidfile !== undefined) pids.add(fromPidfile);
    for (const pid of pids) signal(pid, 'SIGTERM');
    for (const pid of pids) {
      if (!(await waitForExit(pid, 5_000))) {
        signal(pid, 'SIGKILL');
        await waitForExit(pid, 5_000);
      }
    }
    this.pid = undefined;
    await rm(this.files.pidfile, { force: true });
  }
}
