#!/usr/bin/env node
// Publish Chromium's fake camera and microphone over WHIP (RFC 9725) and
// report what the sender did, as one JSON line on stdout.
//
//   node publish-whip.mjs --url 'http://127.0.0.1:8080/live/demo/whip'
//       [--key KEY] [--seconds 20] [--codec h264|vp8]
//
// The page (served by the harness on http://127.0.0.1) opens getUserMedia
// (Chromium's --use-fake-device-for-media-stream: a moving test picture and a
// beep), POSTs a sendonly offer with `Authorization: Bearer KEY`, applies the
// answer and publishes for --seconds, preferring --codec (default h264) with
// setCodecPreferences. Then it DELETEs the session (the answer's Location).
//
// Output: ok (connected and frames sent), url, status (the POST's), location,
// error, connection_state, codec (the video codec sent), frames_encoded,
// frames_sent, keyframes_encoded, pli_count (keyframe requests from the
// origin), nack_count, audio_packets_sent, delete_status.

import { cliArgs, launchChromium, startServer, sleep } from './harness.mjs';

const SPEC = { url: 'string', key: 'string', seconds: 'number', codec: 'string', chromium: 'string', verbose: 'boolean', help: 'boolean' };

function usage() {
  return 'usage: node publish-whip.mjs --url WHIP_URL [--key KEY] [--seconds N] [--codec h264|vp8] [--chromium PATH] [--verbose]';
}

const PAGE = `<!doctype html><html><body><script>
window.publish = async (url, key, codec) => {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 30 }, audio: true });
  const pc = new RTCPeerConnection();
  window.pc = pc;
  for (const track of media.getTracks()) {
    const t = pc.addTransceiver(track, { direction: 'sendonly' });
    if (track.kind === 'video') {
      const caps = RTCRtpSender.getCapabilities('video').codecs;
      const wanted = caps.filter((c) => c.mimeType.toLowerCase() === 'video/' + codec);
      t.setCodecPreferences([...wanted, ...caps.filter((c) => !wanted.includes(c))]);
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); else { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 2000); } });
  const headers = { 'Content-Type': 'application/sdp' };
  if (key) headers.Authorization = 'Bearer ' + key;
  const res = await fetch(url, { method: 'POST', headers, body: pc.localDescription.sdp });
  const body = await res.text();
  if (res.status !== 201) return { status: res.status, error: body };
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  window.location_ = new URL(res.headers.get('Location'), url).href;
  return { status: res.status, location: res.headers.get('Location') };
};
window.sample = async () => {
  const out = { state: window.pc ? window.pc.connectionState : null, video: null, audio: null, codec: null };
  if (!window.pc) return out;
  const stats = await window.pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'outbound-rtp' && s.kind === 'video') out.video = s;
    if (s.type === 'outbound-rtp' && s.kind === 'audio') out.audio = s;
  });
  if (out.video && out.video.codecId) out.codec = stats.get(out.video.codecId)?.mimeType ?? null;
  return JSON.parse(JSON.stringify(out));
};
window.unpublish = async (key) => {
  const headers = key ? { Authorization: 'Bearer ' + key } : {};
  const res = await fetch(window.location_, { method: 'DELETE', headers });
  window.pc.close();
  return res.status;
};
</script></body></html>`;

const args = cliArgs(SPEC, usage);
const seconds = args.seconds ?? 20;
const { server, origin } = await startServer({ pages: { '/': PAGE } });
const browser = await launchChromium({
  executablePath: args.chromium,
  extraArgs: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
});
const result = { ok: false, url: args.url };
try {
  await browser.page.goto(`${origin}/`);
  const posted = await browser.page.evaluate(([u, k, c]) => window.publish(u, k, c), [args.url, args.key ?? null, args.codec ?? 'h264']);
  Object.assign(result, posted);
  if (posted.status === 201) {
    const t0 = Date.now();
    let last = null;
    while (Date.now() - t0 < seconds * 1000) {
      await sleep(500);
      last = await browser.page.evaluate(() => window.sample());
      if (args.verbose) console.error(JSON.stringify(last));
    }
    const v = last?.video ?? {};
    result.connection_state = last?.state ?? null;
    result.codec = last?.codec ?? null;
    result.frames_encoded = v.framesEncoded ?? 0;
    result.frames_sent = v.framesSent ?? 0;
    result.keyframes_encoded = v.keyFramesEncoded ?? 0;
    result.pli_count = v.pliCount ?? 0;
    result.nack_count = v.nackCount ?? 0;
    result.audio_packets_sent = last?.audio?.packetsSent ?? 0;
    result.delete_status = await browser.page.evaluate((k) => window.unpublish(k), args.key ?? null);
    result.ok = result.connection_state === 'connected' && result.frames_sent > 0;
  }
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
  server.close();
}
// Exit once the report is out: the page server's idle keep-alive connections would hold the
// process for seconds more.
process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
