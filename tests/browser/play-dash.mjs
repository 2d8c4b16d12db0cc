#!/usr/bin/env node
// Play a live MPEG-DASH stream (dynamic MPD) with dash.js or Shaka Player in
// headless Chromium and report what a viewer would have seen, as one JSON
// line on stdout. The DASH sibling of play-hls.mjs.
//
//   node play-dash.mjs --url http://127.0.0.1:8080/live/demo/manifest.mpd \
//       --player dashjs|shaka [--seconds 20] [--low-latency] [--target-latency S] \
//       [--switch-every S] [--proxy] [--screenshot /tmp/shot.png] [--samples] \
//       [--trace FILE] [--chromium /usr/bin/chromium] [--verbose]
//
// --player          dashjs (dash.js 5, dist/modern/umd/dash.all.min.js) or
//                   shaka (Shaka Player 5, dist/shaka-player.compiled.js)
// --seconds         seconds of playback to measure, counted from the first
//                   `playing` event (default 20)
// --low-latency     dash.js: apply the MPD's ServiceDescription (and its
//                   availabilityTimeOffset / chunked loading, which dash.js
//                   turns on by itself) and enable liveCatchup.
//                   Shaka: streaming.lowLatencyMode = true plus the
//                   low-latency streaming settings Shaka itself uses for LL
//                   streams. Without it: dash.js ignores the
//                   ServiceDescription and does no catch-up; Shaka runs with
//                   lowLatencyMode = false (its default is true).
// --target-latency  override the target: dash.js streaming.delay.liveDelay;
//                   Shaka streaming.liveSync {enabled, targetLatency}
// --switch-every    after playback starts, every S seconds force the next
//                   video quality round-robin (ABR off): dash.js
//                   setRepresentationForTypeById('video', id, true), Shaka
//                   selectVariantTrack(track, true)
// --proxy           load the stream through the harness's own server (same
//                   origin as the page) for servers that send no CORS headers
// --screenshot      save a PNG of the page just before stopping
// --samples         include every 500 ms sample in the JSON output
// --trace FILE      write the player's debug log and its loading/buffering
//                   events (plus the media element's) to FILE, one line each
//                   (Shaka: the debug build is loaded for this)
//
// Exit status: 0 when a result was measured (check `ok` in the JSON),
// 1 on harness failure or when nothing finished within seconds + 40 s.

import fs from 'node:fs';
import { cliArgs, launchChromium, packageFile, round, sleep, startServer } from './harness.mjs';

const SPEC = {
  url: 'string',
  player: 'string',
  seconds: 'number',
  'low-latency': 'boolean',
  'target-latency': 'number',
  'switch-every': 'number',
  proxy: 'boolean',
  screenshot: 'string',
  samples: 'boolean',
  trace: 'string',
  chromium: 'string',
  verbose: 'boolean',
  help: 'boolean',
};

const PLAYERS = ['dashjs', 'shaka'];

function usage() {
  return 'usage: node play-dash.mjs --url URL --player dashjs|shaka [--seconds N] [--low-latency] ' +
    '[--target-latency S] [--switch-every S] [--proxy] [--screenshot FILE.png] [--samples] ' +
    '[--trace FILE] [--chromium PATH] [--verbose]';
}

// Runs in the page before the player library loads (--trace only): copy the
// console into the trace, since both players log through console.*.
function pageTraceSetup() {
  const t0 = performance.now();
  const trace = window.__estuaryTrace = [];
  const tr = window.__estuaryTr = (line) => {
    if (trace.length < 100000) trace.push(((performance.now() - t0) / 1000).toFixed(3) + ' ' + line);
  };
  const str = (a) => {
    if (typeof a === 'string') return a;
    if (a instanceof Error) return a.message;
    try { return JSON.stringify(a); } catch (_) { return String(a); }
  };
  for (const level of ['log', 'debug', 'info', 'warn', 'error']) {
    const orig = console[level].bind(console);
    console[level] = (...a) => { tr(level + ' ' + a.map(str).join(' ').slice(0, 2000)); orig(...a); };
  }
}

// Runs in the page before the player library loads (Shaka captures
// window.fetch at load time): count HTTP responses that are not 2xx (status
// 0 = network/CORS failure) from fetch and XMLHttpRequest, whoever made them.
function pageNetSetup() {
  const t0 = performance.now();
  const N = window.__estuaryHttp = { count: 0, first: [] };
  const note = (url, status) => {
    N.count++;
    if (N.first.length < 10) N.first.push({ t: Math.round(performance.now() - t0) / 1000, url: String(url), status });
    if (window.__estuaryTr) window.__estuaryTr('HTTP ' + status + ' ' + url);
  };
  const origFetch = window.fetch;
  window.fetch = function (input, init) {
    const url = typeof input === 'string' ? input : (input && input.url) || String(input);
    return origFetch.call(this, input, init).then((r) => {
      if (!r.ok && r.type !== 'opaque') note(r.url || url, r.status);
      return r;
    }, (err) => {
      if (!(err && err.name === 'AbortError')) note(url, 0);
      throw err;
    });
  };
  const open = XMLHttpRequest.prototype.open;
  XMLHttpRequest.prototype.open = function (method, url, ...rest) {
    this.__estuaryUrl = url;
    if (!this.__estuaryHooked) {
      this.__estuaryHooked = true;
      let aborted = false;
      this.addEventListener('abort', () => { aborted = true; });
      this.addEventListener('loadend', () => {
        if (!aborted && (this.status < 200 || this.status >= 300)) note(this.responseURL || this.__estuaryUrl, this.status);
        aborted = false;
      });
    }
    return open.call(this, method, url, ...rest);
  };
}

