#!/usr/bin/env node
// Play an HLS stream with hls.js in headless Chromium and report what a
// viewer would have seen, as one JSON line on stdout.
//
//   node play-hls.mjs --url http://127.0.0.1:8080/live/demo/index.m3u8 \
//       [--seconds 20] [--low-latency] [--proxy] [--screenshot /tmp/shot.png] \
//       [--switch-every 4] [--samples] [--chromium /usr/bin/chromium] [--verbose]
//
// --seconds      seconds of playback to measure, counted from the first
//                `playing` event (default 20)
// --low-latency  hls.js lowLatencyMode: true (LL-HLS parts, blocking reload);
//                without it lowLatencyMode is false (plain HLS behaviour)
// --corrupt-keys like --proxy, but every AES-128 key (*.key) the page loads
//                has all its bytes flipped: a player given a wrong key
// --proxy        load the stream through the harness's own server
//                (same origin as the page) for servers that send no CORS
//                headers; by default the page fetches --url directly
// --screenshot   save a PNG of the page just before stopping
// --switch-every after playback starts, every SECONDS force the next quality
//                level round-robin (hls.currentLevel = (current + 1) % n,
//                skipping levels the browser cannot play); the report's
//                level_switches / levels_played / switch_requests show
//                what happened
// --samples      include every 500 ms sample in the JSON output
// --trace FILE   write hls.js's debug log and its fragment/part/buffer events
//                (with the audio and video SourceBuffer ranges) to FILE, one
//                line each, for diagnosing stalls
//
// Exit status: 0 when a result was measured (check `ok` in the JSON),
// 1 on harness failure or when nothing finished within seconds + 40 s.

import { cliArgs, launchChromium, packageFile, round, sleep, startServer } from './harness.mjs';

const SPEC = {
  url: 'string',
  seconds: 'number',
  'low-latency': 'boolean',
  proxy: 'boolean',
  'corrupt-keys': 'boolean',
  screenshot: 'string',
  'switch-every': 'number',
  samples: 'boolean',
  trace: 'string',
  chromium: 'string',
  verbose: 'boolean',
  help: 'boolean',
};

function usage() {
  return 'usage: node play-hls.mjs --url URL [--seconds N] [--low-latency] [--proxy] ' +
    '[--screenshot FILE.png] [--switch-every SECONDS] [--samples] [--chromium PATH] [--verbose]';
}

