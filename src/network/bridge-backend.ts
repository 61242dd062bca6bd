// Bridge mode (privileged): each VM gets a tap device on the configured
// bridge, tagged with the configured VLAN when the kernel can, and a static
// DHCP reservation (its MAC → its allocated address) in a dnsmasq that vman
// starts on the bridge. The reservations are rebuilt from the database when
// vman starts, so a VM that outlived vman keeps its address.
import type { VmanDb } from '../db/database.ts';
import type { NetworkSpec } from '../operator/qemu-command.ts';
import { readFile } from 'node:fs/promises';
import { crashPoint } from '../crash-points.ts';
import type { NetworkBackend, NetworkInventory, VmNetworkRequest } from './backend.ts';
import type { NetworkConfig } from './config.ts';
import { DnsmasqServer, dnsmasqFiles, parseHostsFile, type DnsmasqFiles, type Reservation } from './dnsmasq.ts';
import { ipJson } from './host-command.ts';
import { formatIpv4, inCidr, parseIpv4 } from './ipv4.ts';
import { createTap, deleteTap, isTapName, linkInfo, tapName, TAP_PREFIX, type IpLink } from './tap.ts';
import { tagTap } from './vlan.ts';

export interface VmReservation extends Reservation {
  vmId: string;
}

export interface BridgeBackendOptions {
  storagePath: string;
  /** Who holds an address now (from the database): dnsmasq's reservations when vman starts. */
  reservations(): VmReservation[];
  log?: (msg: string) => void;
}

export class BridgeSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BridgeSetupError';
  }
}

/** The reservations the database implies: every allocated address with the MAC of its VM. */
export function reservationsFrom(db: VmanDb): VmReservation[] {
  return db.addresses.list().flatMap((a) => {
    const vm = db.vms.get(a.vmId);
    return vm ? [{ vmId: vm.id, mac: vm.mac, address: a.address }] : [];
  });
}

export class BridgeNetworkBackend implements NetworkBackend {
  readonly mode = 'bridge' as const;
  readonly bridge: string;
  readonly files: DnsmasqFiles;
  private readonly dnsmasq: DnsmasqServer;
  private readonly reserved = new Map<string, Reservation>();
  /** Reservation changes and dnsmasq restarts happen one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly log: (msg: string) => void;

  constructor(private readonly config: NetworkConfig, private readonly opts: BridgeBackendOptions) {
    if (config.mode !== 'bridge' || !config.bridge) throw new BridgeSetupError('bridge mode needs a bridge name (VMAN_BRIDGE)');
    this.bridge = config.bridge;
    this.files = dnsmasqFiles(opts.storagePath);
    this.dnsmasq = new DnsmasqServer({ bridge: this.bridge, subnet: config.subnet, gateway: config.gateway, files: this.files });
    this.log = opts.log ?? (() => undefined);
  }

  async open(): Promise<void> {
    await checkBridge(this.bridge, this.config);
    this.reserved.clear();
    for (const r of this.opts.reservations()) this.reserved.set(r.vmId, { mac: r.mac, address: r.address });
    const pid = await this.serialised(() => this.dnsmasq.start(this.list()));
    this.log(`dnsmasq (pid ${pid}) serves DHCP on ${this.bridge} with ${this.reserved.size} reservation(s); files in ${this.files.dir}`);
  }

  async prepare(req: VmNetworkRequest): Promise<NetworkSpec> {
    const ip = parseIpv4(req.address);
    if (ip === undefined || !inCidr(this.config.subnet, ip)) throw new Error(`address ${req.address} is not in the subnet of ${this.bridge}`);
    const tap = tapName(req.vmId);
    await createTap(tap, this.bridge, req.owner);
    try {
      if (this.config.vlan !== null) await tagTap(this.bridge, tap, this.config.vlan);
      crashPoint('network.setup.after-tap');
      await this.serialised(async () => {
        this.reserved.set(req.vmId, { mac: req.mac, address: req.address });
        await this.dnsmasq.reload(this.list());
      });
    } catch (err) {
      await this.release(req.vmId).catch(() => undefined);
      throw err;
    }
    this.log(`vm ${req.vmId}: tap ${tap} on ${this.bridge}${this.config.vlan !== null ? ` (VLAN ${this.config.vlan})` : ''}, reservation ${req.mac} → ${req.address}`);
    return { mode: 'tap', ifname: tap, mac: req.mac };
  }

  async release(vmId: string): Promise<void> {
    const tap = tapName(vmId);
    // The reservation goes even when the tap cannot (and the other way round).
    const tapGone = await deleteTap(tap).then(() => undefined, (err: unknown) => err);
    crashPoint('network.release.after-tap');
    await this.serialised(async () => {
      if (this.reserved.delete(vmId)) await this.dnsmasq.restart(this.list());
    });
    if (tapGone !== undefined) throw tapGone;
  }

  async inventory(): Promise<NetworkInventory> {
    const ports = await ipJson<IpLink[]>(['link', 'show', 'master', this.bridge]);
    const taps = ports.flatMap((l) => (isTapName(l.ifname) ? [{ tap: l.ifname, vmId: `vm-${l.ifname.slice(TAP_PREFIX.length)}` }] : []));
    const reservations = parseHostsFile(await readFile(this.files.hostsfile, 'utf8').catch(() => ''));
    return { taps, reservations };
  }

  async close(): Promise<void> {
    await this.serialised(() => this.dnsmasq.stop());
  }

  /** The reservations dnsmasq serves now, by VM id. */
  reservations(): VmReservation[] {
    return [...this.reserved].map(([vmId, r]) => ({ vmId, ...r }));
  }

  private list(): Reservation[] {
    return [...this.reserved.values()];
  }

  private serialised<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}

interface IpAddr {
  ifname: string;
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

/** The bridge must exist, be up and hold the gateway address: dnsmasq answers from it. */
async function checkBridge(bridge: string, config: NetworkConfig): Promise<void> {
  const gateway = `${formatIpv4(config.gateway)}/${config.subnet.prefix}`;
  const info = await linkInfo(bridge);
  if (!info) {
    throw new BridgeSetupError(
      `bridge ${bridge} does not exist; create it with the gateway address: ip link add ${bridge} type bridge && ip addr add ${gateway} dev ${bridge} && ip link set ${bridge} up`,
    );
  }
  const kind = info.linkinfo?.info_kind;
  if (kind !== 'bridge') throw new BridgeSetupError(`${bridge} is ${kind ? `a ${kind} device` : 'not a bridge'}; VMAN_BRIDGE must name a bridge`);
  if (!(info.flags ?? []).includes('UP')) throw new BridgeSetupError(`bridge ${bridge} is down; bring it up: ip link set ${bridge} up`);
  const [addrs] = await ipJson<IpAddr[]>(['addr', 'show', 'dev', bridge]);
  const v4 = (addrs?.addr_info ?? []).filter((a) => a.family === 'inet');
  if (!v4.some((a) => a.local === formatIpv4(config.gateway) && a.prefixlen === config.subnet.prefix)) {
    const held = v4.map((a) => `${a.local}/${a.prefixlen}`).join(', ') || 'no IPv4 address';
    throw new BridgeSetupError(`bridge ${bridge} must hold the gateway address ${gateway} (it holds ${held}): ip addr add ${gateway} dev ${bridge}`);
  }
}
