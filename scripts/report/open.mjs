// `npm run report:open`: serves the site of the last run (reports/site/, made
// by `npm run report`) on 127.0.0.1 and prints its address; Ctrl-C stops it.
// Every page of the site also opens from disk; this is for those who prefer
// an address, or a browser that is stricter about file:// than Chromium.
//   node scripts/report/open.mjs [--dir reports/site] [--port 0]
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.jsonl': 'application/jsonl', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8', '.xml': 'application/xml', '.woff2': 'font/woff2',
};

/** The file a request path names inside `root`, or undefined when it would leave it. */
export function fileFor(root, urlPath) {
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath.split('?')[0]);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const file = path.resolve(root, `.${path.posix.normalize(`/${decoded}`)}`);
  return file === root || file.startsWith(`${root}${path.sep}`) ? file : undefined;
}

/** A static server of `dir` on 127.0.0.1; resolves with it once listening. */
export function serveSite(dir, port = 0) {
  const root = path.resolve(dir);
  const server = http.createServer(async (req, res) => {
    const send = (status, text) => res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' }).end(`${text}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'only GET and HEAD');
    let file = fileFor(root, req.url ?? '/');
    if (!file) return send(400, 'not a path inside the site');
    let info = await stat(file).catch(() => undefined);
    if (info?.isDirectory()) {
      file = path.join(file, 'index.html');
      info = await stat(file).catch(() => undefined);
    }
    if (!info?.isFile()) return send(404, `not in the site: ${req.url}`);
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'content-length': info.size, 'cache-control': 'no-cache' });
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

async function main() {
  const { values } = parseArgs({ options: { dir: { type: 'string', default: path.join('reports', 'site') }, port: { type: 'string', default: process.env.VMAN_REPORT_PORT ?? '0' } } });
  const index = await stat(path.join(values.dir, 'index.html')).catch(() => undefined);
  if (!index) {
    console.error(`report:open: ${path.join(values.dir, 'index.html')} is missing: run the suite, then npm run report`);
    process.exit(2);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`report:open: --port must be a port number, not ${JSON.stringify(values.port)}`);
    process.exit(2);
  }
  const server = await serveSite(values.dir, port);
  console.log(`report:open: the site of the last run is at http://127.0.0.1:${server.address().port}/ (Ctrl-C stops)`);
  for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
