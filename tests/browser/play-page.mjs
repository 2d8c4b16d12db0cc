#!/usr/bin/env node
// Open the origin's own player page (player/index.html, served at
// /live/{name}/ or /t/{token}/live/{name}/) in headless Chromium and report
// what it showed, as one JSON line on stdout.
//
//   node play-page.mjs --url 'http://127.0.0.1:8080/live/demo/?engine=dash' \
//       [--seconds 10] [--timeout 30] [--screenshot /tmp/shot.png] \
//       [--chromium /usr/bin/chromium] [--verbose]
//
// --url         the page URL; the engine is the page's own
//               `?engine=hls|dash|webrtc` (default hls; webrtc: WHEP, the
//               page's `?rendition=` passed on). No page server of ours is
//               involved: the origin serves the page on http://127.0.0.1,
//               which EME (ClearKey) needs.
// --seconds     seconds of playback to sample once the page says it is
//               playing (default 10)
// --timeout     seconds to wait for the page to start playing (default 30);
//               a page that reports a fatal error or a token problem ends the
//               wait at once
// --screenshot  save a PNG of the page just before stopping
//
// The page publishes `window.estuaryStatus` (engine, libraryVersion, state,
// playing, currentTime, latency, targetLatency, rendition, bufferAhead,
// stalls, totalFrames, droppedFrames, errors, httpStatus, needsToken, and
// with engine=webrtc `webrtc`: the receiver's getStats()), updated every
// 500 ms; this script only reads it.
//
// Output: ok (played_seconds >= 0.8 * seconds, the page did not end in its
// `error` state and threw no uncaught exception), url, engine,
// libraryVersion, state, played_seconds (currentTime advance over the
// sampling window), latency (last), latency_samples_max, target_latency,
// rendition (last), renditions_seen (distinct video heights), stalls,
// total_frames, dropped_frames, errors (the page's own list, then uncaught
// exceptions and console errors), fatal_errors, http_errors ([{url, status,
// count}] for responses >= 400 and failed requests as status 0 with their
// error, aborted ones left out), needs_token, http_status (the page's first
// manifest check), message (the page's banner text), page_text (the status
// panel's innerText), webrtc (engine=webrtc, last: {connectionState,
// bufferMs (jitter buffer delay), rttMs, framesDecoded, framesDropped,
// packetsLost, nackCount, freezeCount, pliCount}; else null).
//
// Exit status: 0 when a result was measured (check `ok`), 1 when the
// browser could not start or nothing finished within timeout + seconds + 30 s.

import { cliArgs, launchChromium, round, sleep } from './harness.mjs';

const SPEC = {
  url: 'string',
  seconds: 'number',
  timeout: 'number',
  screenshot: 'string',
  chromium: 'string',
  verbose: 'boolean',
  help: 'boolean',
};

function usage() {
  return 'usage: node play-page.mjs --url URL [--seconds N] [--timeout S] [--screenshot FILE.png] ' +
    '[--chromium PATH] [--verbose]';
}

const MAX_LIST = 50;

// Read the page's status (and the panel's text) in one round trip.
function readStatus() {
  const s = window.estuaryStatus;
  if (!s) return null;
  const panel = document.getElementById('status');
  const msg = document.getElementById('msg');
  return {
    ...s,
    rendition: s.rendition ? { ...s.rendition } : null,
    webrtc: s.webrtc ? { ...s.webrtc } : null,
    errors: [...s.errors],
    pageText: panel ? panel.innerText : null,
    message: msg && !msg.hidden ? msg.innerText : null,
  };
}

