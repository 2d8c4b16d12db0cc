#!/usr/bin/env node
// Play a stream over WHEP (draft-ietf-wish-whep) in headless Chromium and report
// what the RTCPeerConnection received, as one JSON line on stdout.
//
//   node play-whep.mjs --url 'http://127.0.0.1:8080/t/{token}/live/demo/whep'
//       [--seconds 10] [--hls HLS_URL] [--latency] [--loss 0.02]
//
// The page is served by the harness on http://127.0.0.1 (WebRTC needs an http
// page); it POSTs a recvonly offer (video and audio) to --url, applies the
// answer, plays the tracks in a <video> and samples getStats() every 500 ms.
//
// --hls URL   also play URL with hls.js (lowLatencyMode) in a second <video> on
//             the same page, at the same time.
// --latency   read the glass-to-glass latency of every rendered frame: the
//             publisher draws its wall clock (Unix ms mod 2^24) into the top
//             left of each frame as 24 blocks (bit k: block k, 24x24 px of a
//             640 px wide picture, white = 1); at each requestVideoFrameCallback
//             the page reads the blocks back from the frame about to be shown and
//             subtracts them from its expected display time. Frames shown in the
//             first 3 s after the first (the catch-up) are left out.
// --loss P    put a UDP relay between the browser and the origin that drops a
//             fraction P of the datagrams going to the browser (the answer's
//             candidates are rewritten to the relay's port).
// --tcp-only  remove the answer's UDP candidates: ICE over TCP (RFC 6544) or
//             nothing, as on a network that blocks UDP.
// --audio-only  a stream without video: the window starts at the first audio
//             packet instead of the first decoded frame.
// --events    open a data channel ("events") in the offer and report the timed
//             events the origin sends over it: each message is
//             {"rtp_timestamp", "event": {...}}, sent with the video frame it belongs
//             to; the page raises it when the frame with that RTP timestamp is shown
//             (requestVideoFrameCallback's rtpTimestamp). Per event: id, kind,
//             arrived_ms (Unix ms), shown_ms (when its frame was shown, Unix ms;
//             null if never), lead_ms (shown − arrived: how long the page held it),
//             frame_rtp (the RTP timestamp of the frame it was raised on: the first
//             requestVideoFrameCallback at or past its own, which the callback may
//             skip when the page is busy), exact (frame_rtp is its own), code (the
//             clock code drawn into that frame, Unix ms mod 2^24; needs the
//             --latency publisher) and event (the origin's JSON).
//
// Output: ok (frames decoded during the window and no error), url, status
// (the POST's), location, error, connection_state, frames_decoded,
// frames_received, decoded_in_window, packets_lost, freezes (freezeCount),
// nack_count, pli_count, audio_packets, audio_samples, width, height,
// first_frame_ms (POST to the first frame shown), transport (the selected
// candidate pair's protocol: udp or tcp), latency_ms {webrtc, hls}
// ({n, p50, p95, max, unreadable}), hls {frames, stalls}, relay {forwarded,
// dropped}, events (with --events).

import dgram from 'node:dgram';
import { READ_CODE_JS, cliArgs, launchChromium, packageFile, startServer, sleep } from './harness.mjs';

const SPEC = {
  url: 'string', seconds: 'number', hls: 'string', latency: 'boolean', loss: 'number', 'tcp-only': 'boolean',
  'audio-only': 'boolean', events: 'boolean',
  chromium: 'string', verbose: 'boolean', help: 'boolean',
};

