// What the guest itself says, through its agent: independent of vman's records.
import type { QemuVm } from '../src/operator/qemu-vm.ts';

export async function guestIpv4Addresses(vm: QemuVm): Promise<string[]> {
  const ifaces = await vm.withGuestAgent((ga) => ga.networkInterfaces());
  return ifaces
    .filter((i) => i.name !== 'lo')
    .flatMap((i) => i['ip-addresses'] ?? [])
    .filter((a) => a['ip-address-type'] === 'ipv4')
    .map((a) => a['ip-address']);
}