async function main() {
  const args = cliArgs(SPEC, usage);
  const seconds = args.seconds ?? 10;
  const timeout = args.timeout ?? 30;
  if (!(seconds > 0) || !(timeout > 0)) {
    console.error(`--seconds and --timeout must be > 0\n${usage()}`);
    process.exit(1);
  }
  let target;
  try {
    target = new URL(args.url);
  } catch (e) {
    console.error(`--url: ${e.message}\n${usage()}`);
    process.exit(1);
  }
  const log = (...m) => { if (args.verbose) console.error('[play-page]', ...m); };

  const started = Date.now();
  const pageErrors = [];     // uncaught exceptions in the page
  const consoleErrors = [];
  const httpErrors = [];
  let result = {
    ok: false,
    url: target.href,
    engine: null,
    libraryVersion: null,
    state: null,
    played_seconds: 0,
    latency: null,
    latency_samples_max: null,
    target_latency: null,
    rendition: null,
    renditions_seen: [],
    stalls: 0,
    total_frames: null,
    dropped_frames: null,
    errors: [],
    fatal_errors: [],
    http_errors: httpErrors,
    needs_token: false,
    http_status: null,
    message: null,
    page_text: null,
    webrtc: null,
  };
  let printed = false;
  const finish = (extra, code) => {
    if (!printed) {
      printed = true;
      process.stdout.write(JSON.stringify({ ...result, ...extra }) + '\n');
    }
    return code;
  };

  let browser;
  const cleanup = async () => { if (browser) await browser.close(); };
  const hardSeconds = timeout + seconds + 30;
  const hard = setTimeout(async () => {
    finish({ ok: false, timeout: true, harness_error: `no result within ${hardSeconds} s` }, 1);
    await Promise.race([cleanup(), sleep(5000)]);
    process.exit(1);
  }, hardSeconds * 1000);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => {
      await Promise.race([cleanup(), sleep(5000)]);
      process.exit(1);
    });
  }

  try {
    browser = await launchChromium({ executablePath: args.chromium });
  } catch (e) {
    clearTimeout(hard);
    console.error('[play-page] could not start the browser:', e && e.stack ? e.stack : e);
    process.exit(finish({ harness_error: `browser: ${String(e && e.message ? e.message : e)}` }, 1));
  }

  try {
    const { page } = browser;
    const push = (list, x) => { if (list.length < MAX_LIST) list.push(x); };
    page.on('console', (m) => {
      log(`console.${m.type()}:`, m.text());
      // Failed loads are reported once, in http_errors.
      if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) push(consoleErrors, `console: ${m.text().slice(0, 300)}`);
    });
    page.on('pageerror', (e) => { log('pageerror:', e.message); push(pageErrors, `pageerror: ${String(e.message).slice(0, 300)}`); });
    // One entry per (url, status), with a count: players retry the same URL.
    const httpError = (url, status, error) => {
      const e = httpErrors.find((x) => x.url === url && x.status === status);
      if (e) e.count++;
      else push(httpErrors, error ? { url, status, error, count: 1 } : { url, status, count: 1 });
    };
    page.on('response', (r) => {
      if (r.status() >= 400) { log('http', r.status(), r.url()); httpError(r.url(), r.status()); }
    });
    page.on('requestfailed', (r) => {
      const why = (r.failure() && r.failure().errorText) || '';
      // Aborted loads are normal for players; an error status is already in a response.
      if (/ERR_ABORTED|ERR_HTTP_RESPONSE_CODE_FAILURE/.test(why)) return;
      log('request failed', why, r.url());
      httpError(r.url(), 0, why);
    });

    const t0 = Date.now();
    let navError = null;
    await page.goto(target.href, { waitUntil: 'domcontentloaded', timeout: timeout * 1000 })
      .then((resp) => { if (resp && resp.status() >= 400) navError = `page answered HTTP ${resp.status()}`; })
      .catch((e) => { navError = `navigation: ${String(e.message).split('\n')[0]}`; });

    // Wait for `playing`, a fatal state or the timeout.
    let S = null;
    let outcome = 'timeout';
    while (!navError) {
      S = await page.evaluate(readStatus).catch(() => null);
      if (S && S.playing) { outcome = 'playing'; break; }
      if (S && (S.state === 'error' || S.needsToken)) { outcome = 'error'; break; }
      if (Date.now() - t0 >= timeout * 1000) break;
      await sleep(250);
    }
    const startupSeconds = outcome === 'playing' ? (Date.now() - t0) / 1000 : null;

    // Sample for --seconds.
    let played = 0;
    let latencyMax = null;
    const heights = new Set();
    const seen = (x) => { if (x && x.rendition && x.rendition.height) heights.add(x.rendition.height); };
    if (outcome === 'playing') {
      seen(S);
      const ct0 = S.currentTime;
      const end = Date.now() + seconds * 1000;
      while (Date.now() < end) {
        await sleep(Math.min(500, Math.max(0, end - Date.now())));
        const x = await page.evaluate(readStatus).catch(() => null);
        if (!x) continue;
        S = x;
        seen(S);
        if (S.latency !== null && (latencyMax === null || S.latency > latencyMax)) latencyMax = S.latency;
        if (S.state === 'error') break;
      }
      played = S.currentTime - ct0;
    }
    if (args.screenshot) {
      await page.screenshot({ path: args.screenshot }).catch((e) => log('screenshot failed:', e.message));
    }

    const fatal = [...pageErrors];
    if (navError) fatal.unshift(navError);
    if (S && S.state === 'error') {
      // The page notes the error that stopped playback as "<t>s fatal: <why>".
      const f = S.errors.filter((e) => e.includes(' fatal: '));
      fatal.push(...(f.length ? f : ['page state: error']));
    }
    result = {
      ...result,
      ok: outcome === 'playing' && fatal.length === 0 && played >= 0.8 * seconds,
      engine: S ? S.engine : null,
      libraryVersion: S ? S.libraryVersion : null,
      state: S ? S.state : null,
      played_seconds: round(played),
      startup_seconds: round(startupSeconds),
      latency: S ? round(S.latency) : null,
      latency_samples_max: round(latencyMax),
      target_latency: S ? round(S.targetLatency) : null,
      rendition: S ? S.rendition : null,
      renditions_seen: [...heights].sort((a, b) => a - b),
      stalls: S ? S.stalls : 0,
      buffer_ahead: S ? round(S.bufferAhead) : null,
      total_frames: S ? S.totalFrames : null,
      dropped_frames: S ? S.droppedFrames : null,
      errors: [...(S ? S.errors : []), ...pageErrors, ...consoleErrors].slice(0, MAX_LIST),
      fatal_errors: fatal,
      needs_token: S ? !!S.needsToken : false,
      http_status: S ? S.httpStatus : null,
      message: S ? S.message : null,
      page_text: S ? S.pageText : null,
      webrtc: S && S.webrtc ? S.webrtc : null,
      harness_seconds: round((Date.now() - started) / 1000, 1),
    };
    if (outcome === 'timeout' && !navError) result.timeout = true;
    clearTimeout(hard);
    await Promise.race([cleanup(), sleep(10_000)]);
    process.exit(finish({}, 0));
  } catch (e) {
    clearTimeout(hard);
    console.error('[play-page] harness failure:', e && e.stack ? e.stack : e);
    finish({ ok: false, harness_error: String(e && e.message ? e.message : e) }, 1);
    await Promise.race([cleanup(), sleep(5000)]);
    process.exit(1);
  }
}

main();
