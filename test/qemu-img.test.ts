import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { QemuImgError, createOverlay, createQcow2, imageInfo, removeImage } from '../src/operator/qemu-img.ts';

const GiB = 1024 ** 3;
const hasQemuImg = fs.existsSync('/usr/bin/qemu-img');

describe('qemu-img', { skip: hasQemuImg ? false : 'qemu-img is not installed' }, () => {
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-qemu-img-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const leftovers = (): string[] => fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'));

  it('creates a sparse 1 GB qcow2', async () => {
    const file = path.join(dir, 'one.qcow2');
    await createQcow2(file, 1);
    const info = await imageInfo(file);
    assert.equal(info.format, 'qcow2');
    assert.equal(info.virtualSizeBytes, GiB);
    assert.ok(info.actualSizeBytes < 1024 * 1024, `actual size ${info.actualSizeBytes} should be under 1 MB`);
    assert.ok(fs.statSync(file).blocks * 512 < 1024 * 1024, 'the file is sparse on disk');
    assert.equal(info.backingFile, undefined);
    assert.equal(fs.statSync(file).nlink, 1, 'the temporary name is gone');
    assert.deepEqual(leftovers(), []);
  });

  it('refuses to overwrite an existing file, and leaves it as it was', async () => {
    const file = path.join(dir, 'taken.qcow2');
    fs.writeFileSync(file, 'precious');
    const err = await createQcow2(file, 1).catch((e: unknown) => e);
    assert.ok(err instanceof QemuImgError);
    assert.match(err.message, /refusing to overwrite/);
    assert.ok(err.argv.includes(file));
    assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
    await assert.rejects(createOverlay(file, path.join(dir, 'one.qcow2'), 'qcow2'), QemuImgError);
    assert.equal(fs.readFileSync(file, 'utf8'), 'precious');
    assert.deepEqual(leftovers(), []);
  });

  it('creates an overlay that records its backing file and format', async () => {
    const base = path.join(dir, 'base.raw');
    fs.writeFileSync(base, Buffer.alloc(4 * 1024 * 1024));
    const overlay = path.join(dir, 'overlay.qcow2');
    await createOverlay(overlay, base, 'raw');
    const info = await imageInfo(overlay);
    assert.equal(info.format, 'qcow2');
    assert.equal(info.virtualSizeBytes, 4 * 1024 * 1024);
    assert.equal(info.backingFile, base);
    assert.equal(info.backingFormat, 'raw');
  });

  it('rejects sizes that are not positive whole GB before running anything', async () => {
    for (const size of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const file = path.join(dir, `bad-${String(size)}.qcow2`);
      await assert.rejects(createQcow2(file, size), RangeError);
      assert.equal(fs.existsSync(file), false);
    }
  });

  it('fails with argv, exit code and output, leaving no file, in a folder that does not exist', async () => {
    const file = path.join(dir, 'missing', 'x.qcow2');
    const err = await createQcow2(file, 1).catch((e: unknown) => e);
    assert.ok(err instanceof QemuImgError);
    assert.equal(err.argv[0], 'qemu-img');
    assert.equal(err.argv[1], 'create');
    assert.equal(typeof err.exitCode, 'number');
    assert.notEqual(err.exitCode, 0);
    assert.match(err.output, /No such file or directory/i);
    assert.equal(fs.existsSync(path.dirname(file)), false);
  });

  it('fails and leaves nothing when the backing file is missing', async () => {
    const file = path.join(dir, 'orphan.qcow2');
    const err = await createOverlay(file, path.join(dir, 'nope.qcow2'), 'qcow2').catch((e: unknown) => e);
    assert.ok(err instanceof QemuImgError);
    assert.ok(err.exitCode !== null && err.exitCode !== 0);
    assert.equal(fs.existsSync(file), false);
    assert.deepEqual(leftovers(), []);
  });

  it('reports a missing binary as a QemuImgError without exit code', async () => {
    const err = await createQcow2(path.join(dir, 'nobin.qcow2'), 1, { qemuImg: '/nonexistent/qemu-img' }).catch((e: unknown) => e);
    assert.ok(err instanceof QemuImgError);
    assert.equal(err.exitCode, null);
    assert.equal(err.argv[0], '/nonexistent/qemu-img');
    assert.deepEqual(leftovers(), []);
  });

  it('asks info with -U (force-share) and reports a missing image as a QemuImgError', async () => {
    const err = await imageInfo(path.join(dir, 'absent.qcow2')).catch((e: unknown) => e);
    assert.ok(err instanceof QemuImgError);
    assert.ok(err.argv.includes('-U'));
  });
});

describe('removeImage', () => {
  it('removes an image and its temporaries (and qemu-img temporaries of those), nothing of another image', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-remove-image-'));
    try {
      const names = ['disk-a.qcow2', '.disk-a.qcow2.0123456789ab.tmp', '..disk-a.qcow2.0123456789ab.tmp.ba9876543210.tmp', 'disk-ab.qcow2', '.disk-ab.qcow2.0123456789ab.tmp', '.disk-a.qcow2.notours'];
      for (const n of names) fs.writeFileSync(path.join(dir, n), '');
      const removed = await removeImage(path.join(dir, 'disk-a.qcow2'));
      assert.deepEqual(removed.map((f) => path.basename(f)).sort(), names.slice(0, 3).sort());
      assert.deepEqual(fs.readdirSync(dir).sort(), names.slice(3).sort());
      assert.deepEqual(await removeImage(path.join(dir, 'disk-a.qcow2')), [], 'safe to run twice');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