function usage() {
  return 'usage: node play-whep.mjs --url WHEP_URL [--seconds N] [--hls HLS_URL] [--latency] [--loss P] [--chromium PATH] [--verbose]';
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><script src="/lib/hls.min.js"></script></head>
<body><video id=v autoplay muted playsinline></video><video id=h autoplay muted playsinline></video><script>
const latency = { webrtc: [], hls: [], unreadable: { webrtc: 0, hls: 0 } };
window.latency = latency;
window.firstShown = null;
let measureFrom = null;
${READ_CODE_JS}
function watch(video, kind) {
  const canvas = document.createElement('canvas');
  const cb = (now, meta) => {
    const shown = performance.timeOrigin + meta.expectedDisplayTime;
    if (kind === 'webrtc' && window.timedEvents) {
      // Raise every event whose frame this is (or that an earlier frame passed: RTP time wraps at 2^32).
      for (const e of window.timedEvents) {
        if (e.shown_ms === null && ((meta.rtpTimestamp - e.rtp_timestamp) >>> 0) < 2 ** 31) {
          e.shown_ms = Math.round(shown);
          e.lead_ms = e.shown_ms - e.arrived_ms;
          e.frame_rtp = meta.rtpTimestamp;
          e.exact = meta.rtpTimestamp === e.rtp_timestamp;
          e.code = video.videoWidth > 0 ? readCode(video, canvas) : null;
        }
      }
    }
    if (kind === 'webrtc' && window.firstShown === null) {
      window.firstShown = Date.now();
      measureFrom = shown + 3000;
    }
    if (window.measureLatency && measureFrom !== null && shown >= measureFrom && video.videoWidth > 0) {
      const code = readCode(video, canvas);
      const mod = 2 ** 24;
      const age = code === null ? null : (((shown - code) % mod) + mod) % mod;
      if (age === null || age > 60000) latency.unreadable[kind] += 1;
      else latency[kind].push(age);
    }
    video.requestVideoFrameCallback(cb);
  };
  video.requestVideoFrameCallback(cb);
}
window.whep = async (url, relayPort, tcpOnly, events) => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  if (events) {
    window.timedEvents = [];
    const dc = pc.createDataChannel('events');
    dc.onmessage = (m) => {
      const msg = JSON.parse(m.data);
      window.timedEvents.push({ id: msg.event.id, kind: msg.event.kind, rtp_timestamp: msg.rtp_timestamp, arrived_ms: Date.now(), shown_ms: null, lead_ms: null, exact: null, code: null, event: msg.event });
    };
  }
  const stream = new MediaStream();
  const video = document.getElementById('v');
  pc.ontrack = (e) => { stream.addTrack(e.track); video.srcObject = stream; };
  watch(video, 'webrtc');
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); else { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 2000); } });
  window.postedAt = Date.now();
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
  let body = await res.text();
  if (res.status !== 201) return { status: res.status, error: body };
  const candidates = body.split('\\r\\n').filter((l) => l.startsWith('a=candidate'));
  if (tcpOnly) body = body.split('\\r\\n').filter((l) => !/^a=candidate:\\S+ \\d+ udp /i.test(l)).join('\\r\\n');
  if (relayPort) body = body.replace(/^(a=candidate:\\S+ \\d+ udp \\d+ \\S+ )(\\d+)/gmi, '$1' + relayPort);
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  return { status: res.status, location: res.headers.get('Location'), candidates };
};
window.hls = (url) => {
  const video = document.getElementById('h');
  window.hlsStalls = 0;
  const h = new Hls({ lowLatencyMode: true });
  h.on(Hls.Events.ERROR, (_, d) => { if (d.details === 'bufferStalledError') window.hlsStalls += 1; });
  h.loadSource(url);
  h.attachMedia(video);
  watch(video, 'hls');
};
window.sample = async () => {
  const out = { state: window.pc ? window.pc.connectionState : null, video: null, audio: null, transport: null };
  if (!window.pc) return out;
  const stats = await window.pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') out.video = s;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audio = s;
    if (s.type === 'transport' && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      const local = pair && stats.get(pair.localCandidateId);
      if (local) out.transport = local.protocol;
    }
  });
  out.currentTime = document.getElementById('v').currentTime;
  const h = document.getElementById('h');
  out.hls = { frames: h.getVideoPlaybackQuality ? h.getVideoPlaybackQuality().totalVideoFrames : 0, stalls: window.hlsStalls ?? 0 };
  return JSON.parse(JSON.stringify(out));
};
</script></body></html>`;

/** A UDP relay: browser <-> relay <-> origin, dropping `loss` of the datagrams to the browser. */
async function startRelay(loss) {
  const down = dgram.createSocket('udp4');
  const up = dgram.createSocket('udp4');
  const state = { forwarded: 0, dropped: 0, browser: null, origin: null };
  down.on('message', (msg, rinfo) => {
    state.browser = rinfo;
    if (state.origin) up.send(msg, state.origin.port, state.origin.address);
  });
  up.on('message', (msg) => {
    if (!state.browser) return;
    if (Math.random() < loss) { state.dropped += 1; return; }
    state.forwarded += 1;
    down.send(msg, state.browser.port, state.browser.address);
  });
  await new Promise((r) => down.bind(0, '127.0.0.1', r));
  await new Promise((r) => up.bind(0, '127.0.0.1', r));
  return { state, port: down.address().port, close: () => { down.close(); up.close(); } };
}

function summary(xs) {
  if (!xs.length) return { n: 0 };
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => Math.round(s[Math.min(s.length - 1, Math.floor(p * s.length))]);
  return { n: s.length, p50: q(0.5), p95: q(0.95), max: Math.round(s[s.length - 1]) };
}

const args = cliArgs(SPEC, usage);
const seconds = args.seconds ?? 10;
const { server, origin } = await startServer({
  pages: { '/': PAGE },
  files: { '/lib/hls.min.js': packageFile('hls.js', 'dist/hls.min.js') },
});
const relay = args.loss ? await startRelay(args.loss) : null;
const launchAt = Date.now();
const browser = await launchChromium({ executablePath: args.chromium });
const result = { ok: false, url: args.url, timing_ms: { launch: Date.now() - launchAt } };
try {
  await browser.page.goto(`${origin}/`);
  if (args.latency) await browser.page.evaluate(() => { window.measureLatency = true; });
  if (args.hls) await browser.page.evaluate((u) => window.hls(u), args.hls);
  const posted = await browser.page.evaluate(([u, p, t, e]) => window.whep(u, p, t, e), [args.url, relay?.port ?? null, !!args['tcp-only'], !!args.events]);
  if (relay && posted.candidates?.length) {
    const m = posted.candidates[0].match(/ udp \d+ (\S+) (\d+) typ/);
    if (m) relay.state.origin = { address: m[1], port: Number(m[2]) };
  }
  delete posted.candidates;
  Object.assign(result, posted);
  result.timing_ms.posted = Date.now() - launchAt;
  if (posted.status === 201) {
    const t0 = Date.now();
    let first = null;
    let last = null;
    while (Date.now() - t0 < (seconds + 10) * 1000) {
      await sleep(500);
      last = await browser.page.evaluate(() => window.sample());
      if (args.verbose) console.error(JSON.stringify(last));
      const started = args['audio-only'] ? (last.audio?.packetsReceived ?? 0) > 0 : (last.video?.framesDecoded ?? 0) > 0;
      if (!first && started) first = { at: Date.now(), s: last };
      if (first && Date.now() - first.at >= seconds * 1000) break;
    }
    result.timing_ms.window_end = Date.now() - launchAt;
    const v = last?.video ?? {};
    result.connection_state = last?.state ?? null;
    result.transport = last?.transport ?? null;
    result.frames_decoded = v.framesDecoded ?? 0;
    result.frames_received = v.framesReceived ?? 0;
    result.packets_lost = v.packetsLost ?? 0;
    result.freezes = v.freezeCount ?? 0;
    result.nack_count = v.nackCount ?? 0;
    result.pli_count = v.pliCount ?? 0;
    result.width = v.frameWidth ?? null;
    result.height = v.frameHeight ?? null;
    result.audio_packets = last?.audio?.packetsReceived ?? 0;
    result.audio_samples = last?.audio?.totalSamplesReceived ?? 0;
    result.decoded_in_window = first ? (v.framesDecoded ?? 0) - (first.s.video?.framesDecoded ?? 0) : 0;
    result.played_seconds = first ? (last.currentTime - first.s.currentTime) : 0;
    const page = await browser.page.evaluate(() => ({ latency: window.latency, firstShown: window.firstShown, postedAt: window.postedAt, events: window.timedEvents ?? null }));
    if (args.events) result.events = page.events;
    result.first_frame_ms = page.firstShown === null ? null : page.firstShown - page.postedAt;
    if (args.latency) {
      result.latency_ms = {
        webrtc: { ...summary(page.latency.webrtc), unreadable: page.latency.unreadable.webrtc },
        hls: { ...summary(page.latency.hls), unreadable: page.latency.unreadable.hls },
      };
    }
    if (args.hls) result.hls = last?.hls ?? null;
    result.ok = args['audio-only'] ? result.audio_packets > 0 : result.decoded_in_window > 0;
  }
} catch (e) {
  result.error = String(e);
} finally {
  if (relay) { result.relay = { forwarded: relay.state.forwarded, dropped: relay.state.dropped }; relay.close(); }
  await browser.close();
  server.close();
  result.timing_ms.closed = Date.now() - launchAt;
}
// Exit once the report is out: the page server's idle keep-alive connections would hold the
// process for seconds more.
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
