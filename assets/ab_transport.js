// One transport for the blind A/B pair: switch sides at the same playback position.
// Keys: Space plays/pauses, 1 / A / Left arrow selects the left side, 2 / B / Right arrow the right.
// An optional loop region (seconds) repeats a passage. Plays and pauses are reported to the
// server through hidden buttons, so "both sides played" and listening times stay server-side.
(() => {
  const state = { side: "left", audio: {}, urls: {}, playing: false };
  window.abTransport = state;

  const $ = (selector) => document.querySelector(selector);
  const fileUrl = (side) => {
    const link = $(`#${side}-player a.download-link`);
    return link ? link.href : null;
  };
  const report = (side, what) => {
    const button = $(`#ab-${what}-${side}`);
    if (button) button.click();
  };
  const current = () => state.audio[state.side];

  function ensureLoaded() {
    for (const side of ["left", "right"]) {
      const url = fileUrl(side);
      if (url && state.urls[side] !== url) {
        if (state.audio[side]) state.audio[side].pause();
        const audio = new Audio(url);
        audio.preload = "auto";
        audio.addEventListener("timeupdate", onTime);
        audio.addEventListener("ended", () => { if (audio === current()) pause(); });
        state.urls[side] = url;
        state.audio[side] = audio;
        state.playing = false;
        state.side = "left";
      }
    }
    return Boolean(state.audio.left && state.audio.right);
  }

  function loopRegion() {
    const on = $("#ab-loop-on input[type=checkbox]");
    if (!on || !on.checked) return null;
    const start = parseFloat(($("#ab-loop-start input") || {}).value);
    const end = parseFloat(($("#ab-loop-end input") || {}).value);
    return Number.isFinite(start) && Number.isFinite(end) && end > start ? { start, end } : null;
  }

  function onTime(event) {
    if (event.target !== current()) return;
    const loop = loopRegion();
    if (loop && event.target.currentTime >= loop.end) event.target.currentTime = loop.start;
    render();
  }

  function play() {
    if (!ensureLoaded()) return;
    const audio = current();
    const loop = loopRegion();
    if (loop && (audio.currentTime < loop.start || audio.currentTime >= loop.end)) audio.currentTime = loop.start;
    audio.play();
    state.playing = true;
    report(state.side, "play");
    render();
  }

  function pause() {
    const audio = current();
    if (audio) audio.pause();
    if (state.playing) report(state.side, "pause");
    state.playing = false;
    render();
  }

  function select(side) {
    if (!ensureLoaded() || side === state.side) return;
    const from = current();
    const position = from.currentTime;
    const wasPlaying = state.playing;
    if (wasPlaying) {
      from.pause();
      report(state.side, "pause");
    }
    state.side = side;
    const to = current();
    to.currentTime = position;
    if (wasPlaying) {
      to.play();
      report(side, "play");
    }
    render();
  }

  function render() {
    const status = $("#ab-status");
    const audio = current();
    if (!status) return;
    const label = state.side === "left" ? "Left" : "Right";
    const position = audio ? audio.currentTime.toFixed(2) : "0.00";
    status.textContent = `${state.playing ? "Playing" : "Paused"}: ${label} at ${position} s`;
    for (const side of ["left", "right"]) {
      const button = $(`#ab-${side}`);
      if (button) button.classList.toggle("ab-active", side === state.side);
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.id === "ab-toggle") (state.playing ? pause() : play());
    else if (button.id === "ab-left") select("left");
    else if (button.id === "ab-right") select("right");
    else if (button.id.startsWith("vote-") && state.playing) pause();
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select")) return;
    const transport = $("#ab-transport");
    if (!transport || transport.offsetParent === null) return;  // only while the Listen tab shows
    if (event.key === " ") {
      event.preventDefault();
      state.playing ? pause() : play();
    } else if (["1", "a", "A", "ArrowLeft"].includes(event.key)) select("left");
    else if (["2", "b", "B", "ArrowRight"].includes(event.key)) select("right");
  });
})();
