// The names vman's contract gives a disk in QEMU, written down once for the
// suite's readers (the coherence check, the crash moments, the observer and
// disk steps) so that none of them imports another for it.

/** A data disk: the device `disk-<id>`, the nodes `drive-<id>` (format) and `file-<id>` (file). */
export function blockNamesOf(diskId: string): { device: string; nodes: string[] } {
  return { device: `disk-${diskId}`, nodes: [`drive-${diskId}`, `file-${diskId}`] };
}
