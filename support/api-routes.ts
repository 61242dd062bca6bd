// Every route vman serves, as the suite knows it: the 401 matrix is built from
// this list, not from vman's own OpenAPI document. The document is checked
// against it both ways, so a route vman adds or drops fails until the suite
// has been told (and a route the document forgets is caught too).
export const API_ROUTES: ReadonlyArray<{ method: 'GET' | 'POST' | 'DELETE'; route: string }> = [
  { method: 'GET', route: '/health' },
  { method: 'GET', route: '/ready' },
  { method: 'GET', route: '/metrics' },
  { method: 'GET', route: '/api/v1/host' },
  { method: 'GET', route: '/api/v1/templates' },
  { method: 'POST', route: '/api/v1/templates' },
  { method: 'GET', route: '/api/v1/templates/{id}' },
  { method: 'DELETE', route: '/api/v1/templates/{id}' },
  { method: 'GET', route: '/api/v1/vms' },
  { method: 'POST', route: '/api/v1/vms' },
  { method: 'GET', route: '/api/v1/vms/{id}' },
  { method: 'DELETE', route: '/api/v1/vms/{id}' },
  { method: 'POST', route: '/api/v1/vms/{id}/start' },
  { method: 'POST', route: '/api/v1/vms/{id}/stop' },
  { method: 'POST', route: '/api/v1/vms/{id}/restart' },
  { method: 'GET', route: '/api/v1/vms/{id}/console' },
  { method: 'POST', route: '/api/v1/vms/{id}/snapshots' },
  { method: 'GET', route: '/api/v1/vms/{id}/snapshots' },
  { method: 'GET', route: '/api/v1/vms/{id}/snapshots/{name}' },
  { method: 'DELETE', route: '/api/v1/vms/{id}/snapshots/{name}' },
  { method: 'POST', route: '/api/v1/vms/{id}/snapshots/{name}/restore' },
  { method: 'GET', route: '/api/v1/disks' },
  { method: 'POST', route: '/api/v1/disks' },
  { method: 'GET', route: '/api/v1/disks/{id}' },
  { method: 'DELETE', route: '/api/v1/disks/{id}' },
  { method: 'POST', route: '/api/v1/disks/{id}/attach' },
  { method: 'POST', route: '/api/v1/disks/{id}/detach' },
  { method: 'GET', route: '/api/v1/network' },
  { method: 'POST', route: '/api/v1/observer/check' },
  { method: 'GET', route: '/api/v1/observer/report' },
  { method: 'POST', route: '/api/v1/observer/reconcile' },
  { method: 'GET', route: '/api/v1/events' },
  // Not listed in the document it is.
  { method: 'GET', route: '/api/v1/openapi.json' },
];

/** Where the suite's list and vman's OpenAPI document differ, in words. */
export function routeListDifferences(documented: ReadonlyArray<{ method: string; route: string }>): string[] {
  const key = (r: { method: string; route: string }): string => `${r.method.toUpperCase()} ${r.route}`;
  const ours = new Set(API_ROUTES.filter((r) => r.route !== '/api/v1/openapi.json').map(key));
  const theirs = new Set(documented.map(key));
  return [
    ...[...theirs].filter((r) => !ours.has(r)).map((r) => `vman documents ${r}, which the suite's list (support/api-routes.ts) does not have`),
    ...[...ours].filter((r) => !theirs.has(r)).map((r) => `the suite's list has ${r}, which vman's OpenAPI document does not`),
  ];
}
