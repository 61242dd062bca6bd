// qemu-img, run through execFile with argument arrays (never a shell).
// Images are made under a temporary name in the target folder and linked into
// place without clobbering, so a failure never leaves a partial file behind and
// an existing file is never overwritten.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { link, lstat, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';

export interface QemuImgOptions {
  /** The qemu-img binary; default 'qemu-img' from PATH. */
  qemuImg?: string;
  /** Kill qemu-img after this long; default 60 s. */
  timeoutMs?: number;
}

export interface ImageInfo {
  format: string;
  virtualSizeBytes: number;
  actualSizeBytes: number;
  /** The backing file as recorded in the image (absolute when made by createOverlay). */
  backingFile?: string;
  backingFormat?: string;
}

export class QemuImgError extends Error {
  readonly argv: string[];
  /** null when qemu-img did not run or was killed. */
  readonly exitCode: number | null;
  readonly output: string;
  constructor(message: string, argv: string[], exitCode: number | null, output: string, options?: { cause?: unknown }) {
    const detail = output.trim() ? `: ${output.trim()}` : '';
    super(`${message}${detail}\ncommand: ${argv.join(' ')}`, options);
    this.name = 'QemuImgError';
    this.argv = argv;
    this.exitCode = exitCode;
    this.output = output;
  }
}

const DEFAULT_TIMEOUT_MS = 60_000;

/** Where an image stays while it is being made (or removed): a dot file beside it, `.<name>.<12 hex>.tmp`. */
export function temporaryName(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
}

/**
 * Removes an image and every temporary made for it, including qemu-img's own
 * temporary of a temporary (`..<name>.<hex>.tmp.<hex>.tmp`): what a process
 * killed while making or removing it may have left.
 */
export async function removeImage(file: string): Promise<string[]> {
  const dir = path.dirname(file);
  const escaped = path.basename(file).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const temporary = new RegExp(`^\\.+${escaped}(\\.[0-9a-f]{12}\\.tmp)+$`);
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n === path.basename(file) || temporary.test(n));
  await Promise.all(names.map((n) => rm(path.join(dir, n), { force: true })));
  return names.map((n) => path.join(dir, n));
}

/** A sparse qcow2 of `sizeGb` GiB; fails if `file` exists. */
export async function createQcow2(file: string, sizeGb: number, opts: QemuImgOptions = {}): Promise<void> {
  if (!Number.isSafeInteger(sizeGb) || sizeGb <= 0) {
    throw new RangeError(`disk size must be a positive whole number of GB, got ${String(sizeGb)}`);
  }
  await createExclusive(file, opts, (target) => ['create', '-q', '-f', 'qcow2', target, `${sizeGb}G`]);
}

/** A qcow2 overlay on `backingPath`: writes go to the overlay, the backing image is never touched. */
export async function createOverlay(
  file: string,
  backingPath: string,
  backingFormat: 'qcow2' | 'raw',
  opts: QemuImgOptions = {},
): Promise<void> {
  if (backingFormat !== 'qcow2' && backingFormat !== 'raw') throw new RangeError(`unsupported backing format ${String(backingFormat)}`);
  // Absolute, so the overlay stays valid whatever the current directory and qemu-img
  // does not resolve it relative to the temporary name's folder differently.
  const backing = safePath(backingPath);
  await createExclusive(file, opts, (target) => ['create', '-q', '-f', 'qcow2', '-b', backing, '-F', backingFormat, target]);
}

/** Every image of a backing chain, the file itself first (qemu-img info --backing-chain). */
export async function imageInfoChain(file: string, opts: QemuImgOptions = {}): Promise<Array<{ filename: string; format: string; virtualSizeBytes: number }>> {
  const { stdout, argv } = await runQemuImg(['info', '--output=json', '--backing-chain', '-U', safePath(file)], opts);
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch (err) {
    throw new QemuImgError('qemu-img info printed something that is not JSON', argv, 0, stdout, { cause: err });
  }
  const list = Array.isArray(raw) ? raw : [raw];
  return list.map((r: Record<string, unknown>) => ({
    filename: String(r['filename'] ?? ''),
    format: String(r['format'] ?? ''),
    virtualSizeBytes: typeof r['virtual-size'] === 'number' ? r['virtual-size'] : 0,
  }));
}

