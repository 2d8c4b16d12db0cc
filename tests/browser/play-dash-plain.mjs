#!/usr/bin/env node
// A plain dash.js viewer page, independent of play-dash.mjs: the page any
// third party would write. It loads dash.js 5 (dist/modern/umd) and does only
//
//   const player = dashjs.MediaPlayer().create();
//   player.initialize(video, url, true);
//
// with the library's default settings. `--live-delay S --catchup` is the one
// variant: it sets only `streaming.delay.liveDelay` and
// `streaming.liveCatchup.enabled: true`. `--debug` (diagnostic runs only) sets
// dash.js's log level to DEBUG and prints its log to stderr.
//
// It samples currentTime, buffer ahead, playback rate, decoded video frames,
// decoded audio bytes and `getCurrentLiveLatency()` every 250 ms, counts stalls (`waiting` events
// after the first `playing`), records every network request the page makes
// (from the browser, not from dash.js), and prints one JSON line.
//
//   node play-dash-plain.mjs --url http://127.0.0.1:8080/live/demo/manifest.mpd
//       [--seconds 20] [--live-delay S] [--catchup] [--muted] [--save-mpds DIR]
//       [--samples] [--debug] [--chromium PATH]
//
// Chromium is the system one, started with the plain headless flags only (no
// autoplay-policy switch, none of Playwright's defaults) and observed over CDP. `--muted` adds the `muted` attribute to the video
// element (a page that wants autoplay without a user gesture would).

import http from 'node:http';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { cliArgs, round, sleep } from './harness.mjs';

const require = createRequire(import.meta.url);

const SPEC = {
  url: 'string',
  seconds: 'number',
  'live-delay': 'number',
  catchup: 'boolean',
  muted: 'boolean',
  'save-mpds': 'string',
  samples: 'boolean',
  debug: 'boolean',
  chromium: 'string',
  help: 'boolean',
};

function usage() {
  return 'usage: node play-dash-plain.mjs --url URL [--seconds N] [--live-delay S] [--catchup] ' +
    '[--muted] [--save-mpds DIR] [--samples] [--debug] [--chromium PATH]';
}

// dashjs's package.json has an exports map without ./package.json: resolve
// its main entry and walk up to the package root.
function dashjsFile(rel) {
  let dir = path.dirname(require.resolve('dashjs'));
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return path.join(dir, rel);
}

