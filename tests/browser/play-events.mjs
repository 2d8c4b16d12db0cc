#!/usr/bin/env node
// Play one stream in hls.js (LL-HLS), dash.js and Shaka Player at the same time, on one page in
// headless Chromium, and report every timed metadata event (ID3 in emsg) each player raised, as
// one JSON line on stdout.
//
//   node play-events.mjs --url URL/index.m3u8 --dash URL/manifest.mpd [--end end] [--seconds 120]
//
// The publisher draws its wall clock (Unix ms mod 2^24) into the top left of each frame as 24
// blocks (as play-whep.mjs reads them); every frame shown is logged with its media time and code.
// Each event's data is JSON with `posted_ms`, the wall clock when it was posted to the origin.
//
// Per player, each event is reported with:
//   start      the cue's start (its emsg presentation time, as the player maps it), s
//   fired      the media time (video.currentTime) when the player raised it, s
//   frame_dt_ms  distance from `start` to the nearest frame shown (0: the cue starts on a frame)
//   stamp_minus_post_ms  the clock code of that frame minus posted_ms: how long before the post the
//              stamped frame was captured (null when the frame at `start` was not shown)
//   raised     how many times the player raised it (1 expected)
// and `jumps`: where playback jumped ([from, to] media times, more than 0.5 s between two frames).
// How each player raises a cue:
//   hls.js   the `id3` metadata TextTrack's cuechange (Chromium's cue timing)
//   dash.js  player.on(ID3 scheme, EVENT_MODE_ON_START), events.eventControllerRefreshDelay 10 ms
//            (default 100 ms: dash.js checks for due events on that timer)
//   Shaka    the `metadata` event (its region observer polls the playhead every 250 ms)
// hls.js also reports the EXT-X-DATERANGE tags it parsed (id, start date, X-DATA, class, duration,
// and the media time it maps the start date to: first and latest).
//
// Playing stops once every player raised the event --end (default "end"), or after --seconds.
// Exit status 0 when a report was written (check `ok`).

import { READ_CODE_JS, cliArgs, launchChromium, packageFile, sleep, startServer } from './harness.mjs';

const SPEC = { url: 'string', dash: 'string', end: 'string', seconds: 'number', chromium: 'string', verbose: 'boolean', help: 'boolean' };

