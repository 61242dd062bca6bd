// The suite's file digests (support/file-digest.ts): a large file that has not
// changed is read once; any write, even one that keeps its size, is seen.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileDigests } from '../support/file-digest.ts';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * Waits until the file system's clock (coarse: a kernel tick) has moved past
 * the file's change time, so that a rewrite now gets a change time of its own,
 * as it does in the suite, where only files changed 2 s ago are remembered.
 */
async function untilClockMovesPast(file: string): Promise<void> {
  const changed = (await stat(file, { bigint: true })).ctimeNs;
  const probe = `${file}.clock`;
  const deadline = Date.now() + 5_000;
  for (;;) {
    await writeFile(probe, '');
    if ((await stat(probe, { bigint: true })).ctimeNs > changed) return;
    if (Date.now() > deadline) throw new Error(`the file system clock stayed at ${changed} ns for 5 s`);
  }
}

describe('file digests', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'file-digest-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('gives the SHA-256 of the whole file and of its beginning', async () => {
    const file = path.join(dir, 'a');
    const bytes = Buffer.alloc(3 << 20, 7);
    bytes.write('head', 0);
    await writeFile(file, bytes);
    const digests = new FileDigests();
    assert.equal(await digests.sha256(file), sha(bytes));
    assert.equal(await digests.sha256(file, 4), sha(Buffer.from('head')));
  });

  it('remembers a settled large file, and sees a rewrite of the same size', async () => {
    const file = path.join(dir, 'b');
    const first = Buffer.alloc(2 << 20, 1);
    await writeFile(file, first);
    // Settled at once: the window is what keeps a file being written from being remembered.
    const digests = new FileDigests({ settledMs: -60_000, fromBytes: 1 << 20 });
    assert.equal(await digests.sha256(file), sha(first));
    assert.equal(digests.size, 1);
    await untilClockMovesPast(file);
    const second = Buffer.alloc(2 << 20, 2);
    await writeFile(file, second);
    assert.equal(await digests.sha256(file), sha(second));
    assert.equal(digests.size, 2);
  });

  it('does not remember a file changed within the window, nor a small one', async () => {
    const big = path.join(dir, 'c');
    const small = path.join(dir, 'd');
    await writeFile(big, Buffer.alloc(2 << 20, 3));
    await writeFile(small, 'x');
    const fresh = new FileDigests({ settledMs: 60_000, fromBytes: 1 << 20 });
    await fresh.sha256(big);
    assert.equal(fresh.size, 0);
    const settled = new FileDigests({ settledMs: -60_000, fromBytes: 1 << 20 });
    assert.equal(await settled.sha256(small), sha(Buffer.from('x')));
    assert.equal(settled.size, 0);
  });
});
