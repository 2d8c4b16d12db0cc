#!/usr/bin/env node
// Rewind a live stream with a DVR window in hls.js and dash.js, one after the other, in headless
// Chromium: join at the live edge, seek back --back seconds, play there, return to the live edge,
// and print what each player did as one JSON line.
//
//   node play-dvr.mjs --url URL/index.m3u8 --dash URL/manifest.mpd --back 30 [--hold 8]
//       [--chromium PATH] [--verbose]
//
// Per player (muted, hls.js without lowLatencyMode, dash.js with its defaults):
//   1. play 3 s at the live edge;
//   2. seek the video element to (end of its seekable range − back);
//   3. play --hold seconds there;
//   4. seek to the live edge (hls.js: liveSyncPosition; dash.js: end of the seekable range less
//      its target delay) and play 3 s.
// "How far behind live" is measured on the playhead's wall clock (hls.js `playingDate`, dash.js
// `timeAsUTC()`: the EXT-X-PROGRAM-DATE-TIME / MPD clock of the frame shown) against the page's
// clock, so it says which minute of the stream is on screen, not what the player believes.
// Per player: seekable_s (length of the seekable range), behind_live_before_s, behind_live_back_s
// (at the end of the hold), played_back_s (media time advanced during the hold), behind_live_after_s,
// stalls, errors.
// ok: every player played at least 75 % of the hold behind live by back ± 10 s, then came back
// within 10 s of live, with no fatal error.

import { cliArgs, runPlayerPage, sleep } from './harness.mjs';

const SPEC = { url: 'string', dash: 'string', back: 'number', hold: 'number', seconds: 'number', chromium: 'string', verbose: 'boolean', help: 'boolean' };

function usage() {
  return 'usage: node play-dvr.mjs --url HLS_URL --dash MPD_URL --back S [--hold S] [--chromium PATH] [--verbose]';
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script src="/lib/hls.min.js"></script><script src="/lib/dash.all.min.js"></script>
</head><body><video id=v muted playsinline autoplay></video><script>
window.S = { errors: [], stalls: 0, playing: false };
const video = document.getElementById('v');
video.addEventListener('playing', () => { S.playing = true; });
video.addEventListener('waiting', () => { if (S.playing && !video.seeking) S.stalls += 1; });
window.wallOfPlayhead = () => null;
window.liveEdge = () => video.seekable.length ? video.seekable.end(video.seekable.length - 1) : null;
window.seekable = () => video.seekable.length ? video.seekable.end(video.seekable.length - 1) - video.seekable.start(0) : 0;
window.startHls = (url) => {
  const h = window.player = new Hls({ lowLatencyMode: false });
  h.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) S.errors.push(d.details); });
  h.loadSource(url);
  h.attachMedia(video);
  window.wallOfPlayhead = () => h.playingDate ? h.playingDate.getTime() : null;
  window.toLive = () => { video.currentTime = h.liveSyncPosition ?? window.liveEdge(); };
};
window.startDash = (url) => {
  const p = window.player = dashjs.MediaPlayer().create();
  p.on(dashjs.MediaPlayer.events.ERROR, (e) => S.errors.push(String(e.error?.message ?? e.error?.code ?? e)));
  p.initialize(video, url, true);
  window.wallOfPlayhead = () => { const t = p.timeAsUTC(); return Number.isFinite(t) && t > 0 ? t * 1000 : null; };
  window.toLive = () => { p.seekToOriginalLive ? p.seekToOriginalLive() : (video.currentTime = window.liveEdge() - 3); };
};
</script></body></html>`;

async function behind(page) {
  return page.evaluate(() => {
    const w = window.wallOfPlayhead();
    return w === null ? null : (Date.now() - w) / 1000;
  });
}

async function run(page, origin, fn, url, back, hold, verbose) {
  await page.goto(`${origin}/`);
  await page.evaluate(([f, u]) => window[f](u), [fn, url]);
  const t0 = Date.now();
  while (!(await page.evaluate(() => S.playing)) && Date.now() - t0 < 20_000) await sleep(200);
  await sleep(3000);
  const r = { seekable_s: await page.evaluate(() => window.seekable()), behind_live_before_s: await behind(page) };
  const target = await page.evaluate((b) => {
    const start = video.seekable.length ? video.seekable.start(0) : 0;
    const t = Math.max(start + 1, window.liveEdge() - b);
    video.currentTime = t;
    return t;
  }, back);
  r.seek_target = target;
  // Wait for the seek to land, then play `hold` seconds there.
  const t1 = Date.now();
  while ((await page.evaluate(() => video.seeking)) && Date.now() - t1 < 15_000) await sleep(100);
  const from = await page.evaluate(() => video.currentTime);
  await sleep(hold * 1000);
  const to = await page.evaluate(() => video.currentTime);
  r.played_back_s = Math.round((to - from) * 1000) / 1000;
  r.behind_live_back_s = await behind(page);
  if (verbose) console.error(fn, JSON.stringify(r));
  await page.evaluate(() => window.toLive());
  await sleep(3000);
  r.behind_live_after_s = await behind(page);
  const s = await page.evaluate(() => ({ stalls: S.stalls, errors: S.errors }));
  r.stalls = s.stalls;
  r.errors = s.errors;
  r.ok = s.errors.length === 0 && r.played_back_s >= 0.75 * hold
    && r.behind_live_back_s !== null && Math.abs(r.behind_live_back_s - back) <= 10
    && r.behind_live_after_s !== null && r.behind_live_after_s <= 10;
  return r;
}

const args = cliArgs(SPEC, usage, ['url', 'dash', 'back']);
const hold = args.hold ?? 8;
await runPlayerPage({ page: PAGE, chromium: args.chromium, result: { ok: false, back: args.back, hold } }, async (page, origin, result) => {
  result.hls = await run(page, origin, 'startHls', args.url, args.back, hold, args.verbose);
  result.dash = await run(page, origin, 'startDash', args.dash, args.back, hold, args.verbose);
  result.ok = result.hls.ok && result.dash.ok;
});
