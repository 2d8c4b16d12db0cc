#!/usr/bin/env node
// Play a recording (VOD) from start to end in hls.js and dash.js, one after the other, in headless
// Chromium, and print what each played as one JSON line.
//
//   node play-vod.mjs [--url URL/index.m3u8] [--dash URL/manifest.mpd] [--rate 4] [--seconds 120]
//       [--chromium PATH] [--verbose]
//
// Each player loads its URL muted and plays at --rate (default 4: a 40 s recording plays in about
// 10 s) until the video element's `ended` event, or until --seconds of wall time. The page samples
// `currentTime` every 100 ms. Per player:
//   duration        video.duration once known, s
//   played_seconds  media time advanced (the sum of forward steps between samples), s
//   max_time        the furthest media time reached, s
//   jumps           forward steps longer than the player could have played (rate × step + 0.5 s):
//                   [from, to] media times, i.e. media skipped
//   ended           the `ended` event came
//   stalls          `waiting` events after the first `playing`
//   errors          fatal player errors
//   frames_decoded  Chromium's decoded video frames
// ok: every player ended with no fatal error, no jump, and played at least 97 % of its duration.
// Exit status 0 when a report was written (check `ok`).

import { cliArgs, runPlayerPage, sleep } from './harness.mjs';

const SPEC = { url: 'string', dash: 'string', rate: 'number', seconds: 'number', chromium: 'string', verbose: 'boolean', help: 'boolean' };

function usage() {
  return 'usage: node play-vod.mjs [--url HLS_URL] [--dash URL] [--rate R] [--seconds N] [--chromium PATH] [--verbose]';
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script src="/lib/hls.min.js"></script><script src="/lib/dash.all.min.js"></script>
<style>video{width:320px;height:180px}</style></head>
<body><video id=v muted playsinline></video><script>
window.S = null;
function watch(video, rate) {
  const s = window.S = { duration: null, samples: [], ended: false, playing: false, stalls: 0, errors: [], t0: Date.now() };
  video.addEventListener('playing', () => { s.playing = true; video.playbackRate = rate; });
  video.addEventListener('waiting', () => { if (s.playing && !video.seeking) s.stalls += 1; });
  video.addEventListener('ended', () => { s.ended = true; });
  video.addEventListener('durationchange', () => { if (Number.isFinite(video.duration)) s.duration = video.duration; });
  setInterval(() => {
    s.samples.push([Date.now() - s.t0, video.currentTime]);
    s.frames = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : null;
  }, 100);
  return s;
}
window.playHls = (url, rate) => {
  const video = document.getElementById('v');
  watch(video, rate);
  const h = new Hls({ lowLatencyMode: false });
  h.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) S.errors.push(d.details); });
  h.loadSource(url);
  h.attachMedia(video);
  video.play().catch((e) => S.errors.push('play: ' + e.message));
};
window.playDash = (url, rate) => {
  const video = document.getElementById('v');
  watch(video, rate);
  const p = dashjs.MediaPlayer().create();
  p.on(dashjs.MediaPlayer.events.ERROR, (e) => S.errors.push(String(e.error?.message ?? e.error?.code ?? e)));
  p.initialize(video, url, true);
};
</script></body></html>`;

function analyse(s, rate) {
  let played = 0;
  let maxTime = 0;
  const jumps = [];
  for (let i = 1; i < s.samples.length; i++) {
    const [w0, t0] = s.samples[i - 1];
    const [w1, t1] = s.samples[i];
    const d = t1 - t0;
    maxTime = Math.max(maxTime, t1);
    if (d <= 0) continue;
    if (d > rate * ((w1 - w0) / 1000) + 0.5) jumps.push([Math.round(t0 * 1000) / 1000, Math.round(t1 * 1000) / 1000]);
    else played += d;
  }
  const duration = s.duration;
  const ok = s.ended && s.errors.length === 0 && jumps.length === 0 && duration !== null && played >= 0.97 * duration;
  return {
    ok, duration, played_seconds: Math.round(played * 1000) / 1000, max_time: Math.round(maxTime * 1000) / 1000,
    jumps, ended: s.ended, stalls: s.stalls, errors: s.errors, frames_decoded: s.frames ?? null,
    wall_seconds: s.samples.length ? s.samples[s.samples.length - 1][0] / 1000 : 0,
  };
}

const args = cliArgs(SPEC, usage, []);
const rate = args.rate ?? 4;
const seconds = args.seconds ?? 120;
const runs = [];
if (args.url) runs.push(['hls', args.url, 'playHls']);
if (args.dash) runs.push(['dash', args.dash, 'playDash']);
if (runs.length === 0) {
  console.error(usage());
  process.exit(1);
}
await runPlayerPage({ page: PAGE, chromium: args.chromium, result: { ok: false, rate } }, async (page, origin, result) => {
  for (const [name, url, fn] of runs) {
    await page.goto(`${origin}/`);
    await page.evaluate(([f, u, r]) => window[f](u, r), [fn, url, rate]);
    const t0 = Date.now();
    while (Date.now() - t0 < seconds * 1000) {
      await sleep(500);
      const s = await page.evaluate(() => ({ ended: S.ended, errors: S.errors.length, t: S.samples.at(-1)?.[1] }));
      if (args.verbose) console.error(name, JSON.stringify(s));
      if (s.ended || s.errors > 0) break;
    }
    result[name] = analyse(await page.evaluate(() => window.S), rate);
  }
  result.ok = runs.every(([name]) => result[name].ok);
});