function usage() {
  return 'usage: node play-events.mjs --url HLS_URL --dash MPD_URL [--end ID] [--seconds N] [--chromium PATH] [--verbose]';
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script src="/lib/hls.min.js"></script><script src="/lib/dash.all.min.js"></script><script src="/lib/shaka-player.compiled.js"></script>
<style>video{width:320px;height:180px}</style></head>
<body><video id=hls autoplay muted playsinline></video><video id=dash autoplay muted playsinline></video><video id=shaka autoplay muted playsinline></video><script>
const ID3 = 'https://aomedia.org/emsg/ID3';
const S = {};
for (const name of ['hls', 'dash', 'shaka']) S[name] = { frames: [], events: {}, errors: [], stalls: 0, playing: false, dateranges: {} };
window.S = S;
${READ_CODE_JS}
function watch(name) {
  const video = document.getElementById(name);
  const canvas = document.createElement('canvas');
  const cb = (now, meta) => {
    if (video.videoWidth > 0) S[name].frames.push([meta.mediaTime, readCode(video, canvas)]);
    video.requestVideoFrameCallback(cb);
  };
  video.requestVideoFrameCallback(cb);
  video.addEventListener('playing', () => { S[name].playing = true; });
  video.addEventListener('waiting', () => { if (S[name].playing) S[name].stalls += 1; });
  return video;
}
// A player raised event \`id\` whose cue starts at \`start\` (s) carrying \`data\`.
function raised(name, id, start, data) {
  const video = document.getElementById(name);
  const e = S[name].events[id] ??= { id, start, fired: video.currentTime, wall: Date.now(), data, raised: 0 };
  e.raised += 1;
}
window.startHls = (url) => {
  const video = watch('hls');
  video.textTracks.addEventListener('addtrack', (ev) => {
    const t = ev.track;
    if (t.kind !== 'metadata') return;
    t.mode = 'hidden';
    const seen = new WeakSet();
    t.addEventListener('cuechange', () => {
      for (const c of t.activeCues ?? []) {
        if (seen.has(c) || c.type !== ID3 || !c.value || c.value.key !== 'TXXX') continue;
        seen.add(c);
        raised('hls', c.value.info, c.startTime, c.value.data);
      }
    });
  });
  const h = window.hlsPlayer = new Hls({ lowLatencyMode: true });
  h.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) S.hls.errors.push(d.details + ': ' + String(d.error?.message ?? d.reason ?? '').slice(0, 4000)); });
  h.loadSource(url);
  h.attachMedia(video);
  setInterval(() => {
    const details = h.levels[h.currentLevel]?.details ?? h.levels[0]?.details;
    // The media time hls.js maps each START-DATE to, as of its latest playlist (it dates a segment
    // by its EXT-X-PROGRAM-DATE-TIME until the segment is loaded, then by its media).
    for (const [id, d] of Object.entries(details?.dateRanges ?? {})) {
      const t = Number.isFinite(d.startTime) ? d.startTime : null;
      const seen = S.hls.dateranges[id];
      S.hls.dateranges[id] = {
        start_date_ms: d.startDate ? d.startDate.getTime() : null,
        start_time: t, first_start_time: seen ? seen.first_start_time : t,
        x_data: d.attr['X-DATA'] ?? null, class: d.class ?? null, duration: d.duration ?? null,
      };
    }
  }, 500);
};
window.startDash = (url) => {
  const video = watch('dash');
  const p = window.dashPlayer = dashjs.MediaPlayer().create();
  p.updateSettings({ streaming: { events: { eventControllerRefreshDelay: 10 } } });
  p.on(dashjs.MediaPlayer.events.ERROR, (e) => S.dash.errors.push(String(e.error?.message ?? e.error?.code ?? e)));
  p.on(ID3, (e) => {
    const f = (e.event.parsedMessageData ?? []).find((f) => f.key === 'TXXX');
    if (f) raised('dash', f.info, e.event.calculatedPresentationTime, f.data);
  }, null, { mode: dashjs.MediaPlayer.events.EVENT_MODE_ON_START });
  p.initialize(video, url, true);
};
window.startShaka = async (url) => {
  const video = watch('shaka');
  shaka.polyfill.installAll();
  const p = window.shakaPlayer = new shaka.Player();
  await p.attach(video);
  p.configure({ streaming: { lowLatencyMode: true } });
  p.addEventListener('error', (e) => S.shaka.errors.push(String(e.detail?.code)));
  p.addEventListener('metadata', (e) => {
    const f = e.payload;
    if (f && f.key === 'TXXX') raised('shaka', f.description, e.startTime, f.data);
  });
  try { await p.load(url); } catch (e) { S.shaka.errors.push('load ' + (e.code ?? e)); }
};
</script></body></html>`;

function analyse(s) {
  const frames = s.frames;
  const events = Object.values(s.events).map((e) => {
    let best = null;
    for (const f of frames) if (best === null || Math.abs(f[0] - e.start) < Math.abs(best[0] - e.start)) best = f;
    let posted = null;
    try { posted = JSON.parse(e.data).posted_ms ?? null; } catch (_) { /* not ours */ }
    let stampMinusPost = null;
    // Only when the stamped frame itself was shown (not skipped by a jump or the compositor).
    if (best && best[1] !== null && posted !== null && Math.abs(best[0] - e.start) <= 0.002) {
      const mod = 2 ** 24;
      stampMinusPost = ((((best[1] - posted) % mod) + mod + mod / 2) % mod) - mod / 2;
    }
    return {
      id: e.id, start: e.start, fired: e.fired, raised: e.raised, posted_ms: posted,
      fire_error_ms: Math.round((e.fired - e.start) * 1000 * 10) / 10,
      frame_dt_ms: best ? Math.round(Math.abs(best[0] - e.start) * 1000 * 10) / 10 : null,
      stamp_minus_post_ms: stampMinusPost,
    };
  });
  events.sort((a, b) => a.start - b.start);
  // Where playback jumped (media time moving by more than 0.5 s between two frames shown).
  const jumps = [];
  for (let i = 1; i < frames.length; i++) {
    const d = frames[i][0] - frames[i - 1][0];
    if (d > 0.5 || d < -0.05) jumps.push([frames[i - 1][0], frames[i][0]]);
  }
  return { playing: s.playing, stalls: s.stalls, errors: s.errors, frames: frames.length, jumps, events };
}

const args = cliArgs(SPEC, usage, ['url', 'dash']);
const seconds = args.seconds ?? 120;
const endId = args.end ?? 'end';
const { server, origin } = await startServer({
  pages: { '/': PAGE },
  files: {
    '/lib/hls.min.js': packageFile('hls.js', 'dist/hls.min.js'),
    '/lib/dash.all.min.js': packageFile('dashjs', 'dist/modern/umd/dash.all.min.js'),
    '/lib/shaka-player.compiled.js': packageFile('shaka-player', 'dist/shaka-player.compiled.js'),
  },
});
const browser = await launchChromium({ executablePath: args.chromium });
const result = { ok: false };
try {
  await browser.page.goto(`${origin}/`);
  await browser.page.evaluate(([h, d]) => { window.startHls(h); window.startDash(d); window.startShaka(d); }, [args.url, args.dash]);
  const t0 = Date.now();
  while (Date.now() - t0 < seconds * 1000) {
    await sleep(500);
    const done = await browser.page.evaluate((id) => ['hls', 'dash', 'shaka'].every((n) => S[n].events[id]), endId);
    if (args.verbose) console.error(JSON.stringify(await browser.page.evaluate(() => Object.fromEntries(Object.entries(S).map(([k, v]) => [k, Object.keys(v.events).length])))));
    if (done) break;
  }
  const S = await browser.page.evaluate(() => window.S);
  for (const name of ['hls', 'dash', 'shaka']) result[name] = analyse(S[name]);
  result.hls.dateranges = S.hls.dateranges;
  result.ok = ['hls', 'dash', 'shaka'].every((n) => result[n].events.some((e) => e.id === endId));
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
  server.close();
}
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
