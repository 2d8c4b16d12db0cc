#!/usr/bin/env node
// Play a stream over WHEP (draft-ietf-wish-whep) in headless Chromium and report
// what the RTCPeerConnection received, as one JSON line on stdout.
//
//   node play-whep.mjs --url 'http://127.0.0.1:8080/t/{token}/live/demo/whep' [--seconds 10]
//
// The page is served by the harness on http://127.0.0.1 (WebRTC needs an http
// page); it POSTs a recvonly offer (video and audio) to --url, applies the
// answer, plays the tracks in a <video> and samples getStats() every 500 ms.
//
// Output: ok (frames decoded during the window and no error), url, status
// (the POST's), location, error, connection_state, frames_decoded,
// frames_received, packets_lost, freezes (freezeCount), nack_count,
// audio_packets, width, height, played_seconds.

import { cliArgs, launchChromium, startServer, sleep } from './harness.mjs';

const SPEC = { url: 'string', seconds: 'number', chromium: 'string', verbose: 'boolean', help: 'boolean' };

function usage() {
  return 'usage: node play-whep.mjs --url WHEP_URL [--seconds N] [--chromium PATH] [--verbose]';
}

const PAGE = `<!doctype html><html><body><video id=v autoplay muted playsinline></video><script>
window.whep = async (url) => {
  const pc = new RTCPeerConnection();
  window.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.ontrack = (e) => { stream.addTrack(e.track); document.getElementById('v').srcObject = stream; };
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await new Promise((r) => { if (pc.iceGatheringState === 'complete') r(); else { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(); setTimeout(r, 2000); } });
  const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp });
  const body = await res.text();
  if (res.status !== 201) return { status: res.status, error: body };
  await pc.setRemoteDescription({ type: 'answer', sdp: body });
  return { status: res.status, location: res.headers.get('Location') };
};
window.sample = async () => {
  const out = { state: window.pc ? window.pc.connectionState : null, video: null, audio: null };
  if (!window.pc) return out;
  const stats = await window.pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') out.video = s;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audio = s;
  });
  out.currentTime = document.getElementById('v').currentTime;
  return JSON.parse(JSON.stringify(out));
};
</script></body></html>`;

const args = cliArgs(SPEC, usage);
const seconds = args.seconds ?? 10;
const { server, origin } = await startServer({ pages: { '/': PAGE } });
const browser = await launchChromium({ executablePath: args.chromium });
const result = { ok: false, url: args.url };
try {
  await browser.page.goto(`${origin}/`);
  const posted = await browser.page.evaluate((u) => window.whep(u), args.url);
  Object.assign(result, posted);
  if (posted.status === 201) {
    const t0 = Date.now();
    let first = null;
    let last = null;
    while (Date.now() - t0 < (seconds + 10) * 1000) {
      await sleep(500);
      last = await browser.page.evaluate(() => window.sample());
      if (args.verbose) console.error(JSON.stringify(last));
      if (!first && last.video && last.video.framesDecoded > 0) first = { at: Date.now(), s: last };
      if (first && Date.now() - first.at >= seconds * 1000) break;
    }
    const v = last?.video ?? {};
    result.connection_state = last?.state ?? null;
    result.frames_decoded = v.framesDecoded ?? 0;
    result.frames_received = v.framesReceived ?? 0;
    result.packets_lost = v.packetsLost ?? 0;
    result.freezes = v.freezeCount ?? 0;
    result.nack_count = v.nackCount ?? 0;
    result.width = v.frameWidth ?? null;
    result.height = v.frameHeight ?? null;
    result.audio_packets = last?.audio?.packetsReceived ?? 0;
    result.decoded_in_window = first ? (v.framesDecoded ?? 0) - (first.s.video.framesDecoded ?? 0) : 0;
    result.played_seconds = first ? (last.currentTime - first.s.currentTime) : 0;
    result.ok = result.decoded_in_window > 0;
  }
} catch (e) {
  result.error = String(e);
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
