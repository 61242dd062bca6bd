// The network configuration and who holds which address, as the API shows it.
import type { VmanDb } from '../db/database.ts';
import type { NetworkConfig } from '../network/config.ts';
import { formatCidr, formatIpv4 } from '../network/ipv4.ts';

export interface NetworkView {
  mode: string;
  bridge: string | null;
  vlan: number | null;
  subnet: string;
  gateway: string;
  range: { start: string; end: string; size: number };
  allocations: Array<{ address: string; vm_id: string; vm_name: string; allocated_at: string }>;
}

export class NetworkService {
  constructor(private readonly config: NetworkConfig, private readonly db: VmanDb) {}

  view(): NetworkView {
    const c = this.config;
    const names = new Map(this.db.vms.list().map((v) => [v.id, v.name]));
    return {
      mode: c.mode,
      bridge: c.bridge,
      vlan: c.vlan,
      subnet: formatCidr(c.subnet),
      gateway: formatIpv4(c.gateway),
      range: { start: formatIpv4(c.rangeStart), end: formatIpv4(c.rangeEnd), size: c.rangeEnd - c.rangeStart + 1 },
      allocations: this.db.addresses.list().map((a) => ({ address: a.address, vm_id: a.vmId, vm_name: names.get(a.vmId) ?? '', allocated_at: a.allocatedAt })),
    };
  }
}
