#!/usr/bin/env node
// Play an LL-HLS stream in hls.js in headless Chromium and report the closed captions (CEA-608 in
// the video's SEI) hls.js turned into text track cues, and which of them Chromium showed, as one
// JSON line on stdout.
//
//   node play-captions.mjs --url URL/index.m3u8 [--height 240] [--seconds 30] [--low-latency] [--chromium PATH] [--verbose]
//
// --low-latency  hls.js's lowLatencyMode (loads parts). Off by default: hls.js 1.7.4 resets its CEA-608
//            parser at every part after a segment's first (TimelineController.onFragLoading takes a part
//            of the same segment for a gap: `sn !== lastSn + 1 || ...`), so a caption on screen across a
//            part boundary never becomes a cue; by segments it does.
// --height   force the level of that height (hls.startLevel and hls.loadLevel: manual level, no
//            ABR) so every caption comes from that rendition; without it hls.js picks levels itself
// --seconds  wall seconds of playback to watch, counted from the first frame shown (default 30)
//
// How hls.js 1.7 hands over CEA-608 (enableCEA708Captions, default): it parses the cc_data of each
// video sample and turns each caption into VTTCues (one per caption row), for the channel's track,
// named by the multivariant playlist (#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,INSTREAM-ID="CC1",NAME=...)
// or captionsTextTrack1Label. A level with CLOSED-CAPTIONS=NONE gets no captions.
//
// The page takes them as a player with its own caption UI does (renderTextTracksNatively: false):
// NON_NATIVE_TEXT_TRACKS_FOUND names the track, CUES_PARSED delivers its cues, and the page puts
// them in a `captions` text track of its own (video.addTextTrack), mode "showing", so Chromium
// renders them with their frames. Not hls.js's native tracks: hls.js 1.7.4 holds the first cues of
// a native captions track in a cache that it empties on the next video BUFFER_APPENDED, and with a
// separate audio rendition that event stops coming once an audio append waits for video (seen:
// only the first 3 of 12 video appends announced), so whether a native track ever gets a cue
// depended on which of two segments loaded first (0 cues in about 1 run of 5 on a busy machine,
// from the same bytes).
//
// The page records:
//   cues   every cue added to its tracks: {track_label, track_kind, start, end, text} (media
//          time, s; one per start + text, polled every 250 ms)
//   shown  at each frame presented (requestVideoFrameCallback), the showing tracks' activeCues
//          texts joined with '|', as [media time s, text], whenever that text changes: what was
//          on screen with that frame
// plus the playlist's captions declarations (`closed_captions_media`: its CLOSED-CAPTIONS
// renditions; `level_closed_captions`: each level's CLOSED-CAPTIONS attribute), `levels_played`
// (heights, from LEVEL_SWITCHED: the level at the playhead), `levels_loaded` (heights of the main
// fragments/parts loaded), `played_seconds` (media time advanced), `stalls` (`waiting` episodes
// after the first frame), `fatal_errors` and `errors` (first 10 non-fatal).
// `ok`: at least one cue, some caption text shown, no fatal error.
//
// A fatal error (or no level of --height, or no frame within 40 s) ends the run early with
// `ok: false`. Exit status 0 when a report was written (check `ok`).

import { cliArgs, launchChromium, packageFile, round, sleep, startServer } from './harness.mjs';

const SPEC = { url: 'string', height: 'number', seconds: 'number', 'low-latency': 'boolean', chromium: 'string', verbose: 'boolean', help: 'boolean' };
// No first frame within this long after the page loaded: give up (s).
const STARTUP_LIMIT = 40;

