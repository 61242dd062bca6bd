// What a @privileged scenario needs of this host: root and working network
// namespaces. The hook in support/hooks.ts fails or skips on the reason.
import { execa } from 'execa';

/** Why privileged scenarios cannot run here, or undefined when they can. */
export async function privilegeMissing(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, bridges and tap devices); run the suite as root';
  const r = await execa('ip', ['netns', 'list'], { reject: false });
  return r.exitCode === 0 ? undefined : `ip netns does not work here: ${r.stderr.trim()}`;
}
