// The image directories: the only folders templates may take kernels, initrds
// and base images from. QEMU runs with vman's rights (root, often): a template
// naming any other file would let a caller read it through a guest. Paths are
// resolved (symbolic links followed) before they are judged.
import { realpath } from 'node:fs/promises';
import path from 'node:path';
import { invalid } from '../errors.ts';
import { imageInfoChain, type QemuImgOptions } from '../operator/qemu-img.ts';

export class ImageDirs {
  constructor(readonly dirs: readonly string[]) {}

  /** The file itself, resolved; a 400 naming the setting when it lies outside every image directory. */
  async assertInside(field: string, file: string): Promise<string> {
    const real = await realpath(file).catch(() => file);
    for (const dir of this.dirs) {
      const root = await realpath(dir).catch(() => dir);
      if (real.startsWith(`${root}${path.sep}`)) return real;
    }
    throw invalid(
      'outside-image-dirs',
      `${field} ${file} is outside vman's image directories (VMAN_IMAGE_DIRS: ${this.dirs.join(':')}); put the file in one of them, or add its folder to VMAN_IMAGE_DIRS`,
    );
  }

  /**
   * A base image as qemu-img sees it: its format must be the one the template
   * says, its size more than nothing, and every backing file it reaches inside
   * an image directory too.
   */
  async assertBaseImage(file: string, format: 'qcow2' | 'raw', opts: QemuImgOptions): Promise<void> {
    const chain = await imageInfoChain(file, opts).catch((err: unknown) => {
      throw invalid('invalid-image', `base_image_path ${file} is not an image qemu-img can read: ${(err as Error).message.split('\n')[0]}`);
    });
    const [top, ...backing] = chain;
    if (!top || top.format !== format) {
      throw invalid('image-format-mismatch', `base_image_path ${file} is a ${top?.format ?? 'unknown'} image, not ${format} as base_image_format says`);
    }
    if (!(top.virtualSizeBytes > 0)) throw invalid('invalid-image', `base_image_path ${file} has no size`);
    for (const b of backing) await this.assertInside('the backing file of base_image_path', b.filename);
  }
}
