// Shared pieces of the browser playback harness: argument parsing, a tiny
// static HTTP server on 127.0.0.1 (pages and player libraries from
// node_modules, plus an optional same-origin pass-through to the stream),
// and a headless Debian Chromium driven by playwright-core.
//
// Chromium is never downloaded: we use the system binary (/usr/bin/chromium
// by default, or $CHROMIUM).

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
export const HERE = path.dirname(fileURLToPath(import.meta.url));

/**
 * Resolve a file shipped inside an npm package installed in tests/browser. A package whose
 * "exports" map leaves out ./package.json (dashjs) is found from its main entry, walking up to the
 * package.json that names it.
 */
export function packageFile(pkg, rel) {
  try {
    return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), rel);
  } catch (e) {
    if (e.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw e;
  }
  let dir = path.dirname(require.resolve(pkg));
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj) && JSON.parse(fs.readFileSync(pj, 'utf8')).name === pkg) return path.join(dir, rel);
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot find the root of package ${pkg}`);
    dir = up;
  }
}

/**
 * Page-side source of `readCode(video, canvas)`: the wall clock (Unix ms mod 2^24) that
 * testkit::ffmpeg::clock_code_filter draws into the top left of each frame as 24 black/white blocks
 * (bit k: block k, 24x24 px of a 640 px wide picture, scaled with the picture), read from the frame
 * the video shows; null when a block is neither black nor white. Pages interpolate it into their
 * script.
 */
export const READ_CODE_JS = `
function readCode(video, canvas) {
  const bits = 24;
  const block = video.videoWidth * 24 / 640;
  const w = Math.ceil(block * bits), h = Math.ceil(block);
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
  const px = ctx.getImageData(0, 0, w, h).data;
  let v = 0;
  for (let k = 0; k < bits; k++) {
    const x = Math.floor(k * block + block / 2), y = Math.floor(block / 2);
    const i = (y * w + x) * 4;
    const lum = (px[i] + px[i + 1] + px[i + 2]) / 3;
    if (lum > 160) v += 2 ** k;
    else if (lum > 96) return null;
  }
  return v;
}`;

/**
 * Parse `--name value`, `--name=value` and bare `--flag` arguments.
 * `spec` maps option names to 'string' | 'number' | 'boolean'.
 */
export function parseArgs(argv, spec) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument: ${a}`);
    let [name, value] = a.slice(2).split(/=(.*)/s, 2);
    const kind = spec[name];
    if (!kind) throw new Error(`unknown option --${name}`);
    if (kind === 'boolean') {
      out[name] = value === undefined ? true : !/^(0|false|no)$/i.test(value);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new Error(`--${name} needs a value`);
      value = argv[++i];
    }
    if (kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${value}`);
      out[name] = n;
    } else {
      out[name] = value;
    }
  }
  return out;
}

/**
 * The command line parsed with `spec` (see parseArgs). A bad option prints the
 * error and `usage()` and exits 1; `--help` prints `usage()` and exits 0; so
 * does a missing option named in `required` (exit 1).
 */
export function cliArgs(spec, usage, required = ['url']) {
  let args;
  try {
    args = parseArgs(process.argv.slice(2), spec);
  } catch (e) {
    console.error(`${e.message}\n${usage()}`);
    process.exit(1);
  }
  if (args.help || required.some((k) => args[k] === undefined)) {
    console.error(usage());
    process.exit(args.help ? 0 : 1);
  }
  return args;
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.css': 'text/css; charset=utf-8',
};

/**
 * Start an HTTP server on 127.0.0.1 with an ephemeral port.
 *  - `pages`:  { '/path': htmlString }
 *  - `files`:  { '/path': absoluteFilePath }
 *  - `corruptKeys`: through the upstream pass-through, answer `*.key` requests
 *    with every byte of the key flipped (a wrong key, for failure tests).
 *  - `upstream`: optional origin URL ('http://127.0.0.1:8080'); requests to
 *    /upstream/<path> are forwarded there as-is (streamed, so blocking
 *    playlist reloads and chunked parts keep their timing). Use it for
 *    servers that send no CORS headers.
 * Resolves to { server, origin }.
 */
export function startServer({ pages = {}, files = {}, upstream = null, corruptKeys = false }) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    // Pages first: one may sit under /upstream/ (in a stream's directory).
    if (Object.hasOwn(pages, url.pathname)) {
      res.writeHead(200, { 'content-type': TYPES['.html'], 'cache-control': 'no-store' });
      res.end(pages[url.pathname]);
      return;
    }
    if (upstream && url.pathname.startsWith('/upstream/')) {
      const target = new URL(url.pathname.slice('/upstream'.length) + url.search, upstream);
      const headers = { ...req.headers, host: target.host };
      const up = http.request(target, { method: req.method, headers }, (ur) => {
        if (corruptKeys && url.pathname.endsWith('.key')) {
          // A wrong key of the right size: every byte flipped.
          const parts = [];
          ur.on('data', (c) => parts.push(c));
          ur.on('end', () => {
            const body = Buffer.concat(parts).map((b) => b ^ 0xff);
            const h = { ...ur.headers, 'content-length': String(body.length) };
            res.writeHead(ur.statusCode ?? 502, h);
            res.end(body);
          });
          return;
        }
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', (e) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`upstream error: ${e.message}`);
      });
      req.pipe(up);
      return;
    }
    if (Object.hasOwn(files, url.pathname)) {
      const file = files[url.pathname];
      const type = TYPES[path.extname(file)] ?? 'application/octet-stream';
      const stream = fs.createReadStream(file);
      stream.on('open', () => res.writeHead(200, { 'content-type': type }));
      stream.on('error', () => {
        if (!res.headersSent) res.writeHead(404);
        res.end();
      });
      stream.pipe(res);
      return;
    }
    res.writeHead(url.pathname === '/favicon.ico' ? 204 : 404);
    res.end();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({ server, origin: `http://127.0.0.1:${port}` });
    });
  });
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * Launch system Chromium with a fresh, throw-away profile directory (and
 * `extraArgs` after the harness's own flags).
 * Resolves to { context, page, close }.
 */
export async function launchChromium({ executablePath, extraArgs = [] } = {}) {
  const { chromium } = await import('playwright-core');
  const exe = executablePath || process.env.CHROMIUM || '/usr/bin/chromium';
  if (!fs.existsSync(exe)) throw new Error(`chromium not found at ${exe} (run scripts/setup.sh)`);
  const profile = await fsp.mkdtemp(path.join(os.tmpdir(), 'estuary-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: exe,
      headless: true,
      args: [...CHROMIUM_ARGS, ...extraArgs],
      viewport: { width: 1280, height: 720 },
      timeout: 30_000,
    });
  } catch (e) {
    await fsp.rm(profile, { recursive: true, force: true });
    throw e;
  }
  const page = context.pages()[0] ?? (await context.newPage());
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await Promise.race([context.close().catch(() => {}), sleep(10_000)]);
    await fsp.rm(profile, { recursive: true, force: true }).catch(() => {});
  };
  return { context, page, close };
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Round to `d` decimals, keeping null for missing values. */
export function round(x, d = 3) {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const k = 10 ** d;
  return Math.round(x * k) / k;
}

/**
 * Serve `page` at `/` with hls.js and dash.js at `/lib/hls.min.js` and `/lib/dash.all.min.js`,
 * open it in a fresh Chromium, run `body(page, origin, result)` (which fills `result`), then print
 * `result` as one JSON line and exit 0. An exception is reported as `result.error` (with `ok`
 * left false); the browser and the server are always closed.
 */
export async function runPlayerPage({ page, chromium, result }, body) {
  const { server, origin } = await startServer({
    pages: { '/': page },
    files: {
      '/lib/hls.min.js': packageFile('hls.js', 'dist/hls.min.js'),
      '/lib/dash.all.min.js': packageFile('dashjs', 'dist/modern/umd/dash.all.min.js'),
    },
  });
  const browser = await launchChromium({ executablePath: chromium });
  try {
    await body(browser.page, origin, result);
  } catch (e) {
    result.error = String(e);
  } finally {
    await browser.close();
    server.close();
  }
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}
