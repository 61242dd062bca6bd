// Templates take boot files only from vman's image directories, and a base
// image only as qemu-img sees it: its format, a size, and backing files inside
// the image directories too.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { assertProblem, dryVman } from './helpers/dry-vman.ts';

const hasQemuImg = fs.existsSync('/usr/bin/qemu-img');
const qcow2 = (file: string, backing?: string): void => {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', ...(backing ? ['-b', backing, '-F', 'raw'] : []), file, ...(backing ? [] : ['64M'])]);
};

describe('image directories', { skip: hasQemuImg ? false : 'qemu-img is not installed' }, () => {
  it('a kernel outside every image directory is a 400 naming VMAN_IMAGE_DIRS, and nothing is written', async (t) => {
    const v = await dryVman(t);
    const before = v.rows('SELECT * FROM templates');
    for (const file of ['/etc/passwd', '/etc/hostname']) {
      assertProblem(await v.api('POST', '/api/v1/templates', { name: 'leak', cpus: 1, memory_mb: 128, kernel_path: file }), 400, /kernel_path \/etc\/\S+ is outside vman's image directories \(VMAN_IMAGE_DIRS: /);
    }
    assert.deepEqual(v.rows('SELECT * FROM templates'), before);
  });

  it('a base image outside is refused too, whatever its format', async (t) => {
    const v = await dryVman(t);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-outside-'));
    t.after(() => fs.rmSync(outside, { recursive: true, force: true }));
    qcow2(path.join(outside, 'base.qcow2'));
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 'b', cpus: 1, memory_mb: 128, base_image_path: path.join(outside, 'base.qcow2'), base_image_format: 'qcow2' }), 400, /base_image_path .* is outside vman's image directories/);
  });

  it('a symbolic link inside that points outside is judged by where it points', async (t) => {
    const v = await dryVman(t);
    const link = path.join(v.dir, 'innocent-vmlinuz');
    fs.symlinkSync('/etc/passwd', link);
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 'l', cpus: 1, memory_mb: 128, kernel_path: link }), 400, /outside vman's image directories/);
  });

  it('a base image must be the format the template says, and its backing files inside too', async (t) => {
    const v = await dryVman(t);
    const base = path.join(v.dir, 'base.qcow2');
    qcow2(base);
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 'r', cpus: 1, memory_mb: 128, base_image_path: base, base_image_format: 'raw' }), 400, /is a qcow2 image, not raw as base_image_format says/);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'vman-outside-'));
    t.after(() => fs.rmSync(outside, { recursive: true, force: true }));
    fs.writeFileSync(path.join(outside, 'secret.raw'), Buffer.alloc(65536));
    const sneaky = path.join(v.dir, 'sneaky.qcow2');
    qcow2(sneaky, path.join(outside, 'secret.raw'));
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 's', cpus: 1, memory_mb: 128, base_image_path: sneaky, base_image_format: 'qcow2' }), 400, /the backing file of base_image_path .*secret\.raw is outside vman's image directories/);
    const notAnImage = path.join(v.dir, 'notes.qcow2');
    fs.writeFileSync(notAnImage, 'hello');
    assertProblem(await v.api('POST', '/api/v1/templates', { name: 'n', cpus: 1, memory_mb: 128, base_image_path: notAnImage, base_image_format: 'qcow2' }), 400, /is a raw image, not qcow2/);
    const ok = await v.api('POST', '/api/v1/templates', { name: 'good', cpus: 1, memory_mb: 128, base_image_path: base, base_image_format: 'qcow2' });
    assert.equal(ok.status, 201, ok.raw);
  });

  it('the host summary names the image directories', async (t) => {
    const v = await dryVman(t);
    assert.deepEqual((await v.api('GET', '/api/v1/host')).body.image_dirs, [v.dir]);
  });
});