// The page. All measuring happens in the page so sampling is not delayed by
// the DevTools round trip; node only polls `window.__estuary`. This function
// is serialized into the page with its config; it must not use anything from
// this module.
function pageMain(cfg) {
  const video = document.getElementById('v');
  const t0 = performance.now();
  const now = window.__estuaryNow = () => (performance.now() - t0) / 1000;
  const round = (x) => (x === null || x === undefined || !Number.isFinite(x)) ? null : Math.round(x * 1000) / 1000;
  const S = window.__estuary = {
    player: cfg.player, playerVersion: null, supported: false,
    firstPlayingAt: null, startCurrentTime: null,
    stalled: false, stallStartedAt: null, stallSeconds: 0, stalls: 0, stallCauses: {},
    waitingEvents: 0, playerStallEvents: 0, seeks: 0,
    errors: [], fatal: [], errorCount: 0, samples: [], levels: [],
    mediaError: null, lastCurrentTime: 0,
    // levelSwitches: the video quality at the playhead changed (dash.js
    // QUALITY_CHANGE_RENDERED, Shaka `mediaqualitychanged`); the first entry
    // is the starting level. levelPlayed: media seconds played per level.
    levelSwitches: [], levelPlayed: {}, switchRequests: 0,
    accountTime: null, accountWall: null, playedSeconds: 0,
    rateMin: null, rateMax: null,
    targetLatency: null, targetLatencySource: null, lowLatencyDetected: null,
    presentationDelay: null, playerStats: null,
    freezes: 0, freezeSeconds: 0,
  };
  const tr = cfg.trace && window.__estuaryTr ? window.__estuaryTr : null;
  const ranges = (r) => { const o = []; if (r) for (let i = 0; i < r.length; i++) o.push(r.start(i).toFixed(3) + '-' + r.end(i).toFixed(3)); return o.join(','); };
  const playingStarted = () => S.firstPlayingAt !== null;

  function startStall(why, at) {
    if (!playingStarted() || S.stalled) return;
    S.stalled = true; S.stallStartedAt = at === undefined ? now() : at; S.stalls++;
    S.stallCauses[why] = (S.stallCauses[why] || 0) + 1;
    if (tr) tr('STALL start (' + why + ') ct=' + video.currentTime.toFixed(3) + ' media=' + ranges(video.buffered));
  }
  function endStall() {
    if (!S.stalled) return;
    S.stalled = false; S.stallSeconds += now() - S.stallStartedAt; S.stallStartedAt = null;
    if (tr) tr('STALL end ct=' + video.currentTime.toFixed(3));
  }
  function pushError(e) {
    S.errorCount++;
    if (S.errors.length < 50) S.errors.push(e);
    if (e.fatal) S.fatal.push(e);
    if (tr) tr('ERROR ' + JSON.stringify(e));
  }
  function noteRate(r) {
    if (!playingStarted() || !(r > 0)) return;
    if (S.rateMin === null || r < S.rateMin) S.rateMin = r;
    if (S.rateMax === null || r > S.rateMax) S.rateMax = r;
  }
  video.addEventListener('playing', () => {
    if (!playingStarted()) {
      S.firstPlayingAt = now(); S.startCurrentTime = video.currentTime;
      S.accountTime = video.currentTime; S.accountWall = now();
      noteRate(video.playbackRate);
      const l = renderedLevel();
      if (l >= 0 && !S.levelSwitches.length) pushLevelSwitch(l);
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
  video.addEventListener('ratechange', () => noteRate(video.playbackRate));
  video.addEventListener('error', () => {
    const me = video.error;
    S.mediaError = me ? { code: me.code, message: me.message } : { code: null, message: 'unknown' };
    pushError({ t: round(now()), type: 'mediaElementError', details: S.mediaError.message || String(S.mediaError.code), fatal: true });
  });
  if (tr) {
    for (const ev of ['waiting', 'playing', 'seeking', 'seeked', 'ratechange', 'resize', 'stalled', 'pause', 'loadedmetadata']) {
      video.addEventListener(ev, () => tr('MEDIA ' + ev + ' ct=' + video.currentTime.toFixed(3) + ' rate=' + video.playbackRate +
        ' size=' + video.videoWidth + 'x' + video.videoHeight + ' rs=' + video.readyState + ' media=' + ranges(video.buffered)));
    }
  }

  // ---- player adapters -------------------------------------------------
  // Each provides: version, levels() -> [{id, height, width, bandwidth,
  // codecs}], currentLevel() (the level being loaded), switchTo(i),
  // latency(), edgeLatency(), playbackRate(), refresh() (target latency etc.).
  let A = null;

  function dashjsAdapter() {
    if (!window.dashjs || !dashjs.MediaPlayer) throw new Error('dash.js did not load');
    const E = dashjs.MediaPlayer.events;
    const player = window.__player = dashjs.MediaPlayer().create();
    const streaming = {
      // Without --low-latency: ignore the ServiceDescription (live delay from
      // suggestedPresentationDelay or 4 segment durations) and no catch-up.
      applyServiceDescription: !!cfg.lowLatency,
      liveCatchup: { enabled: !!cfg.lowLatency },
    };
    if (cfg.targetLatency !== null) streaming.delay = { liveDelay: cfg.targetLatency };
    if (cfg.switchEvery > 0) streaming.abr = { autoSwitchBitrate: { video: false } };
    player.updateSettings({
      debug: { logLevel: cfg.trace ? dashjs.Debug.LOG_LEVEL_DEBUG : dashjs.Debug.LOG_LEVEL_WARNING },
      streaming,
    });
    const fatalCodes = new Set([10, 11, 23, 31, 32, 34, 35]);
    player.on(E.ERROR, (ev) => {
      const err = ev.error;
      const e = { t: round(now()), type: 'dashjs' };
      if (err && typeof err === 'object') {
        e.code = err.code;
        e.details = String(err.message || '').slice(0, 300);
        const d = err.data || {};
        if (d.request && d.request.url) e.url = d.request.url;
        if (d.response && d.response.status !== undefined) e.http_status = d.response.status;
        // The first manifest download failing ends dash.js's attempt; a later
        // MPD refresh failure is retried.
        e.fatal = fatalCodes.has(err.code) || (err.code === 25 && !playingStarted());
      } else {
        e.details = String(err) + (ev.event ? ': ' + (typeof ev.event === 'string' ? ev.event : (ev.event.message || ev.event.id || '')) : '');
        e.fatal = err === 'mediasource' || err === 'capability' || err === 'manifestError';
      }
      pushError(e);
    });
    player.on(E.PLAYBACK_ERROR, (ev) => { if (tr) tr('EV playbackError ' + JSON.stringify(ev.error || null)); });
    // dash.js reports a buffer level at/under its stall threshold; that is a
    // stall only if the playhead really stops, so confirm it shortly after.
    const pending = {};
    player.on(E.BUFFER_EMPTY, (ev) => {
      if (ev.mediaType !== 'video' && ev.mediaType !== 'audio') return;
      if (tr) tr('EV bufferStalled ' + ev.mediaType + ' ct=' + video.currentTime.toFixed(3) + ' media=' + ranges(video.buffered));
      if (!playingStarted() || video.seeking) return;
      S.playerStallEvents++;
      const at = now(), ct = video.currentTime;
      pending[ev.mediaType] = true;
      setTimeout(() => {
        if (!pending[ev.mediaType]) return;
        if (!video.seeking && !video.paused && video.currentTime - ct < 0.05) startStall('bufferStalled', at);
      }, 400);
    });
    player.on(E.BUFFER_LOADED, (ev) => {
      pending[ev.mediaType] = false;
      if (tr) tr('EV bufferLoaded ' + ev.mediaType + ' ct=' + video.currentTime.toFixed(3));
    });
    player.on(E.QUALITY_CHANGE_RENDERED, (ev) => {
      if (ev.mediaType !== 'video' || !ev.newRepresentation) return;
      const i = A.levels().findIndex((l) => l.id === ev.newRepresentation.id);
      if (tr) tr('EV qualityChangeRendered video id=' + ev.newRepresentation.id + ' height=' + ev.newRepresentation.height);
      if (i >= 0) pushLevelSwitch(i);
    });
    player.on(E.PLAYBACK_RATE_CHANGED, (ev) => noteRate(ev.playbackRate));
    if (tr) {
      player.on(E.QUALITY_CHANGE_REQUESTED, (ev) => tr('EV qualityChangeRequested ' + ev.mediaType + ' ' +
        (ev.oldRepresentation ? ev.oldRepresentation.id : '-') + ' -> ' + (ev.newRepresentation ? ev.newRepresentation.id : '-') +
        ' reason=' + JSON.stringify(ev.reason || null)));
      const reqDesc = (r) => r ? (r.mediaType + ' ' + r.type + ' idx=' + r.index + ' t=' + (+r.startTime).toFixed(3) + '+' + (+r.duration).toFixed(3) + ' ' + r.url) : '-';
      player.on(E.FRAGMENT_LOADING_STARTED, (ev) => tr('EV loading ' + reqDesc(ev.request)));
      player.on(E.FRAGMENT_LOADING_COMPLETED, (ev) => tr('EV loaded ' + reqDesc(ev.request) +
        ' bytes=' + (ev.response && ev.response.byteLength) + ' media=' + ranges(video.buffered) + ' ct=' + video.currentTime.toFixed(3)));
      player.on(E.FRAGMENT_LOADING_ABANDONED, (ev) => tr('EV abandoned ' + reqDesc(ev.request)));
      player.on(E.MANIFEST_LOADED, () => tr('EV manifestLoaded'));
      player.on(E.PLAYBACK_SEEKING, (ev) => tr('EV seeking to ' + ev.seekTime));
      player.on(E.PLAYBACK_STALLED, () => tr('EV playbackStalled (media element stalled)'));
    }
    const reps = () => { try { return player.getRepresentationsByType('video') || []; } catch (_) { return []; } };
    const api = {
      version: (() => { try { return player.getVersion(); } catch (_) { return dashjs.Version || null; } })(),
      levels: () => reps().map((r) => ({ id: r.id, height: r.height || null, width: r.width || null,
        bandwidth: r.bandwidth || null, codecs: r.codecs || null })),
      currentLevel: () => {
        let r = null;
        try { r = player.getCurrentRepresentationForType('video'); } catch (_) {}
        return r ? reps().findIndex((x) => x.id === r.id) : -1;
      },
      switchTo: (i) => {
        const l = api.levels()[i];
        if (!l) return false;
        player.setRepresentationForTypeById('video', l.id, true);
        return true;
      },
      latency: () => { try { const x = player.getCurrentLiveLatency(); return x > 0 ? x : null; } catch (_) { return null; } },
      edgeLatency: () => {
        try { const w = player.getDvrWindow(); return w && Number.isFinite(w.end) ? w.end - video.currentTime : null; } catch (_) { return null; }
      },
      playbackRate: () => video.playbackRate,
      refresh: () => {
        try {
          const d = player.getTargetLiveDelay();
          if (d > 0) {
            S.targetLatency = d;
            if (cfg.targetLatency !== null) S.targetLatencySource = 'streaming.delay.liveDelay';
            else {
              let sd = null;
              try {
                const m = player.getManifest();
                const sds = m && m.ServiceDescription;
                const lat = sds && (Array.isArray(sds) ? sds[0] : sds).Latency;
                const l0 = lat && (Array.isArray(lat) ? lat[0] : lat);
                if (l0 && l0.target !== undefined) sd = Number(l0.target) / 1000;
              } catch (_) {}
              S.targetLatencySource = cfg.lowLatency && sd !== null && Math.abs(sd - d) < 0.001 ? 'ServiceDescription' : 'dash.js default (suggestedPresentationDelay or 4 segment durations)';
            }
          }
        } catch (_) {}
        try { if (reps().length) S.lowLatencyDetected = player.getLowLatencyModeEnabled(); } catch (_) {}
      },
    };
    player.initialize(video, cfg.url, true);
    return api;
  }

  function shakaAdapter() {
    if (!window.shaka || !shaka.Player) throw new Error('Shaka Player did not load');
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) throw new Error('Shaka Player: browser not supported');
    if (cfg.trace && shaka.log && shaka.log.setLevel) shaka.log.setLevel(shaka.log.Level.DEBUG);
    const player = window.__player = new shaka.Player();
    const conf = {
      streaming: {
        // Shaka 5 defaults lowLatencyMode to true; set it either way.
        lowLatencyMode: !!cfg.lowLatency,
        observeQualityChanges: true,
      },
    };
    if (cfg.lowLatency) {
      // What Shaka applies itself to streams it detects as LL (an MPD with
      // availabilityTimeOffset), set explicitly so they hold for any stream.
      Object.assign(conf.streaming, {
        inaccurateManifestTolerance: 0, segmentPrefetchLimit: 2, updateIntervalSeconds: 0.1,
        maxDisabledTime: 1, retryParameters: { baseDelay: 100 },
      });
      conf.manifest = { dash: { autoCorrectDrift: false }, retryParameters: { baseDelay: 100 } };
    }
    if (cfg.targetLatency !== null) {
      conf.streaming.liveSync = { enabled: true, targetLatency: cfg.targetLatency };
    }
    if (cfg.switchEvery > 0) conf.abr = { enabled: false };
    player.configure(conf);
    const codeNames = {};
    for (const [k, v] of Object.entries((shaka.util.Error && shaka.util.Error.Code) || {})) codeNames[v] = k;
    const shakaError = (err, fatalAlways) => {
      const e = { t: round(now()), type: 'shaka' };
      if (err && typeof err === 'object' && err.code !== undefined) {
        e.code = err.code;
        e.details = codeNames[err.code] || String(err.code);
        e.category = err.category;
        const data = err.data || [];
        if (err.code === 1001 /* BAD_HTTP_STATUS */) { e.url = data[0]; e.http_status = data[1]; }
        else if (err.code === 1002 /* HTTP_ERROR */ || err.code === 1003 /* TIMEOUT */) { e.url = data[0]; e.http_status = 0; }
        if (data.length && !e.url) e.message = data.map((x) => (x && x.message) || String(x)).join(' ').slice(0, 300);
        e.severity = err.severity;
        e.fatal = !!fatalAlways || err.severity === 2; // CRITICAL
      } else {
        e.details = String((err && err.message) || err).slice(0, 300);
        e.fatal = !!fatalAlways;
      }
      return e;
    };
    const seen = new Set();
    player.addEventListener('error', (ev) => {
      // Shaka dispatches a streaming error before its failure callback runs;
      // for live streams that callback lowers the severity to RECOVERABLE and
      // retries. So classify it a moment later, not in the listener.
      const err = ev.detail;
      const t = round(now());
      setTimeout(() => {
        const e = shakaError(err, false);
        e.t = t;
        if (e.fatal) seen.add(e.code);
        pushError(e);
      }, 0);
    });
    player.addEventListener('buffering', (ev) => {
      if (tr) tr('EV buffering ' + ev.buffering + ' ct=' + video.currentTime.toFixed(3) + ' media=' + ranges(video.buffered));
      if (ev.buffering && playingStarted() && !video.seeking) { S.playerStallEvents++; startStall('buffering'); }
    });
    player.addEventListener('stalldetected', () => {
      if (tr) tr('EV stalldetected ct=' + video.currentTime.toFixed(3));
      if (playingStarted()) { S.playerStallEvents++; startStall('stalldetected'); }
    });
    player.addEventListener('mediaqualitychanged', (ev) => {
      const q = ev.mediaQuality;
      if (tr) tr('EV mediaqualitychanged ' + JSON.stringify(q) + ' position=' + ev.position);
      if (!q || q.contentType !== 'video') return;
      const levels = A.levels();
      let idx = -1;
      const same = levels.map((l, i) => [l, i]).filter(([l]) => l.height === q.height);
      if (same.length === 1) idx = same[0][1];
      else {
        const pool = same.length ? same : levels.map((l, i) => [l, i]);
        let best = Infinity;
        for (const [l, i] of pool) { const d = Math.abs((l.bandwidth || 0) - (q.bandwidth || 0)); if (d < best) { best = d; idx = i; } }
      }
      if (idx >= 0) pushLevelSwitch(idx);
    });
    player.addEventListener('ratechange', () => noteRate(player.getPlaybackRate()));
    if (tr) {
      for (const ev of ['adaptation', 'variantchanged', 'gapjumped', 'manifestupdated', 'loaded', 'trackschanged', 'abrstatuschanged']) {
        player.addEventListener(ev, (e) => tr('EV ' + ev + (e.newTrack ? ' -> ' + e.newTrack.height + 'p ' + e.newTrack.bandwidth : '')));
      }
      player.addEventListener('segmentappended', (e) => tr('EV segmentappended ' + e.contentType + ' ' + (+e.start).toFixed(3) + '-' + (+e.end).toFixed(3) +
        ' media=' + ranges(video.buffered) + ' ct=' + video.currentTime.toFixed(3)));
      const ne = player.getNetworkingEngine();
      if (ne) {
        ne.registerRequestFilter((type, req) => tr('NET request type=' + type + ' ' + (req.uris && req.uris[0])));
        ne.registerResponseFilter((type, res) => tr('NET response type=' + type + ' ' + res.uri + ' status=' + res.status +
          ' bytes=' + (res.data && res.data.byteLength) + ' ms=' + res.timeMs));
      }
    }
    // Video levels: one per video stream (variants are video x audio).
    const videoTracks = () => {
      let tracks = [];
      try { tracks = player.getVariantTracks() || []; } catch (_) {}
      const byId = new Map();
      for (const t of tracks) if (t.videoId !== null && t.videoId !== undefined && !byId.has(t.videoId)) byId.set(t.videoId, t);
      return { tracks, video: [...byId.values()] };
    };
    let manifestInfo = null;
    const api = {
      version: shaka.Player.version || null,
      levels: () => videoTracks().video.map((t) => ({ id: t.videoId, height: t.height || null, width: t.width || null,
        bandwidth: t.videoBandwidth || t.bandwidth || null, codecs: t.videoCodec || null })),
      currentLevel: () => {
        const { tracks, video: v } = videoTracks();
        const a = tracks.find((t) => t.active);
        return a ? v.findIndex((t) => t.videoId === a.videoId) : -1;
      },
      switchTo: (i) => {
        const { tracks, video: v } = videoTracks();
        const want = v[i];
        if (!want) return false;
        const active = tracks.find((t) => t.active);
        const t = tracks.find((x) => x.videoId === want.videoId && (!active || x.audioId === active.audioId)) || want;
        player.selectVariantTrack(t, /* clearBuffer= */ true);
        return true;
      },
      latency: () => {
        try {
          const st = player.getStats();
          if (Number.isFinite(st.playTime)) S.playerStats = { stallsDetected: st.stallsDetected, gapsJumped: st.gapsJumped, bufferingTime: st.bufferingTime,
            playTime: st.playTime, estimatedBandwidth: st.estimatedBandwidth };
          if (Number.isFinite(st.liveLatency) && st.liveLatency > 0) return st.liveLatency;
        } catch (_) {}
        try {
          const d = player.getPresentationStartTimeAsDate();
          if (d && video.currentTime > 0) return Date.now() / 1000 - (d.getTime() / 1000 + video.currentTime);
        } catch (_) {}
        return null;
      },
      edgeLatency: () => { try { const r = player.seekRange(); return Number.isFinite(r.end) ? r.end - video.currentTime : null; } catch (_) { return null; } },
      playbackRate: () => { try { return player.getPlaybackRate(); } catch (_) { return video.playbackRate; } },
      refresh: () => {
        let c = null;
        try { c = player.getConfiguration(); } catch (_) {}
        if (c && c.streaming.liveSync && c.streaming.liveSync.enabled) {
          S.targetLatency = c.streaming.liveSync.targetLatency; S.targetLatencySource = 'streaming.liveSync.targetLatency';
        } else if (manifestInfo && manifestInfo.sdTarget !== null) {
          S.targetLatency = manifestInfo.sdTarget; S.targetLatencySource = 'ServiceDescription';
        }
        if (manifestInfo) {
          S.lowLatencyDetected = manifestInfo.isLowLatency && !!(c && c.streaming.lowLatencyMode);
          S.presentationDelay = manifestInfo.delay;
        }
      },
    };
    (async () => {
      try {
        await player.attach(video);
        await player.load(cfg.url);
        try {
          // getManifest() is deprecated (and warns) but is the only way to
          // see the ServiceDescription and Shaka's presentation delay.
          const m = player.getManifest();
          if (m) {
            const sd = m.serviceDescription;
            manifestInfo = {
              isLowLatency: !!m.isLowLatency,
              sdTarget: sd && sd.targetLatency != null ? sd.targetLatency : null,
              delay: m.presentationTimeline ? m.presentationTimeline.getDelay() : null,
            };
          }
        } catch (_) {}
        readLevels();
        video.play().catch((err) => pushError({ t: round(now()), type: 'play', details: String(err), fatal: false }));
      } catch (err) {
        const e = shakaError(err, true);
        if (!seen.has(e.code)) pushError(e);
      }
    })();
    return api;
  }

  try {
    A = cfg.player === 'shaka' ? shakaAdapter() : dashjsAdapter();
    S.supported = true;
    S.playerVersion = A.version;
  } catch (err) {
    pushError({ t: round(now()), type: 'harness', details: String((err && err.message) || err), fatal: true });
    return;
  }

  const readLevels = () => { const l = A.levels(); if (l.length) S.levels = l; };

  function pushLevelSwitch(idx) {
    const last = S.levelSwitches[S.levelSwitches.length - 1];
    if (last && last.level === idx) return;
    const l = S.levels[idx] || A.levels()[idx];
    S.levelSwitches.push({ t: round(now()), level: idx, height: (l && l.height) || null });
    if (S.levelSwitches.length > 500) S.levelSwitches.splice(0, S.levelSwitches.length - 500);
  }

  // The level on screen: the one whose height the video shows when that
  // identifies a single level, else the level being loaded.
  function renderedLevel() {
    const levels = S.levels.length ? S.levels : A.levels();
    let idx = A.currentLevel();
    const vh = video.videoHeight;
    if (vh && !(levels[idx] && levels[idx].height === vh)) {
      const same = [];
      levels.forEach((l, i) => { if (l.height === vh) same.push(i); });
      if (same.length === 1) idx = same[0];
    }
    return idx;
  }

  // --switch-every: force the next video level round-robin.
  function forceNextLevel() {
    const levels = A.levels();
    const n = levels.length;
    // A request in the last moment of the measured window could not show.
    if (n < 2 || now() - S.firstPlayingAt + 0.25 >= cfg.seconds) return;
    let cur = A.currentLevel();
    if (cur < 0) cur = n - 1;
    const next = (cur + 1) % n;
    try {
      if (A.switchTo(next)) {
        S.switchRequests++;
        if (tr) tr('SWITCH request level ' + cur + ' -> ' + next + ' (' + levels[next].height + 'p)');
      }
    } catch (err) {
      pushError({ t: round(now()), type: 'switch', details: String((err && err.message) || err), fatal: false });
    }
  }

  // Media seconds played (and per level), from currentTime progress; seeks
  // and jumps are not counted. Also called by the node side before reads.
  const account = window.__estuaryAccount = () => {
    if (!playingStarted() || S.accountTime === null) return;
    const ct = video.currentTime, w = now();
    const dt = ct - S.accountTime, dw = w - S.accountWall;
    S.accountTime = ct; S.accountWall = w;
    if (video.seeking || !(dt > 0) || dt > dw * 2 + 0.5) return;
    S.playedSeconds += dt;
    const idx = renderedLevel();
    if (idx < 0) return;
    const l = S.levels[idx];
    const e = S.levelPlayed[idx] || (S.levelPlayed[idx] = { level: idx, height: (l && l.height) || null, seconds: 0 });
    e.seconds += dt;
  };

  // Video freezes: the playhead moves (audio plays) but no new video frame
  // is presented for >= 0.5 s of media time, without a `waiting` stall.
  const FREEZE_MEDIA_SECONDS = 0.5;
  const fz = { frames: -1, changeAt: 0, changeCt: 0, on: false };
  setInterval(() => {
    const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    if (!q) return;
    const f = q.totalVideoFrames, ct = video.currentTime, w = now();
    if (f !== fz.frames || video.seeking || video.paused || S.stalled || !playingStarted() || !video.videoWidth || ct < fz.changeCt) {
      if (fz.on) {
        fz.on = false; S.freezeSeconds += w - fz.changeAt;
        if (tr) tr('FREEZE end ct=' + ct.toFixed(3) + ' frames=' + f);
      }
      fz.frames = f; fz.changeAt = w; fz.changeCt = ct;
      return;
    }
    if (!fz.on && ct - fz.changeCt >= FREEZE_MEDIA_SECONDS) {
      fz.on = true; S.freezes++;
      if (tr) tr('FREEZE start ct=' + ct.toFixed(3) + ' (no new frame since ct=' + fz.changeCt.toFixed(3) + ') frames=' + f);
    }
  }, 100);
  window.__estuaryFreezeOpen = () => (fz.on ? now() - fz.changeAt : 0);

  setInterval(() => {
    const ct = video.currentTime;
    readLevels();
    A.refresh();
    account();
    // A stall flagged by the player alone ends when the playhead moves again.
    if (S.stalled && !video.paused && video.readyState >= 3 && ct > S.lastCurrentTime + 0.1) endStall();
    S.lastCurrentTime = ct;
    const buffered = [];
    for (let i = 0; i < video.buffered.length; i++) buffered.push([round(video.buffered.start(i)), round(video.buffered.end(i))]);
    let ahead = 0;
    for (const [s, e] of buffered) if (s <= ct + 0.05 && e > ct) ahead = e - ct;
    const rate = A.playbackRate();
    if (playingStarted() && !S.stalled) noteRate(rate);
    S.samples.push({
      t: round(now()),
      playing: playingStarted(),
      current_time: round(ct),
      latency: round(A.latency()),
      edge_latency: round(A.edgeLatency()),
      target_latency: round(S.targetLatency),
      playback_rate: round(rate),
      current_level: A.currentLevel(),
      video_height: video.videoHeight,
      buffered,
      buffer_ahead: round(ahead),
      ready_state: video.readyState,
      stalled: S.stalled,
      frames: video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : null,
    });
    if (S.samples.length > 2000) S.samples.splice(0, S.samples.length - 2000);
  }, 500);
}

function pageHtml(cfg, libs) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>estuary ${cfg.player} check</title>
<style>html,body{margin:0;background:#000}video{width:100vw;height:100vh;display:block}</style>
</head><body>
<video id="v" muted playsinline autoplay></video>
${cfg.trace ? `<script>(${pageTraceSetup.toString()})();</script>` : ''}
<script>(${pageNetSetup.toString()})();</script>
${libs.map((src) => `<script src="${src}"></script>`).join('\n')}
<script>(${pageMain.toString()})(${JSON.stringify(cfg).replace(/</g, '\\u003c')});</script>
</body></html>`;
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
  const args = cliArgs(SPEC, usage, ['url', 'player']);
  if (!PLAYERS.includes(args.player)) {
    console.error(`--player must be one of ${PLAYERS.join(', ')}\n${usage()}`);
    process.exit(1);
  }
  const seconds = args.seconds ?? 20;
  if (!(seconds > 0)) {
    console.error(`--seconds must be > 0\n${usage()}`);
    process.exit(1);
  }
  const switchEvery = args['switch-every'] ?? null;
  if (switchEvery !== null && !(switchEvery > 0)) {
    console.error(`--switch-every must be > 0\n${usage()}`);
    process.exit(1);
  }
  const targetLatency = args['target-latency'] ?? null;
  if (targetLatency !== null && !(targetLatency > 0)) {
    console.error(`--target-latency must be > 0\n${usage()}`);
    process.exit(1);
  }
  const lowLatency = !!args['low-latency'];
  const log = (...m) => { if (args.verbose) console.error('[play-dash]', ...m); };

  let target;
  try {
    target = new URL(args.url);
  } catch (e) {
    console.error(`--url: ${e.message}\n${usage()}`);
    process.exit(1);
  }
  const pageUrlForStream = args.proxy ? `/upstream${target.pathname}${target.search}` : target.href;
  // Through the proxy, the page sits in the stream's directory (/upstream/live/{name}/), as the
  // origin's own player page would: URIs the MPD leaves for the page to resolve, such as the
  // ClearKey license URL, resolve there. (EME also needs a page on http://127.0.0.1.)
  const pagePath = args.proxy ? `/upstream${target.pathname.slice(0, target.pathname.lastIndexOf('/') + 1)}` : '/';

  // Player library files, served from node_modules.
  const files = {};
  const libs = [];
  if (args.player === 'dashjs') {
    files['/lib/dash.all.min.js'] = packageFile('dashjs', 'dist/modern/umd/dash.all.min.js');
    files['/lib/dash.all.min.js.map'] = packageFile('dashjs', 'dist/modern/umd/dash.all.min.js.map');
    libs.push('/lib/dash.all.min.js');
  } else {
    // The release build has no debug logging; --trace loads the debug build.
    const base = args.trace ? 'shaka-player.compiled.debug' : 'shaka-player.compiled';
    files[`/lib/${base}.js`] = packageFile('shaka-player', `dist/${base}.js`);
    files[`/lib/${base}.map`] = packageFile('shaka-player', `dist/${base}.map`);
    libs.push(`/lib/${base}.js`);
  }

  const started = Date.now();
  let result = {
    ok: false,
    url: target.href,
    player: args.player,
    player_version: null,
    low_latency: lowLatency,
    target_latency_option: targetLatency,
    switch_every: switchEvery,
    seconds,
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

  // Build the report from a page snapshot.
  const report = (S, outcome) => {
    const playingSamples = S.samples.filter((x) => x.playing);
    const lat = stats(playingSamples.map((x) => x.latency));
    const edge = stats(playingSamples.map((x) => x.edge_latency));
    const last = S.samples[S.samples.length - 1] ?? null;
    const stallSeconds = S.stallSeconds + (S.stalled && S.stallStartedAt !== null ? S.pageNow - S.stallStartedAt : 0);
    const played = S.firstPlayingAt === null ? 0 : S.playedSeconds;
    const out = {
      // 90 % of the window in media time, less what the player's own rate control took (Shaka
      // and dash.js slow to 0.96x to move towards their target latency): a 12 s window at 0.96x
      // with a 0.6 s start plays 10.79 s, measured.
      ok: outcome === 'done' && S.firstPlayingAt !== null && S.fatal.length === 0
        && played >= 0.9 * seconds * Math.min(1, S.rateMin > 0 ? S.rateMin : 1),
      player_version: S.playerVersion,
      played_seconds: round(played),
      wall_seconds: S.firstPlayingAt === null ? 0 : round(S.pageNow - S.firstPlayingAt),
      startup_seconds: round(S.firstPlayingAt),
      stalls: S.stalls,
      stall_seconds: round(stallSeconds),
      stall_causes: S.stallCauses,
      waiting_events: S.waitingEvents,
      player_stall_events: S.playerStallEvents,
      seeks: S.seeks,
      video_freezes: S.freezes,
      video_freeze_seconds: round(S.freezeSeconds + (S.freezeOpen || 0)),
      fatal_errors: S.fatal,
      errors: S.errors.filter((e) => !e.fatal).slice(0, 10),
      error_count: S.errorCount,
      http_errors: S.http ? S.http.count : null,
      http_errors_first: S.http ? S.http.first : [],
      latency_avg: lat.avg,
      latency_min: lat.min,
      latency_max: lat.max,
      latency_last: lat.last,
      target_latency: round(S.targetLatency),
      target_latency_source: S.targetLatencySource,
      edge_latency_avg: edge.avg,
      edge_latency_last: edge.last,
      playback_rate_min: round(S.rateMin),
      playback_rate_max: round(S.rateMax),
      low_latency_detected: S.lowLatencyDetected,
      levels: S.levels.map((l) => ({ height: l.height, width: l.width, bandwidth: l.bandwidth, codecs: l.codecs })),
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
      harness_seconds: round((Date.now() - started) / 1000, 1),
    };
    if (args.player === 'shaka') {
      out.presentation_delay = round(S.presentationDelay);
      out.shaka_stats = S.playerStats;
    }
    if (args.samples) out.samples = S.samples;
    return out;
  };

  let server;
  let browser;
  let lastS = null;
  const cleanup = async () => {
    if (browser) await browser.close();
    if (server) server.close();
  };
  // Hard limit: never run longer than seconds + 40 s.
  const hard = setTimeout(async () => {
    let extra = {};
    if (lastS) { try { extra = report(lastS, 'timeout'); } catch (_) {} }
    finish({ ...extra, ok: false, timeout: true, harness_error: `no result within ${seconds + 40} s` }, 1);
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
    const cfg = {
      url: pageUrlForStream, player: args.player, lowLatency, targetLatency, seconds,
      switchEvery: switchEvery ?? 0, trace: !!args.trace,
    };
    ({ server } = await startServer({
      pages: { [pagePath]: pageHtml(cfg, libs) },
      files,
      upstream: args.proxy ? target.origin : null,
    }).then((s) => { log('page server at', s.origin); pageOrigin = s.origin; return s; }));
    browser = await launchChromium({ executablePath: args.chromium });
    const { page } = browser;
    page.on('console', (m) => log(`console.${m.type()}:`, m.text()));
    page.on('pageerror', (e) => log('pageerror:', e.message));
    await page.goto(`${pageOrigin}${pagePath}`, { waitUntil: 'load', timeout: 30_000 });

    // Give up on a stream that never starts a little before the hard limit,
    // so the report still carries the errors seen.
    const noStartLimit = seconds + 30;
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
          freezeOpen: window.__estuaryFreezeOpen ? window.__estuaryFreezeOpen() : 0,
          http: window.__estuaryHttp || null,
          video: {
            width: v.videoWidth, height: v.videoHeight, currentTime: v.currentTime,
            readyState: v.readyState, paused: v.paused,
            frames: q ? q.totalVideoFrames : null, dropped: q ? q.droppedVideoFrames : null,
            audioBytes: typeof v.webkitAudioDecodedByteCount === 'number' ? v.webkitAudioDecodedByteCount : null,
          },
        };
      });
      if (!S) continue;
      // Current level for the report (the page object can't be cloned).
      S.currentLevel = S.samples.length ? S.samples[S.samples.length - 1].current_level : null;
      lastS = S;
      if (S.fatal.length) { outcome = 'fatal'; break; }
      if (S.firstPlayingAt !== null && S.pageNow - S.firstPlayingAt >= seconds) break;
      if (S.firstPlayingAt === null && S.pageNow >= noStartLimit) { outcome = 'timeout'; break; }
    }
    if (args.screenshot) {
      await page.screenshot({ path: args.screenshot }).catch((e) => log('screenshot failed:', e.message));
    }
    result = { ...result, ...report(S, outcome) };
    if (args.trace) {
      const lines = await page.evaluate(() => window.__estuaryTrace || []);
      fs.writeFileSync(args.trace, lines.join('\n') + '\n');
    }
    if (!args.proxy && S.fatal.some((e) => e.http_status === 0)) {
      console.error('[play-dash] status 0: server down, or it sends no CORS headers (try --proxy)');
    }
    clearTimeout(hard);
    await cleanup();
    if (outcome === 'timeout') {
      process.exit(finish({ timeout: true, harness_error: `playback did not start within ${noStartLimit} s` }, 1));
    }
    process.exit(finish({}, 0));
  } catch (e) {
    clearTimeout(hard);
    console.error('[play-dash] harness failure:', e && e.stack ? e.stack : e);
    finish({ ok: false, harness_error: String(e && e.message ? e.message : e) }, 1);
    await Promise.race([cleanup(), sleep(5000)]);
    process.exit(1);
  }
}

main();
