// How a VM gets onto the network. The address comes from the AddressPool; the
// backend turns it into QEMU network options and sets up (and later removes)
// whatever the host needs for it.
import type { NetworkSpec } from '../operator/qemu-command.ts';
import { formatCidr, formatIpv4 } from './ipv4.ts';
import type { NetworkConfig } from './config.ts';

export interface VmNetworkRequest {
  vmId: string;
  mac: string;
  address: string;
  /** User mode: the host port on 127.0.0.1 forwarded to the guest's SSH. */
  sshPort?: number;
  /** Bridge mode: the user the VM's QEMU runs as (vman as root) owns its tap. */
  owner?: { uid: number; gid: number };
}

/** What the host holds for VMs' networks (bridge mode): tap devices on the bridge and DHCP reservations. */
export interface NetworkInventory {
  /** Tap devices on vman's bridge named after a VM: `{ tap, vmId }`. */
  taps: Array<{ tap: string; vmId: string }>;
  /** The reservations in dnsmasq's hosts file. */
  reservations: Array<{ mac: string; address: string }>;
}

export interface NetworkBackend {
  readonly mode: NetworkConfig['mode'];
  /** Called once at vman start-up (e.g. start a DHCP server); refuses a host that cannot serve this config. */
  open(): Promise<void>;
  /** Before QEMU starts: host-side set-up for this VM; returns QEMU's network spec. */
  prepare(req: VmNetworkRequest): Promise<NetworkSpec>;
  /** After QEMU has gone (stop, crash, failed start): undo prepare. Safe to call twice. */
  release(vmId: string): Promise<void>;
  /** vman is shutting down: stop helpers it started. VMs keep their set-up (they outlive vman). */
  close(): Promise<void>;
  /** What the host holds for VMs now; absent where the mode keeps nothing on the host (user mode). */
  inventory?(): Promise<NetworkInventory>;
}

/** Unprivileged: QEMU's own user-mode network hands the guest exactly its address. */
export class UserNetworkBackend implements NetworkBackend {
  readonly mode = 'user' as const;
  constructor(private readonly config: NetworkConfig) {}

  async open(): Promise<void> {}

  async prepare(req: VmNetworkRequest): Promise<NetworkSpec> {
    return {
      mode: 'user', subnet: formatCidr(this.config.subnet), gateway: formatIpv4(this.config.gateway), address: req.address, mac: req.mac,
      restrict: this.config.restrict, ...(req.sshPort !== undefined ? { sshPort: req.sshPort } : {}),
    };
  }

  async release(): Promise<void> {}

  async close(): Promise<void> {}
}
