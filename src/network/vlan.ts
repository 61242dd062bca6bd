// VLAN tagging on a VM's tap: the bridge filters by VLAN, the tap is an
// untagged member of the VM's VLAN (its PVID) and of nothing else, and the
// bridge's own port (where dnsmasq listens) is in the same VLAN. Some kernels
// refuse bridge VLAN filtering outright; that refusal is reported as is.
import os from 'node:os';
import { bridgeTool, HostCommandError, ip } from './host-command.ts';
import { linkInfo } from './tap.ts';

export class VlanUnsupportedError extends Error {
  constructor(readonly vlan: number, readonly bridge: string, readonly refusal: string, options?: { cause?: unknown }) {
    super(`this kernel cannot tag VLAN ${vlan} on ${bridge}: ${refusal}`, options);
    this.name = 'VlanUnsupportedError';
  }
}

function refusal(err: unknown, what: string): string {
  const said = err instanceof HostCommandError ? err.said : err instanceof Error ? err.message : String(err);
  return `${what} was refused (${said})`;
}

/** Makes `tap` an untagged member of `vlan` on `bridge`; throws VlanUnsupportedError naming the refusal. */
export async function tagTap(bridge: string, tap: string, vlan: number): Promise<void> {
  if (!Number.isInteger(vlan) || vlan < 1 || vlan > 4094) throw new Error(`invalid VLAN id ${vlan}`);
  const info = await linkInfo(bridge);
  if (!info) throw new Error(`bridge ${bridge} does not exist`);
  if (info.linkinfo?.info_data?.vlan_filtering !== 1) {
    await ip(['link', 'set', 'dev', bridge, 'type', 'bridge', 'vlan_filtering', '1']).catch((err: unknown) => {
      throw new VlanUnsupportedError(vlan, bridge, refusal(err, `turning on VLAN filtering on ${bridge}`), { cause: err });
    });
  }
  const add = async (args: string[], what: string): Promise<void> => {
    await bridgeTool(['vlan', 'add', ...args]).catch((err: unknown) => {
      throw new VlanUnsupportedError(vlan, bridge, refusal(err, what), { cause: err });
    });
  };
  await add(['dev', bridge, 'vid', String(vlan), 'pvid', 'untagged', 'self'], `adding ${bridge} itself to VLAN ${vlan}`);
  await add(['dev', tap, 'vid', String(vlan), 'pvid', 'untagged'], `adding ${tap} to VLAN ${vlan}`);
  // The bridge's default VLAN (1) would otherwise still reach the tap.
  if (vlan !== 1) await bridgeTool(['vlan', 'del', 'dev', tap, 'vid', '1']).catch(() => undefined);
}

export type VlanSupport = { supported: true } | { supported: false; reason: string };

/**
 * Asks the kernel, in a throwaway network namespace named `namespace`, whether
 * it can filter VLANs on a bridge. The namespace is removed before returning.
 */
export async function probeVlanSupport(namespace: string): Promise<VlanSupport> {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(namespace)) throw new Error(`invalid namespace name ${JSON.stringify(namespace)}`);
  await ip(['netns', 'add', namespace]);
  try {
    const steps: Array<[string, () => Promise<unknown>]> = [
      ['creating a bridge with vlan_filtering 1', () => ip(['-n', namespace, 'link', 'add', 'vprobe0', 'type', 'bridge', 'vlan_filtering', '1'])],
      ['adding the bridge to VLAN 2', () => bridgeTool(['-n', namespace, 'vlan', 'add', 'dev', 'vprobe0', 'vid', '2', 'pvid', 'untagged', 'self'])],
    ];
    for (const [what, run] of steps) {
      try {
        await run();
      } catch (err) {
        return { supported: false, reason: `this kernel (${os.release()}) refuses bridge VLAN filtering: ${refusal(err, what)}` };
      }
    }
    return { supported: true };
  } finally {
    await ip(['netns', 'del', namespace]).catch(() => undefined);
  }
}