export async function imageInfo(file: string, opts: QemuImgOptions = {}): Promise<ImageInfo> {
  // -U (force-share): works while a running QEMU holds the image's write lock.
  const args = ['info', '--output=json', '-U', safePath(file)];
  const { stdout, argv } = await runQemuImg(args, opts);
  let raw: unknown;
  try {
    raw = JSON.parse(stdout);
  } catch (err) {
    throw new QemuImgError('qemu-img info printed something that is not JSON', argv, 0, stdout, { cause: err });
  }
  const rec = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const format = rec['format'];
  const virtualSize = rec['virtual-size'];
  const actualSize = rec['actual-size'];
  if (typeof format !== 'string' || typeof virtualSize !== 'number') {
    throw new QemuImgError('qemu-img info output lacks format or virtual-size', argv, 0, stdout);
  }
  const info: ImageInfo = {
    format,
    virtualSizeBytes: virtualSize,
    actualSizeBytes: typeof actualSize === 'number' ? actualSize : 0,
  };
  if (typeof rec['backing-filename'] === 'string') info.backingFile = rec['backing-filename'];
  if (typeof rec['backing-filename-format'] === 'string') info.backingFormat = rec['backing-filename-format'];
  return info;
}

/**
 * Absolute path: qemu-img reads "proto:..." or "json:{...}" in a relative
 * filename as a protocol spec, never in one that starts with "/".
 */
function safePath(file: string): string {
  if (file === '' || file.includes('\0')) throw new RangeError(`invalid image path ${JSON.stringify(file)}`);
  return path.resolve(file);
}

async function createExclusive(file: string, opts: QemuImgOptions, argsFor: (target: string) => string[]): Promise<void> {
  const target = safePath(file);
  const qemuImg = opts.qemuImg ?? 'qemu-img';
  const intended = [qemuImg, ...argsFor(target)];
  if (await exists(target)) throw new QemuImgError(`refusing to overwrite existing file ${target}`, intended, null, '');
  // Same folder, so the final link/rename stays on one filesystem.
  const tmp = temporaryName(target);
  try {
    await runQemuImg(argsFor(tmp), opts);
    await linkNoClobber(tmp, target, intended);
  } finally {
    await rm(tmp, { force: true });
  }
}

async function linkNoClobber(tmp: string, target: string, argv: string[]): Promise<void> {
  try {
    await link(tmp, target); // Atomic and fails with EEXIST instead of replacing.
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new QemuImgError(`refusing to overwrite ${target}: it appeared meanwhile`, argv, null, '', { cause: err });
    // Filesystems without hard links: check-then-rename is the best left.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    if (await exists(target)) throw new QemuImgError(`refusing to overwrite ${target}`, argv, null, '', { cause: err });
    await rename(tmp, target);
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function runQemuImg(args: string[], opts: QemuImgOptions): Promise<{ stdout: string; argv: string[] }> {
  const bin = opts.qemuImg ?? 'qemu-img';
  const argv = [bin, ...args];
  const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout, killSignal: 'SIGKILL', maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      if (!error) return resolve({ stdout, argv });
      const output = `${stdout}${stderr}`;
      // error.code is the exit status, or a string such as ENOENT when the binary is missing.
      const exitCode = typeof error.code === 'number' ? error.code : null;
      const why = error.killed ? `qemu-img killed after ${timeout} ms` : exitCode === null ? `could not run ${bin}` : `qemu-img ${args[0]} failed (exit code ${exitCode})`;
      reject(new QemuImgError(why, argv, exitCode, output || error.message, { cause: error }));
    });
  });
}