function page(cfg) {
  const settings = {};
  if (cfg.liveDelay !== null) settings.streaming = { delay: { liveDelay: cfg.liveDelay } };
  if (cfg.catchup) {
    settings.streaming = settings.streaming || {};
    settings.streaming.liveCatchup = { enabled: true };
  }
  if (cfg.debug) settings.debug = { logLevel: 5 };
  const apply = Object.keys(settings).length
    ? `player.updateSettings(${JSON.stringify(settings)});`
    : '';
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>dash.js</title></head><body>
<video id="v"${cfg.muted ? ' muted' : ''}></video>
<script src="/dash.all.min.js"></script>
<script>
const video = document.getElementById('v');
const player = dashjs.MediaPlayer().create();
${apply}
player.initialize(video, ${JSON.stringify(cfg.url)}, true);
window.__player = player;
</script>
</body></html>`;
}

// Everything below observes the page; it sets nothing on the player. It is
// installed before any script of the page runs (an init script), so that a
// fast start is not missed: media events do not bubble, but capture-phase
// listeners on the document see them. Times are seconds since `wall0`
// (Unix ms), the same clock as the request log.
function observe(wall0) {
  const now = () => (Date.now() - wall0) / 1000;
  const S = (window.__obs = {
    firstPlaying: null, waiting: [], events: [], samples: [], errors: [], frames: 0, audioBytes: null,
  });
  for (const ev of ['playing', 'waiting', 'pause', 'seeking', 'seeked', 'stalled', 'ended', 'error']) {
    document.addEventListener(ev, (event) => {
      const video = event.target;
      if (!(video instanceof HTMLMediaElement) || video.id !== 'v') return;
      const e = { t: +now().toFixed(3), ev, ct: +video.currentTime.toFixed(3) };
      S.events.push(e);
      if (ev === 'playing' && S.firstPlaying === null) S.firstPlaying = e.t;
      if (ev === 'waiting' && S.firstPlaying !== null && !video.seeking) S.waiting.push(e);
    }, true);
  }
  const hook = () => {
    const p = window.__player;
    if (!p) return setTimeout(hook, 10);
    p.on('error', (e) => S.errors.push(JSON.stringify(e.error && (e.error.code !== undefined
      ? { code: e.error.code, message: String(e.error.message || '').slice(0, 200) } : String(e.error))).slice(0, 300)));
    p.on('playbackNotAllowed', () => S.errors.push('playbackNotAllowed'));
  };
  hook();
  setInterval(() => {
    const video = document.getElementById('v');
    if (!video) return;
    const p = window.__player;
    let ahead = 0;
    const b = video.buffered;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) <= video.currentTime + 0.1 && b.end(i) > video.currentTime) ahead = b.end(i) - video.currentTime;
    }
    let latency = null;
    try { latency = p ? p.getCurrentLiveLatency() : null; } catch (_) {}
    const ranges = [];
    for (let i = 0; i < b.length; i++) ranges.push([+b.start(i).toFixed(3), +b.end(i).toFixed(3)]);
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    S.frames = q ? q.totalVideoFrames - q.droppedVideoFrames : 0;
    S.audioBytes = video.webkitAudioDecodedByteCount ?? null;
    S.samples.push({
      t: +now().toFixed(3), ct: +video.currentTime.toFixed(3), ahead: +ahead.toFixed(3),
      rate: video.playbackRate, latency: Number.isFinite(latency) ? +latency.toFixed(3) : null,
      paused: video.paused, rs: video.readyState, buffered: ranges,
    });
  }, 250);
}

async function main() {
  const args = cliArgs(SPEC, usage);
  const seconds = args.seconds ?? 20;
  const cfg = {
    url: args.url,
    liveDelay: args['live-delay'] ?? null,
    catchup: !!args.catchup,
    muted: !!args.muted,
    debug: !!args.debug,
  };
  const lib = dashjsFile('dist/modern/umd/dash.all.min.js');
  const html = page(cfg);
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://127.0.0.1');
    if (u.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
    } else if (u.pathname === '/dash.all.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      fs.createReadStream(lib).pipe(res);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const pageUrl = `http://127.0.0.1:${server.address().port}/`;

  // Chromium as anyone would start it (only the plain headless flags; no
  // Playwright defaults such as --disable-background-timer-throttling or
  // --mute-audio), then attached to over CDP to observe it.
  const { chromium } = await import('playwright-core');
  const profile = await fsp.mkdtemp(path.join(os.tmpdir(), 'dash-plain-'));
  const exe = args.chromium || process.env.CHROMIUM || '/usr/bin/chromium';
  const proc = spawn(exe, ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${profile}`, '--remote-debugging-port=0', '--window-size=1280,720', 'about:blank'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  const wsUrl = await new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('chromium did not start')), 30_000);
    proc.stderr.on('data', (d) => {
      buf += d;
      const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    proc.on('exit', (c) => reject(new Error(`chromium exited (${c}): ${buf.slice(-500)}`)));
  });
  const browser = await chromium.connectOverCDP(wsUrl);
  const context = browser.contexts()[0];
  const pw = context.pages()[0] ?? (await context.newPage());
  const wall0 = Date.now();
  const t = () => round((Date.now() - wall0) / 1000);

  // Every request of the page, as the browser saw it.
  const requests = [];
  const byReq = new Map();
  let mpdCount = 0;
  if (args['save-mpds']) await fsp.mkdir(args['save-mpds'], { recursive: true });
  pw.on('request', (r) => {
    if (r.url() === pageUrl || r.url().endsWith('/dash.all.min.js')) return;
    const e = { url: r.url().replace(/^https?:\/\/[^/]+/, ''), start: t(), status: null, headers_at: null, end: null, bytes: null };
    byReq.set(r, e);
    requests.push(e);
  });
  pw.on('response', (resp) => {
    const e = byReq.get(resp.request());
    if (e) { e.status = resp.status(); e.headers_at = t(); }
  });
  pw.on('requestfinished', async (r) => {
    const e = byReq.get(r);
    if (!e) return;
    e.end = t();
    try {
      const s = await r.sizes();
      e.bytes = s.responseBodySize;
    } catch (_) {}
    if (args['save-mpds'] && /\.mpd(\?|$)/.test(r.url())) {
      try {
        const resp = await r.response();
        const body = await resp.body();
        const n = String(++mpdCount).padStart(3, '0');
        await fsp.writeFile(path.join(args['save-mpds'], `${n}-${e.start.toFixed(3)}.mpd`), body);
      } catch (_) {}
    }
  });
  pw.on('requestfailed', (r) => {
    const e = byReq.get(r);
    if (e) { e.end = t(); e.failed = r.failure() && r.failure().errorText; }
  });
  const consoleLines = [];
  pw.on('console', (m) => {
    if (args.debug) process.stderr.write(`[${t()}] ${m.text()}\n`);
    else if (m.type() === 'error' || m.type() === 'warning') consoleLines.push(m.text().slice(0, 300));
  });
  pw.on('pageerror', (e) => consoleLines.push('pageerror: ' + String(e).slice(0, 300)));

  await pw.addInitScript(`(${observe.toString()})(${wall0})`);
  await pw.goto(pageUrl);

  // Wait for the first `playing` (at most 30 s), then measure for `seconds`.
  const deadline = Date.now() + 30_000;
  let started = null;
  while (Date.now() < deadline) {
    started = await pw.evaluate('window.__obs.firstPlaying');
    if (started !== null) break;
    await sleep(100);
  }
  const startedAt = Date.now();
  const ct0 = await pw.evaluate('document.getElementById("v").currentTime');
  if (started !== null) await sleep(seconds * 1000);
  const obs = await pw.evaluate('window.__obs');
  const ct1 = await pw.evaluate('document.getElementById("v").currentTime');
  const videoHeight = await pw.evaluate('document.getElementById("v").videoHeight');
  await browser.close().catch(() => {});
  if (proc.exitCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    await Promise.race([exited, sleep(5000)]);
  }
  server.close();
  await fsp.rm(profile, { recursive: true, force: true }).catch(() => {});

  const inWindow = obs.samples.filter((s) => obs.firstPlaying !== null && s.t >= obs.firstPlaying);
  const lat = inWindow.map((s) => s.latency).filter((x) => x !== null);
  const out = {
    url: args.url,
    settings: { liveDelay: cfg.liveDelay, catchup: cfg.catchup, muted: cfg.muted },
    started: started !== null,
    startup_seconds: started,
    wall_seconds: round((Date.now() - startedAt) / 1000, 1),
    played_seconds: round(ct1 - ct0),
    // Played at least 90 % of the window with no player error (dash.js's `error` events are fatal).
    ok: started !== null && obs.errors.length === 0 && ct1 - ct0 >= 0.9 * seconds,
    frames_decoded: obs.frames,
    // The picture height shown at the end (which representation ABR settled on).
    video_height: videoHeight,
    audio_decoded_bytes: obs.audioBytes,
    stalls: obs.waiting.length,
    first_stall_at: obs.waiting.length ? round(obs.waiting[0].t - obs.firstPlaying) : null,
    latency_avg: lat.length ? round(lat.reduce((a, b) => a + b, 0) / lat.length) : null,
    latency_last: lat.length ? lat[lat.length - 1] : null,
    buffer_ahead_last: inWindow.length ? inWindow[inWindow.length - 1].ahead : null,
    rate_min: inWindow.length ? Math.min(...inWindow.map((s) => s.rate)) : null,
    rate_max: inWindow.length ? Math.max(...inWindow.map((s) => s.rate)) : null,
    errors: obs.errors.slice(0, 10),
    fatal_errors: obs.errors.slice(0, 10),
    console: consoleLines.slice(0, 10),
    request_count: requests.length,
    segment_requests: requests.filter((r) => /\.m4s(\?|$)/.test(r.url)).length,
    // The same segment URL asked for more than once.
    duplicate_segment_requests: (() => {
      const seen = new Map();
      for (const r of requests) if (/\.m4s(\?|$)/.test(r.url)) seen.set(r.url, (seen.get(r.url) || 0) + 1);
      return [...seen.entries()].filter(([, n]) => n > 1).map(([u]) => u);
    })(),
    http_errors: requests.filter((r) => r.status !== null && (r.status < 200 || r.status > 299)).length,
    events: obs.events.slice(0, 60),
    requests,
  };
  if (args.samples) out.samples = obs.samples;
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
