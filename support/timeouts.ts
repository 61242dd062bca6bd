// How long a step may take. The test guest boots in seconds, so a step that
// takes a minute is broken. A Debian guest under TCG takes half a minute on a
// quiet machine and two on a busy one (CI measured 56 s to its network with
// another worker booting guests beside it); steps that wait on such a guest
// (boot, shutdown, SSH, work inside it) get this longer bound. vman's own
// deadlines (VMAN_BOOT_TIMEOUT and the stop deadlines, set per scenario by the
// @real-guest hook) end those steps first, with vman's account of what it saw.
export const STEP_TIMEOUT_MS = 60_000;
export const GUEST_STEP = { timeout: 8 * 60_000 } as const;

/** vman's deadlines in a @real-guest scenario: long enough for a busy day, still finite. */
export const REAL_GUEST_VMAN_ENV: Record<string, string> = {
  VMAN_BOOT_TIMEOUT: '300',
  VMAN_STOP_AGENT_TIMEOUT: '120',
  VMAN_STOP_ACPI_TIMEOUT: '120',
};
