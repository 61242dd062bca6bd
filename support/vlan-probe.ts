// Whether this kernel can filter VLANs on a bridge: asked once per run, in a
// throwaway namespace (the VLAN scenarios run or skip on it, with its reason).
import os from 'node:os';
import { execa } from 'execa';
import { ip, NETNS_PREFIX } from './netns.ts';
import { runContext } from './run-context.ts';

export type VlanSupport = { supported: true } | { supported: false; reason: string };

let vlanSupport: Promise<VlanSupport> | undefined;

export function kernelVlanSupport(): Promise<VlanSupport> {
  vlanSupport ??= probeVlans(`${NETNS_PREFIX}${runContext().id}-vlanprobe`);
  return vlanSupport;
}

async function probeVlans(name: string): Promise<VlanSupport> {
  await ip('netns', 'add', name);
  try {
    const steps: Array<[string, string, string[]]> = [
      ['creating a bridge with vlan_filtering 1', 'ip', ['-n', name, 'link', 'add', 'vprobe0', 'type', 'bridge', 'vlan_filtering', '1']],
      ['adding the bridge to VLAN 2', 'bridge', ['-n', name, 'vlan', 'add', 'dev', 'vprobe0', 'vid', '2', 'pvid', 'untagged', 'self']],
    ];
    for (const [what, tool, args] of steps) {
      const r = await execa(tool, args, { reject: false, all: true });
      if (r.exitCode !== 0) return { supported: false, reason: `this kernel (${os.release()}) refuses bridge VLAN filtering: ${what}: ${r.all?.trim() || `exit ${r.exitCode}`}` };
    }
    return { supported: true };
  } finally {
    await ip('netns', 'del', name).catch(() => undefined);
  }
}
