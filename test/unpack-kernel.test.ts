// guest/unpack-kernel.sh: the test guest's kernel, unpacked for direct kernel
// boot. Judged on made-up kernels: a bzImage header around a compressed ELF,
// with and without the PVH entry note QEMU needs.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { execa } from 'execa';

const script = path.resolve(import.meta.dirname, '..', 'guest', 'unpack-kernel.sh');

/** A 64-bit ELF with one PT_NOTE segment holding one note of the owner "Xen". */
function elf(noteType: number, body = 'kernel text'): Buffer {
  const note = Buffer.alloc(12 + 4 + 4);
  note.writeUInt32LE(4, 0); // namesz: "Xen\0"
  note.writeUInt32LE(4, 4); // descsz
  note.writeUInt32LE(noteType, 8);
  note.write('Xen\0', 12, 'latin1');
  note.writeUInt32LE(0x1000000, 16); // the entry's address
  const header = Buffer.alloc(64);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(header); // \x7fELF, 64-bit, little-endian
  header.writeBigUInt64LE(64n, 0x20); // e_phoff
  header.writeUInt16LE(56, 0x36); // e_phentsize
  header.writeUInt16LE(1, 0x38); // e_phnum
  const ph = Buffer.alloc(56);
  ph.writeUInt32LE(4, 0); // PT_NOTE
  ph.writeBigUInt64LE(BigInt(64 + 56), 8); // p_offset
  ph.writeBigUInt64LE(BigInt(note.length), 32); // p_filesz
  return Buffer.concat([header, ph, note, Buffer.from(body)]);
}

/** A bzImage's header (boot protocol 2.15) around `payload`, which ends with the size its build appends. */
function bzImage(kernel: Buffer, sizeSaid = kernel.length): Buffer {
  const size = Buffer.alloc(4);
  size.writeUInt32LE(sizeSaid);
  const payload = Buffer.concat([gzipSync(kernel), size]);
  const setup = Buffer.alloc(2 * 512); // the boot sector and one setup sector
  setup[0x1f1] = 1;
  setup.write('HdrS', 0x202, 'latin1');
  setup.writeUInt16LE(0x20f, 0x206);
  setup.writeUInt32LE(0, 0x248); // payload_offset
  setup.writeUInt32LE(payload.length, 0x24c); // payload_length
  return Buffer.concat([setup, payload]);
}

async function unpack(t: { after(fn: () => void): void }, input: Buffer) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'unpack-kernel-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'in'), input);
  const r = await execa(script, [path.join(dir, 'in'), path.join(dir, 'out')], { reject: false });
  const out = r.exitCode === 0 ? readFileSync(path.join(dir, 'out')) : undefined;
  return { exitCode: r.exitCode, stderr: String(r.stderr), out };
}

describe('guest/unpack-kernel.sh', () => {
  it('takes the ELF out of a bzImage, byte for byte, when it has the PVH entry', async (t) => {
    const kernel = elf(18);
    const r = await unpack(t, bzImage(kernel));
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(r.out, kernel);
  });

  it('refuses a kernel without the PVH entry note, which QEMU could not start', async (t) => {
    const r = await unpack(t, bzImage(elf(5)));
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /has no PVH entry note/);
  });

  it('refuses a kernel that does not come out as long as the bzImage says', async (t) => {
    const kernel = elf(18);
    const r = await unpack(t, bzImage(kernel, kernel.length + 1));
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, new RegExp(`gave ${kernel.length} bytes .* its header says ${kernel.length + 1}`));
  });

  it('refuses a file that is not a bzImage', async (t) => {
    const r = await unpack(t, elf(18));
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /is not a bzImage/);
  });
});
