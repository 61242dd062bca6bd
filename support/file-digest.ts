// The SHA-256 of a file, as the suite's pictures of the storage folder take
// it before and after a request (support/validation-state.ts, the crash
// outline's picture). Most of those bytes are files nothing writes (the warm
// origin's saved memory, base images), read again at every picture; a file
// is read once per worker while its inode, size, modification and change
// times stay the same. The change time cannot be set from user space, and
// any write through the file system moves it, so a file whose key is the same
// holds the bytes that were hashed.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

interface DigestRules {
  /** A file changed within this window of its hashing might change again within the same tick of the file system's clock: it is hashed, not remembered. */
  settledMs: number;
  /** Small files cost less to hash than to remember. */
  fromBytes: number;
}

const MAX_REMEMBERED = 4096;

/** Hashes files, remembering the digest of a large file that has not changed since. */
export class FileDigests {
  readonly #remembered = new Map<string, string>();

  constructor(private readonly rules: DigestRules = { settledMs: 2_000, fromBytes: 1 << 20 }) {}

  /** How many digests are remembered (for the tests). */
  get size(): number {
    return this.#remembered.size;
  }

  /** The SHA-256 (hex) of a file's bytes, or of its first `bytes` bytes. */
  async sha256(file: string, bytes?: number): Promise<string> {
    if (bytes !== undefined) return hashStream(file, bytes);
    const before = await stat(file, { bigint: true });
    const key = `${before.dev}:${before.ino}:${before.size}:${before.mtimeNs}:${before.ctimeNs}`;
    const known = this.#remembered.get(key);
    if (known !== undefined) return known;
    const digest = await hashStream(file);
    const after = await stat(file, { bigint: true });
    const same = after.ino === before.ino && after.size === before.size && after.mtimeNs === before.mtimeNs && after.ctimeNs === before.ctimeNs;
    const lastChangeNs = before.ctimeNs > before.mtimeNs ? before.ctimeNs : before.mtimeNs;
    const settled = BigInt(Date.now()) * 1_000_000n - lastChangeNs > BigInt(this.rules.settledMs) * 1_000_000n;
    if (same && settled && before.size >= BigInt(this.rules.fromBytes)) {
      if (this.#remembered.size >= MAX_REMEMBERED) this.#remembered.clear();
      this.#remembered.set(key, digest);
    }
    return digest;
  }
}

const digests = new FileDigests();

/** The SHA-256 (hex) of a file's bytes, or of its first `bytes` bytes (one worker's memory of large files). */
export function sha256File(file: string, bytes?: number): Promise<string> {
  return digests.sha256(file, bytes);
}

async function hashStream(file: string, bytes?: number): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(file, bytes === undefined ? { highWaterMark: 1 << 20 } : { start: 0, end: bytes - 1, highWaterMark: 1 << 20 });
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
