// Hands each starting VM the lowest free address of the range and takes it
// back. Callers run allocate/release inside the same database transaction as
// the VM's state change, so an address is never held by a VM that is not
// starting or running, and never given to two VMs (the table's primary key
// and the transaction's write lock see to that, also across processes).
import type { AddressRepo } from '../db/address-repo.ts';
import { conflict } from '../errors.ts';
import { formatIpv4, parseIpv4 } from './ipv4.ts';
import type { NetworkConfig } from './config.ts';

export class AddressPool {
  constructor(
    private readonly config: NetworkConfig,
    private readonly repo: AddressRepo,
  ) {}

  get size(): number {
    return this.config.rangeEnd - this.config.rangeStart + 1;
  }

  /** The VM's address, reusing one it already holds. */
  allocate(vmId: string): string {
    const held = this.repo.getByVm(vmId);
    if (held) return held.address;
    const taken = new Set(this.repo.list().map((a) => parseIpv4(a.address)));
    for (let ip = this.config.rangeStart; ip <= this.config.rangeEnd; ip++) {
      if (!taken.has(ip)) return this.repo.allocate(formatIpv4(ip), vmId).address;
    }
    throw conflict(
      'address-range-exhausted',
      `no free address: all ${this.size} addresses of ${formatIpv4(this.config.rangeStart)}-${formatIpv4(this.config.rangeEnd)} are allocated`,
    );
  }

  release(vmId: string): string | undefined {
    const held = this.repo.getByVm(vmId);
    if (!held) return undefined;
    this.repo.release(vmId);
    return held.address;
  }

  addressOf(vmId: string): string | undefined {
    return this.repo.getByVm(vmId)?.address;
  }
}
