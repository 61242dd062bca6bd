// The cloud-init seed of a VM (NoCloud): a small ISO labelled `cidata`, made
// with genisoimage, that QEMU gives the guest as a read-only disk. meta-data
// says the instance id, the hostname (the VM's name) and the SSH public keys;
// user-data is the VM's, passed through as given. Made when the VM is made,
// and again at a start only when what it would say has changed.
import { execFile } from 'node:child_process';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface SeedContent {
  instanceId: string;
  hostname: string;
  sshKeys: readonly string[];
  userData: string | null;
}

export function seedPath(vmDir: string): string {
  return path.join(vmDir, 'seed.iso');
}

/** meta-data as JSON (which YAML reads), user-data as given or an empty cloud-config. */
export function seedFiles(c: SeedContent): { 'meta-data': string; 'user-data': string } {
  const meta = { 'instance-id': c.instanceId, 'local-hostname': c.hostname, 'public-keys': [...c.sshKeys] };
  return { 'meta-data': `${JSON.stringify(meta, null, 2)}\n`, 'user-data': c.userData ?? '#cloud-config\n{}\n' };
}

/** Writes the seed unless the one there already says the same; returns its path. */
export async function writeSeed(vmDir: string, content: SeedContent, opts: { genisoimage?: string } = {}): Promise<string> {
  const iso = seedPath(vmDir);
  const dir = path.join(vmDir, 'seed');
  const files = seedFiles(content);
  const same = await Promise.all(Object.entries(files).map(async ([name, text]) => (await readFile(path.join(dir, name), 'utf8').catch(() => undefined)) === text));
  const isoThere = await readFile(iso).then(() => true, () => false);
  if (isoThere && same.every(Boolean)) return iso;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text, { mode: 0o600 });
  const tmp = `${iso}.tmp`;
  await run(opts.genisoimage ?? 'genisoimage', ['-quiet', '-output', tmp, '-volid', 'cidata', '-joliet', '-rock', path.join(dir, 'user-data'), path.join(dir, 'meta-data')]).catch(async (err: unknown) => {
    await rm(tmp, { force: true });
    throw err;
  });
  await rename(tmp, iso);
  return iso;
}

function run(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
      reject(new Error(missing ? `${file} is not installed: vman makes cloud-init seeds with it (./setup.sh installs genisoimage)` : `${file} failed: ${stderr.trim() || err.message}`));
    });
  });
}