function usage() {
  return 'usage: node play-captions.mjs --url HLS_URL [--height H] [--seconds N] [--low-latency] [--chromium PATH] [--verbose]';
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8">
<script src="/lib/hls.min.js"></script>
<style>video{width:640px;height:360px}</style></head>
<body><video id=v autoplay muted playsinline></video><script>
const KINDS = ['captions', 'subtitles'];
const video = document.getElementById('v');
const now = () => performance.now() / 1000;
const S = window.S = {
  hlsVersion: Hls.version, frames: 0, firstFrameAt: null, firstFrameTime: null, stalls: 0, stalled: false,
  fatal: [], errors: [], errorCount: 0, cues: {}, shown: [], lastShown: null, ccMedia: [], levels: [],
  forced: null, switched: [], loaded: [],
};
const textTracks = () => [...video.textTracks].filter((t) => KINDS.includes(t.kind));
function showTracks() {
  for (const t of textTracks()) if (t.mode !== 'showing') t.mode = 'showing';
}
// Every cue in the tracks, once per start + text (hls.js removes cues behind the back buffer).
window.collectCues = () => {
  for (const t of textTracks()) {
    for (const c of t.cues ?? []) {
      S.cues[c.startTime.toFixed(3) + '|' + c.text] ??= { track_label: t.label, track_kind: t.kind, start: c.startTime, end: c.endTime, text: c.text };
    }
  }
};
video.textTracks.addEventListener('addtrack', showTracks);
setInterval(() => { showTracks(); window.collectCues(); }, 250);
// What the showing tracks have on screen with each frame presented.
const onFrame = (_, meta) => {
  if (S.firstFrameAt === null) { S.firstFrameAt = now(); S.firstFrameTime = video.currentTime; }
  S.frames += 1;
  const texts = [];
  for (const t of textTracks()) if (t.mode === 'showing') for (const c of t.activeCues ?? []) texts.push(c.text);
  const text = texts.join('|');
  if (text !== S.lastShown) { S.lastShown = text; S.shown.push([Math.round(meta.mediaTime * 1000) / 1000, text]); }
  video.requestVideoFrameCallback(onFrame);
};
video.requestVideoFrameCallback(onFrame);
video.addEventListener('waiting', () => {
  if (S.firstFrameAt === null || video.seeking || S.stalled) return;
  S.stalled = true; S.stalls += 1;
});
video.addEventListener('playing', () => { S.stalled = false; });
video.addEventListener('error', () => S.fatal.push({ type: 'mediaElementError', details: String(video.error?.message || video.error?.code) }));
const heightOf = (level) => hls.levels[level]?.height || null;
let hls = null;
window.startHls = (cfg) => {
  hls = window.hls = new Hls({ lowLatencyMode: cfg.lowLatency, enableCEA708Captions: true, renderTextTracksNatively: false });
  const own = {};
  const trackFor = (t) => {
    own[t._id] ??= video.addTextTrack(t.kind || 'captions', t.label ?? t._id, t.closedCaptions?.lang ?? '');
    own[t._id].mode = 'showing';
    return own[t._id];
  };
  hls.on(Hls.Events.NON_NATIVE_TEXT_TRACKS_FOUND, (_, d) => { for (const t of d.tracks) trackFor(t); });
  hls.on(Hls.Events.CUES_PARSED, (_, d) => {
    if (d.type !== 'captions') return;
    const track = trackFor({ _id: d.track, kind: 'captions', label: d.closedCaptions?.name ?? d.track, closedCaptions: d.closedCaptions });
    for (const c of d.cues) track.addCue(c);
  });
  hls.on(Hls.Events.ERROR, (_, d) => {
    const e = { type: d.type, details: d.details, fatal: !!d.fatal };
    const why = d.reason ?? d.error?.message;
    if (why) e.reason = String(why).slice(0, 300);
    S.errorCount += 1;
    if (d.fatal) S.fatal.push(e); else if (S.errors.length < 10) S.errors.push(e);
  });
  hls.on(Hls.Events.MANIFEST_LOADED, (_, d) => {
    S.ccMedia = (d.captions ?? []).map((m) => ({
      group_id: m.groupId, name: m.name, lang: m.lang ?? null, instream_id: m.instreamId ?? null,
      default: m.default, autoselect: m.autoselect,
    }));
  });
  hls.on(Hls.Events.MANIFEST_PARSED, () => {
    S.levels = hls.levels.map((l) => ({ height: l.height || null, closed_captions: l.attrs['CLOSED-CAPTIONS'] ?? null }));
    if (cfg.height != null) {
      const i = hls.levels.findIndex((l) => l.height === cfg.height);
      if (i < 0) {
        S.fatal.push({ type: 'harness', details: 'no level of height ' + cfg.height });
        return;
      }
      // Before anything is buffered: the first level loaded, and manual from then on (no ABR).
      hls.startLevel = i;
      hls.loadLevel = i;
      S.forced = { level: i, height: cfg.height };
    }
    video.play().catch(() => {});
  });
  hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => S.switched.push(heightOf(d.level)));
  hls.on(Hls.Events.FRAG_LOADED, (_, d) => {
    const h = heightOf(d.frag.level);
    if (d.frag.type === 'main' && !S.loaded.includes(h)) S.loaded.push(h);
  });
  hls.attachMedia(video);
  hls.loadSource(cfg.url);
};
</script></body></html>`;

const args = cliArgs(SPEC, usage);
const seconds = args.seconds ?? 30;
const height = args.height ?? null;
const log = (...m) => { if (args.verbose) console.error('[play-captions]', ...m); };
const result = { ok: false, url: args.url, height, played_seconds: 0, stalls: 0, fatal_errors: [] };
let server = null;
let browser = null;
try {
  let origin;
  ({ server, origin } = await startServer({
    pages: { '/': PAGE },
    files: { '/lib/hls.min.js': packageFile('hls.js', 'dist/hls.min.js') },
  }));
  browser = await launchChromium({ executablePath: args.chromium });
  const { page } = browser;
  page.on('console', (m) => log(`console.${m.type()}:`, m.text()));
  page.on('pageerror', (e) => log('pageerror:', e.message));
  await page.goto(`${origin}/`);
  await page.evaluate((cfg) => window.startHls(cfg), { url: args.url, height, lowLatency: !!args['low-latency'] });
  // Watch until --seconds after the first frame (page time, s); a fatal error ends it early.
  for (;;) {
    await sleep(250);
    const p = await page.evaluate(() => ({ now: performance.now() / 1000, first: S.firstFrameAt, fatal: S.fatal.length, cues: Object.keys(S.cues).length, frames: S.frames }));
    log(JSON.stringify(p));
    if (p.fatal) break;
    if (p.first === null && p.now > STARTUP_LIMIT) {
      result.error = `no frame shown within ${STARTUP_LIMIT} s`;
      break;
    }
    if (p.first !== null && p.now - p.first >= seconds) break;
  }
  const S = await page.evaluate(() => {
    window.collectCues();
    const v = document.getElementById('v');
    return {
      ...S, now: performance.now() / 1000, currentTime: v.currentTime,
      tracks: [...v.textTracks].map((t) => ({ label: t.label, kind: t.kind, language: t.language, mode: t.mode, cues: t.cues?.length ?? null })),
    };
  });
  const cues = Object.values(S.cues)
    .map((c) => ({ ...c, start: round(c.start), end: round(c.end) }))
    .sort((a, b) => a.start - b.start);
  const ccGroups = S.ccMedia.map((m) => m.group_id);
  Object.assign(result, {
    ok: cues.length > 0 && S.shown.some(([, text]) => text !== '') && S.fatal.length === 0 && !result.error,
    hls_js_version: S.hlsVersion,
    closed_captions_declared: S.levels.some((l) => ccGroups.includes(l.closed_captions)),
    closed_captions_media: S.ccMedia,
    level_closed_captions: S.levels.map((l) => l.closed_captions),
    levels: S.levels.map((l) => l.height),
    forced_level: S.forced,
    levels_played: [...new Set(S.switched)],
    levels_loaded: S.loaded,
    played_seconds: S.firstFrameAt === null ? 0 : round(S.currentTime - S.firstFrameTime),
    wall_seconds: S.firstFrameAt === null ? 0 : round(S.now - S.firstFrameAt),
    frames: S.frames,
    stalls: S.stalls,
    text_tracks: S.tracks,
    cue_count: cues.length,
    cues,
    shown: S.shown,
    fatal_errors: S.fatal,
    errors: S.errors,
    error_count: S.errorCount,
  });
} catch (e) {
  result.error = String(e && e.message ? e.message : e);
} finally {
  if (browser) await browser.close();
  if (server) server.close();
}
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
