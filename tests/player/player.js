// Plays ?src= (a signed master playlist on the edge) with hls.js; the test reads
// video.currentTime and window.playerErrors.
"use strict";
window.playerErrors = [];
const src = new URLSearchParams(location.search).get("src");
const video = document.getElementById("video");
const state = document.getElementById("state");
if (!window.Hls || !Hls.isSupported()) {
  window.playerErrors.push("hls.js not supported here (no MediaSource)");
} else {
  const hls = new Hls();
  hls.on(Hls.Events.ERROR, (_, d) => window.playerErrors.push(d.details + (d.fatal ? " (fatal)" : "")));
  hls.on(Hls.Events.MANIFEST_PARSED, () => { state.textContent = "playing"; video.play().catch(e => window.playerErrors.push("play: " + e)); });
  hls.loadSource(src);
  hls.attachMedia(video);
}
