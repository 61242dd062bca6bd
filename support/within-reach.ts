// Built guest images where a VM's own user can read them, for the suite and
// the benchmarks alike. vman as root runs each VM's QEMU as a user of its own,
// who cannot pass through /root to the image caches there; a folder the run
// made can be passed.
import { access, copyFile, link, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';

/**
 * The images of `dir` hard-linked into <root>/images/<basename> (the same
 * files, read-only to QEMU, 0644), or copied where a link cannot cross file
 * systems. Not root: `dir` as it is.
 */
export async function withinReach(dir: string, root: string): Promise<string> {
  if (process.getuid?.() !== 0) return dir;
  const target = path.join(root, 'images', path.basename(dir));
  await mkdir(target, { recursive: true, mode: 0o755 });
  for (const name of await readdir(dir)) {
    const to = path.join(target, name);
    if (await access(to).then(() => true, () => false)) continue;
    await link(path.join(dir, name), to).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'EXDEV') return copyFile(path.join(dir, name), to);
      throw err;
    });
  }
  return target;
}