// The page. All measuring happens in the page so sampling is not delayed by
// the DevTools round trip; node only polls `window.__estuary`.
function pageHtml(cfg) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>estuary hls.js check</title>
<style>html,body{margin:0;background:#000}video{width:100vw;height:100vh;display:block}</style>
</head><body>
<video id="v" muted playsinline autoplay></video>
<script src="/lib/hls.min.js"></script>
<script>
(() => {
  const cfg = ${JSON.stringify(cfg)};
  const video = document.getElementById('v');
  const t0 = performance.now();
  const now = window.__estuaryNow = () => (performance.now() - t0) / 1000;
  const S = window.__estuary = {
    hlsVersion: (window.Hls && Hls.version) || null,
    supported: !!(window.Hls && Hls.isSupported()),
    firstPlayingAt: null, startCurrentTime: null,
    stalled: false, stallStartedAt: null, stallSeconds: 0, stalls: 0,
    waitingEvents: 0, bufferStalledErrors: 0, seeks: 0,
    errors: [], fatal: [], errorCount: 0, samples: [], levels: [],
    mediaError: null, lastCurrentTime: 0,
    // Quality switching. levelSwitches: every hls.js LEVEL_SWITCHED (the
    // level of the fragment at the playhead changed; the first one is the
    // starting level). levelPlayed: media seconds played per level index.
    levelSwitches: [], levelPlayed: {}, switchRequests: 0,
    accountTime: null, accountWall: null,
  };
  const playingStarted = () => S.firstPlayingAt !== null;
  function startStall(why) {
    if (!playingStarted() || S.stalled) return;
    S.stalled = true; S.stallStartedAt = now(); S.stalls++;
    S.lastStallCause = why;
  }
  function endStall() {
    if (!S.stalled) return;
    S.stalled = false; S.stallSeconds += now() - S.stallStartedAt; S.stallStartedAt = null;
  }
  function pushError(e) {
    S.errorCount++;
    if (S.errors.length < 50) S.errors.push(e);
    if (e.fatal) S.fatal.push(e);
  }
  video.addEventListener('playing', () => {
    if (!playingStarted()) {
      S.firstPlayingAt = now(); S.startCurrentTime = video.currentTime;
      S.accountTime = video.currentTime; S.accountWall = now();
      if (cfg.switchEvery > 0) setInterval(forceNextLevel, cfg.switchEvery * 1000);
    }
    endStall();
  });
  video.addEventListener('waiting', () => {
    if (video.seeking) return;            // a seek is not a stall
    if (playingStarted()) S.waitingEvents++;
    startStall('waiting');
  });
  video.addEventListener('seeking', () => { if (playingStarted()) S.seeks++; });
  video.addEventListener('error', () => {
    const me = video.error;
    S.mediaError = me ? { code: me.code, message: me.message } : { code: null, message: 'unknown' };
    pushError({ t: round(now()), type: 'mediaElementError', details: S.mediaError.message || String(S.mediaError.code), fatal: true });
  });
  function round(x) { return Math.round(x * 1000) / 1000; }

  if (!S.supported) {
    pushError({ t: 0, type: 'harness', details: 'MediaSource/hls.js not supported in this browser', fatal: true });
    return;
  }
  // --trace: hls.js's own debug log and its loading/buffering events.
  const trace = window.__estuaryTrace = [];
  const tr = (line) => { if (trace.length < 50000) trace.push(round(now()).toFixed(3) + ' ' + line); };
  const logger = cfg.trace ? {
    trace: () => {}, debug: (...a) => tr('debug ' + a.join(' ')), log: (...a) => tr('log ' + a.join(' ')),
    info: (...a) => tr('info ' + a.join(' ')), warn: (...a) => tr('warn ' + a.join(' ')),
    error: (...a) => tr('error ' + a.join(' ')),
  } : false;
  const hls = window.__hls = new Hls({
    lowLatencyMode: cfg.lowLatency,
    enableWorker: true,
    backBufferLength: 30,
    debug: logger,
  });
  if (cfg.trace) {
    const ranges = (tr) => { const o = []; if (tr) for (let i = 0; i < tr.length; i++) o.push(tr.start(i).toFixed(3) + '-' + tr.end(i).toFixed(3)); return o.join(','); };
    const fragName = (d) => { const f = d.frag || {}; const p = d.part; return f.type + ' L' + f.level + ' sn' + f.sn + (p ? ' p' + p.index + ' [' + p.start.toFixed(3) + '+' + p.duration.toFixed(3) + ']' : ' [' + (f.start||0).toFixed(3) + '+' + (f.duration||0).toFixed(3) + ']'); };
    hls.on(Hls.Events.FRAG_LOADING, (_e, d) => tr('EV loading ' + fragName(d)));
    hls.on(Hls.Events.FRAG_LOADED, (_e, d) => tr('EV loaded ' + fragName(d)));
    hls.on(Hls.Events.FRAG_BUFFERED, (_e, d) => tr('EV buffered ' + fragName(d)));
    hls.on(Hls.Events.BUFFER_APPENDED, (_e, d) => tr('EV appended ' + d.type + ' ' + fragName(d) + ' video=' + ranges(d.timeRanges && d.timeRanges.video) + ' audio=' + ranges(d.timeRanges && d.timeRanges.audio) + ' audiovideo=' + ranges(d.timeRanges && d.timeRanges.audiovideo) + ' media=' + ranges(video.buffered) + ' ct=' + video.currentTime.toFixed(3)));
    // The audio stream controller's loading decisions (logged when they change).
    const asc = hls.audioStreamController;
    if (asc) {
      const last = {};
      const desc = (f) => f ? (f.sn + (f.fragment ? ' p' + f.index : '') + ' [' + (f.start||0).toFixed(3) + '+' + (f.duration||0).toFixed(3) + ']') : String(f);
      const wrap = (name, fmt) => {
        const orig = asc[name].bind(asc);
        asc[name] = (...a) => {
          const r = orig(...a);
          const line = fmt(a, r);
          if (last[name] !== line) { last[name] = line; tr('ASC ' + name + ' ' + line); }
          return r;
        };
      };
      wrap('getNextFragment', (a, r) => 'pos=' + (+a[0]).toFixed(3) + ' -> ' + desc(r));
      wrap('isLoopLoading', (a, r) => desc(a[0]) + ' target=' + (+a[1]).toFixed(3) + ' nextLoadPosition=' + (+asc.nextLoadPosition).toFixed(3) + ' -> ' + r);
      wrap('exceedsMaxBuffer', (a, r) => desc(a[2]) + ' -> ' + r);
      wrap('getFwdBufferInfo', (a, r) => r ? ('len=' + r.len.toFixed(3) + ' end=' + r.end.toFixed(3) + ' nextStart=' + r.nextStart) : String(r));
      wrap('loadFragment', (a, r) => desc(a[0]) + ' target=' + a[2]);
    }
    video.addEventListener('waiting', () => tr('EV waiting ct=' + video.currentTime.toFixed(3) + ' media=' + ranges(video.buffered)));
    video.addEventListener('playing', () => tr('EV playing ct=' + video.currentTime.toFixed(3)));
    video.addEventListener('seeking', () => tr('EV seeking ct=' + video.currentTime.toFixed(3)));
  }
  hls.on(Hls.Events.ERROR, (_ev, d) => {
    if (d.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) {
      S.bufferStalledErrors++;
      startStall('bufferStalledError');
    }
    const e = { t: round(now()), type: d.type, details: d.details, fatal: !!d.fatal };
    if (d.response && d.response.code !== undefined) e.http_status = d.response.code;
    if (d.context && d.context.url) e.url = d.context.url;
    else if (d.frag && d.frag.url) e.url = d.frag.url;
    if (d.reason) e.reason = String(d.reason);
    if (d.error && d.error.message) e.message = String(d.error.message).slice(0, 300);
    pushError(e);
  });
  // Levels are read again at every sample: hls.js fills in codecs it learns
  // from the media when the playlist did not declare them.
  const readLevels = () => { S.levels = (hls.levels || []).map(l => ({
      height: l.height || null, width: l.width || null, bitrate: l.bitrate || null,
      codecs: (l.attrs && l.attrs.CODECS) || [l.videoCodec, l.audioCodec].filter(Boolean).join(',') || null,
    })); };
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    readLevels();
    video.play().catch(err => pushError({ t: round(now()), type: 'play', details: String(err), fatal: false }));
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_ev, d) => {
    const l = (hls.levels || [])[d.level];
    S.levelSwitches.push({ t: round(now()), level: d.level, height: (l && l.height) || null });
    if (S.levelSwitches.length > 500) S.levelSwitches.splice(0, S.levelSwitches.length - 500);
  });
  hls.attachMedia(video);
  hls.loadSource(cfg.url);

  // --switch-every: force the next level round-robin. hls.js has already
  // dropped levels whose codecs MediaSource rejects; this re-checks, and
  // skips audio-only variants when the ladder has video ones.
  function levelPlayable(l, ladderHasVideo) {
    const hasVideo = !!(l.videoCodec || l.height);
    if (ladderHasVideo && !hasVideo) return false;
    const codecs = [l.videoCodec, l.audioCodec].filter(Boolean).join(',');
    if (!codecs || !window.MediaSource || !MediaSource.isTypeSupported) return true;
    return MediaSource.isTypeSupported('video/mp4; codecs="' + codecs + '"') ||
      (!!l.videoCodec && MediaSource.isTypeSupported('video/mp4; codecs="' + l.videoCodec + '"'));
  }
  function forceNextLevel() {
    const levels = hls.levels || [];
    const n = levels.length;
    // A request in the last moment of the measured window could not show.
    if (n < 2 || now() - S.firstPlayingAt + 0.25 >= cfg.seconds) return;
    const ladderHasVideo = levels.some(l => l.videoCodec || l.height);
    let cur = hls.currentLevel;
    if (cur < 0) cur = hls.loadLevel;
    if (cur < 0) cur = n - 1;
    for (let k = 1; k < n; k++) {
      const next = (cur + k) % n;
      if (!levelPlayable(levels[next], ladderHasVideo)) continue;
      S.switchRequests++;
      hls.currentLevel = next;
      return;
    }
  }

  // Media seconds played per level, from currentTime progress. The level is
  // the one whose height the video element shows (videoHeight) when that
  // identifies a single level, else hls.currentLevel. Seeks and jumps are
  // not counted. Also called by the node side before every read.
  function playingLevel(levels) {
    let idx = hls.currentLevel;
    const vh = video.videoHeight;
    if (vh && !(levels[idx] && levels[idx].height === vh)) {
      const same = [];
      levels.forEach((l, i) => { if (l.height === vh) same.push(i); });
      if (same.length === 1) idx = same[0];
    }
    return idx;
  }
  const account = window.__estuaryAccount = () => {
    if (!playingStarted() || S.accountTime === null) return;
    const ct = video.currentTime, w = now();
    const dt = ct - S.accountTime, dw = w - S.accountWall;
    S.accountTime = ct; S.accountWall = w;
    if (video.seeking || !(dt > 0) || dt > dw * 2 + 0.5) return;
    const levels = hls.levels || [];
    const idx = playingLevel(levels);
    if (idx < 0) return;
    const l = levels[idx];
    const e = S.levelPlayed[idx] || (S.levelPlayed[idx] = { level: idx, height: (l && l.height) || null, seconds: 0 });
    e.seconds += dt;
  };

  setInterval(() => {
    const ct = video.currentTime;
    readLevels();
    account();
    // A stall flagged by hls.js alone ends when the playhead moves again.
    if (S.stalled && !video.paused && video.readyState >= 3 && ct > S.lastCurrentTime + 0.1) endStall();
    S.lastCurrentTime = ct;
    const buffered = [];
    for (let i = 0; i < video.buffered.length; i++) buffered.push([round(video.buffered.start(i)), round(video.buffered.end(i))]);
    let ahead = 0;
    for (const [s, e] of buffered) if (s <= ct + 0.05 && e > ct) ahead = e - ct;
    let pdtLatency = null;
    try {
      const d = hls.playingDate;
      if (d && !isNaN(d.getTime())) pdtLatency = round((Date.now() - d.getTime()) / 1000);
    } catch (_) {}
    S.samples.push({
      t: round(now()),
      playing: playingStarted(),
      current_time: round(ct),
      latency: hls.latency ? round(hls.latency) : null,
      target_latency: hls.targetLatency == null ? null : round(hls.targetLatency),
      pdt_latency: pdtLatency,
      current_level: hls.currentLevel,
      video_height: video.videoHeight,
      buffered,
      buffer_ahead: round(ahead),
      ready_state: video.readyState,
      stalled: S.stalled,
    });
    if (S.samples.length > 2000) S.samples.splice(0, S.samples.length - 2000);
  }, 500);
})();
</script></body></html>`;
}

function stats(xs) {
  const v = xs.filter((x) => x !== null && Number.isFinite(x));
  if (!v.length) return { avg: null, min: null, max: null, last: null };
  return {
    avg: round(v.reduce((a, b) => a + b, 0) / v.length),
    min: round(Math.min(...v)),
    max: round(Math.max(...v)),
    last: round(v[v.length - 1]),
  };
}

// One entry per level of the ladder (seconds 0 when it never played), plus
// any level index that played but is no longer listed.
function levelsPlayed(S) {
  const out = S.levels.map((l, i) => ({ level: i, height: l.height, seconds: 0 }));
  for (const e of Object.values(S.levelPlayed)) {
    if (out[e.level]) out[e.level].seconds = round(e.seconds);
    else out[e.level] = { level: e.level, height: e.height, seconds: round(e.seconds) };
  }
  return out.filter(Boolean);
}

async function main() {
  const args = cliArgs(SPEC, usage);
  const seconds = args.seconds ?? 20;
  const switchEvery = args['switch-every'] ?? null;
  if (switchEvery !== null && !(switchEvery > 0)) {
    console.error(`--switch-every must be > 0\n${usage()}`);
    process.exit(1);
  }
  const lowLatency = !!args['low-latency'];
  const log = (...m) => { if (args.verbose) console.error('[play-hls]', ...m); };

  const target = new URL(args.url);
  const pageUrlForStream = args.proxy || args['corrupt-keys'] ? `/upstream${target.pathname}${target.search}` : target.href;

  const started = Date.now();
  let result = {
    ok: false,
    url: target.href,
    low_latency: lowLatency,
    switch_every: switchEvery,
    played_seconds: 0,
    stalls: 0,
    fatal_errors: [],
    errors: [],
  };
  let printed = false;
  const finish = (extra, code) => {
    if (!printed) {
      printed = true;
      process.stdout.write(JSON.stringify({ ...result, ...extra }) + '\n');
    }
    return code;
  };

  let server;
  let browser;
  const cleanup = async () => {
    if (browser) await browser.close();
    if (server) server.close();
  };
  // Hard limit: never run longer than seconds + 40 s.
  const hard = setTimeout(async () => {
    finish({ ok: false, timeout: true, harness_error: `no result within ${seconds + 40} s` }, 1);
    await Promise.race([cleanup(), sleep(5000)]);
    process.exit(1);
  }, (seconds + 40) * 1000);
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, async () => {
      await Promise.race([cleanup(), sleep(5000)]);
      process.exit(1);
    });
  }

  try {
    let pageOrigin;
    ({ server } = await startServer({
      pages: { '/': pageHtml({ url: pageUrlForStream, lowLatency, seconds, switchEvery: switchEvery ?? 0, trace: !!args.trace }) },
      files: {
        '/lib/hls.min.js': packageFile('hls.js', 'dist/hls.min.js'),
        '/lib/hls.min.js.map': packageFile('hls.js', 'dist/hls.min.js.map'),
      },
      upstream: args.proxy || args['corrupt-keys'] ? target.origin : null,
      corruptKeys: !!args['corrupt-keys'],
    }).then((s) => { log('page server at', s.origin); pageOrigin = s.origin; return s; }));
    browser = await launchChromium({ executablePath: args.chromium });
    const { page } = browser;
    page.on('console', (m) => log(`console.${m.type()}:`, m.text()));
    page.on('pageerror', (e) => log('pageerror:', e.message));
    page.on('crash', () => log('the page crashed (renderer process gone)'));
    await page.goto(`${pageOrigin}/`, { waitUntil: 'load', timeout: 30_000 });

    let S;
    let outcome = 'done';
    for (;;) {
      await sleep(250);
      S = await page.evaluate(() => {
        const s = window.__estuary;
        if (!s) return null;
        if (window.__estuaryAccount) window.__estuaryAccount();
        const v = document.getElementById('v');
        const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
        return {
          ...s,
          pageNow: window.__estuaryNow(),
          video: {
            width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime,
            readyState: v.readyState, paused: v.paused,
            frames: q ? q.totalVideoFrames : null, dropped: q ? q.droppedVideoFrames : null,
            decoded: typeof v.webkitDecodedFrameCount === 'number' ? v.webkitDecodedFrameCount : null,
            audioBytes: typeof v.webkitAudioDecodedByteCount === 'number' ? v.webkitAudioDecodedByteCount : null,
          },
          currentLevel: window.__hls ? window.__hls.currentLevel : null,
        };
      });
      if (!S) continue;
      if (S.fatal.length) { outcome = 'fatal'; break; }
      if (S.firstPlayingAt !== null && S.pageNow - S.firstPlayingAt >= seconds) break;
    }
    if (args.screenshot) {
      await page.screenshot({ path: args.screenshot }).catch((e) => log('screenshot failed:', e.message));
    }

    const playingSamples = S.samples.filter((x) => x.playing);
    const lat = stats(playingSamples.map((x) => x.latency));
    const pdt = stats(playingSamples.map((x) => x.pdt_latency));
    const tgt = playingSamples.map((x) => x.target_latency).filter((x) => x !== null);
    const last = S.samples[S.samples.length - 1] ?? null;
    const stallSeconds = S.stallSeconds + (S.stalled && S.stallStartedAt !== null ? S.pageNow - S.stallStartedAt : 0);
    const played = S.firstPlayingAt === null ? 0 : S.video.currentTime - S.startCurrentTime;
    result = {
      ...result,
      ok: outcome === 'done' && S.firstPlayingAt !== null,
      played_seconds: round(played),
      wall_seconds: S.firstPlayingAt === null ? 0 : round(S.pageNow - S.firstPlayingAt),
      startup_seconds: round(S.firstPlayingAt),
      stalls: S.stalls,
      stall_seconds: round(stallSeconds),
      waiting_events: S.waitingEvents,
      buffer_stalled_errors: S.bufferStalledErrors,
      seeks: S.seeks,
      fatal_errors: S.fatal,
      errors: S.errors.filter((e) => !e.fatal),
      error_count: S.errorCount,
      latency_avg: lat.avg,
      latency_min: lat.min,
      latency_max: lat.max,
      latency_last: lat.last,
      target_latency: tgt.length ? round(tgt[tgt.length - 1]) : null,
      pdt_latency_avg: pdt.avg,
      pdt_latency_last: pdt.last,
      levels: S.levels,
      current_level: S.currentLevel,
      level_switches: S.levelSwitches,
      levels_played: levelsPlayed(S),
      switch_requests: S.switchRequests,
      video_width: S.video.width,
      video_height: S.video.height,
      frames_decoded: S.video.frames,
      dropped_frames: S.video.dropped,
      audio_decoded_bytes: S.video.audioBytes,
      buffer_ahead_last: last ? last.buffer_ahead : null,
      ready_state_last: S.video.readyState,
      hls_js_version: S.hlsVersion,
      harness_seconds: round((Date.now() - started) / 1000, 1),
    };
    if (args.samples) result.samples = S.samples;
    if (args.trace) {
      const lines = await page.evaluate(() => window.__estuaryTrace || []);
      const { writeFileSync } = await import('node:fs');
      writeFileSync(args.trace, lines.join('\n') + '\n');
    }
    if (!args.proxy && S.fatal.some((e) => e.type === 'networkError' && e.http_status === 0)) {
      console.error('[play-hls] status 0: server down, or it sends no CORS headers (try --proxy)');
    }
    clearTimeout(hard);
    await cleanup();
    process.exit(finish({}, 0));
  } catch (e) {
    clearTimeout(hard);
    console.error('[play-hls] harness failure:', e && e.stack ? e.stack : e);
    finish({ ok: false, harness_error: String(e && e.message ? e.message : e) }, 1);
    await Promise.race([cleanup(), sleep(5000)]);
    process.exit(1);
  }
}

main();
