// Finds the QEMU binaries on PATH and reads their versions.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** blockdev-add/-del, -netdev user restrict, device_del events: all stable well before 6.0. */
export const MIN_QEMU_VERSION = { major: 6, minor: 0, micro: 0 } as const;

export interface Version {
  major: number;
  minor: number;
  micro: number;
}

export interface Binary {
  path: string;
  version: Version;
  /** The first line the binary printed for --version. */
  banner: string;
}

export class MissingPrerequisiteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MissingPrerequisiteError';
  }
}

export async function which(names: readonly string[], searchPath = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const name of names) {
    for (const dir of searchPath.split(path.delimiter).filter(Boolean)) {
      const candidate = path.join(dir, name);
      if (await access(candidate, constants.X_OK).then(() => true, () => false)) return candidate;
    }
  }
  return undefined;
}

export function parseVersion(text: string): Version | undefined {
  const m = /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3] ?? 0) };
}

export function compareVersions(a: Version, b: Version): number {
  return a.major - b.major || a.minor - b.minor || a.micro - b.micro;
}

export function formatVersion(v: Version): string {
  return `${v.major}.${v.minor}.${v.micro}`;
}

async function readBinary(names: readonly string[], what: string): Promise<Binary> {
  const found = await which(names);
  if (!found) throw new MissingPrerequisiteError(`${what} not found on PATH (looked for ${names.join(', ')}); run ./setup.sh`);
  const { stdout } = await execFileAsync(found, ['--version'], { timeout: 10_000 });
  const version = parseVersion(stdout);
  if (!version) throw new MissingPrerequisiteError(`cannot read the version of ${found}: ${stdout.trim()}`);
  if (compareVersions(version, MIN_QEMU_VERSION) < 0) {
    throw new MissingPrerequisiteError(
      `${found} is version ${formatVersion(version)}; vman needs at least ${formatVersion(MIN_QEMU_VERSION)}`,
    );
  }
  return { path: found, version, banner: stdout.split('\n')[0] ?? '' };
}

export function findQemuSystem(): Promise<Binary> {
  return readBinary(['qemu-system-x86_64', 'qemu-kvm'], 'QEMU (qemu-system-x86_64 or qemu-kvm)');
}

export function findQemuImg(): Promise<Binary> {
  return readBinary(['qemu-img'], 'qemu-img');
}
