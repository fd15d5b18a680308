// The A/B transport: the only way the Listen tab plays sound.
//
// Each trial arrives as a ticket (#ab-ticket .ab-ticket: a random trial id and two single-use
// links). Both sides are fetched once and decoded into memory; one Web Audio source plays at a
// time, and switching sides starts the other at the same position with a 5 ms crossfade. The
// transport counts how long each side has played (on the audio clock) and opens the vote buttons
// once both reached the minimum the ticket states; the vote sends that count to the server,
// which checks it against its own clock. Keys: Space plays/pauses, 1 / A / Left arrow plays the
// left side, 2 / B / Right arrow the right, L toggles the loop.
(() => {
  const FADE_S = 0.005;
  const SIDES = ["left", "right"];
  const state = {
    trial: null, buffers: null, duration: 0, required: 0, side: "left", playing: false,
    source: null, gain: null, offset: 0, startedAt: 0, lastTick: 0, heard: { left: 0, right: 0 },
    message: "Press Start listening.", context: null, loop: null,
  };
  const $ = (selector) => document.querySelector(selector);

  function context() {
    if (!state.context) {
      const Context = window.AudioContext || window.webkitAudioContext;
      try {
        state.context = new Context({ sampleRate: 44100 });
      } catch (error) {
        state.context = new Context();
      }
    }
    return state.context;
  }

  async function fetchAndDecode(url) {
    const response = await fetch(url, { cache: "no-store", credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return context().decodeAudioData(await response.arrayBuffer());
  }

  function loopRegion() {
    const on = $("#ab-loop");
    if (!on || !on.checked || !state.buffers) return null;
    const start = Math.max(0, parseFloat(($("#ab-loop-start") || {}).value));
    const end = Math.min(state.duration, parseFloat(($("#ab-loop-end") || {}).value));
    return Number.isFinite(start) && Number.isFinite(end) && end - start >= 0.05 ? { start, end } : null;
  }

  function position() {
    if (!state.playing) return state.offset;
    const at = state.offset + (context().currentTime - state.startedAt);
    const loop = state.loop;
    if (loop && at >= loop.end) return loop.start + ((at - loop.start) % (loop.end - loop.start));
    return Math.min(at, state.duration);
  }

  function account() {
    if (!state.playing) return;
    const now = context().currentTime;
    state.heard[state.side] += Math.max(0, now - state.lastTick);
    state.lastTick = now;
  }

  function startSource(side, at) {
    const ctx = context();
    const source = ctx.createBufferSource();
    const gain = ctx.createGain();
    source.buffer = state.buffers[side];
    state.loop = loopRegion();
    if (state.loop) {
      if (at < state.loop.start || at >= state.loop.end) at = state.loop.start;
      source.loop = true;
      source.loopStart = state.loop.start;
      source.loopEnd = state.loop.end;
    }
    gain.gain.setValueAtTime(0, ctx.currentTime);
    gain.gain.linearRampToValueAtTime(1, ctx.currentTime + FADE_S);
    source.connect(gain).connect(ctx.destination);
    source.onended = () => {
      if (source !== state.source) return;
      account();
      state.playing = false;
      state.source = null;
      state.offset = 0;
      render();
    };
    source.start(0, at);
    state.source = source;
    state.gain = gain;
    state.offset = at;
    state.startedAt = ctx.currentTime;
    state.lastTick = ctx.currentTime;
  }

  function stopSource() {
    const { source, gain } = state;
    state.source = null;
    if (!source) return;
    const ctx = context();
    gain.gain.cancelScheduledValues(ctx.currentTime);
    gain.gain.setValueAtTime(gain.gain.value, ctx.currentTime);
    gain.gain.linearRampToValueAtTime(0, ctx.currentTime + FADE_S);
    source.onended = null;
    source.stop(ctx.currentTime + FADE_S);
  }

  function play() {
    if (!state.buffers || state.playing) return;
    context().resume();
    const at = state.offset >= state.duration ? 0 : state.offset;
    startSource(state.side, at);
    state.playing = true;
    render();
  }

  function pause() {
    if (!state.playing) return;
    account();
    state.offset = position();
    stopSource();
    state.playing = false;
    render();
  }

  function select(side, andPlay) {
    if (!state.buffers) return;
    if (side !== state.side) {
      if (state.playing) {
        account();
        const at = position();
        stopSource();
        state.side = side;
        startSource(side, at);
      } else {
        state.side = side;
      }
    }
    if (andPlay) play();
    render();
  }

  function restartHere() {
    if (!state.playing) return;
    account();
    const at = position();
    stopSource();
    startSource(state.side, at);
  }

  function seek(seconds) {
    if (!state.buffers) return;
    account();
    state.offset = Math.max(0, Math.min(seconds, state.duration));
    if (state.playing) {
      stopSource();
      startSource(state.side, state.offset);
    }
    render();
  }

  function reset(message) {
    if (state.playing) account();
    stopSource();
    Object.assign(state, { trial: null, buffers: null, duration: 0, required: 0, side: "left", playing: false,
                           offset: 0, heard: { left: 0, right: 0 }, message, loop: null });
    render();
  }

  async function load(ticket) {
    const trial = ticket.dataset.trial;
    reset("Loading the pair…");
    state.trial = trial;
    state.required = parseFloat(ticket.dataset.required) || 0;
    try {
      const [left, right] = await Promise.all([fetchAndDecode(ticket.dataset.left),
                                               fetchAndDecode(ticket.dataset.right)]);
      if (state.trial !== trial) return;
      state.buffers = { left, right };
      state.duration = Math.min(left.duration, right.duration);
      const end = $("#ab-loop-end");
      if (end) end.value = Math.min(4, state.duration).toFixed(1);
      const start = $("#ab-loop-start");
      if (start) start.value = "0.0";
      state.message = "Ready: press Play, or 1 and 2 to hear each side.";
    } catch (error) {
      if (state.trial !== trial) return;
      state.message = "This pair could not be loaded; press Start listening to get a new one.";
    }
    render();
  }

  function votingOpen() {
    return Boolean(state.buffers) && SIDES.every((side) => state.heard[side] + 1e-3 >= state.required);
  }

  function render() {
    const ready = Boolean(state.buffers);
    for (const id of ["ab-play-left", "ab-play-right", "ab-toggle", "ab-seek"]) {
      const element = document.getElementById(id);
      if (element) element.disabled = !ready;
    }
    for (const side of SIDES) {
      const button = document.getElementById(`ab-play-${side}`);
      if (button) button.classList.toggle("ab-active", ready && side === state.side);
    }
    const at = position();
    const where = $("#ab-position");
    if (where) {
      const label = state.side === "left" ? "Left" : "Right";
      where.textContent = `${state.playing ? "Playing" : "Paused"} · ${label} · ${at.toFixed(2)} / ${state.duration.toFixed(2)} s`;
    }
    const seekBar = $("#ab-seek");
    if (seekBar && document.activeElement !== seekBar) {
      seekBar.max = String(state.duration || 1);
      seekBar.value = String(at);
    }
    const heard = $("#ab-heard");
    if (heard) {
      heard.innerHTML = ready ? SIDES.map((side) => {
        const done = state.heard[side] + 1e-3 >= state.required;
        return `<span class="${done ? "ab-done" : ""}">${side} ${Math.min(state.heard[side], 999).toFixed(1)} / ` +
               `${state.required.toFixed(1)} s${done ? " ✓" : ""}</span>`;
      }).join(" · ") : "";
    }
    const status = $("#ab-status");
    if (status) status.textContent = ready && votingOpen() ? "Voting is open." : state.message;
    const open = votingOpen();
    for (const button of document.querySelectorAll(".ab-vote")) {
      const target = button.tagName === "BUTTON" ? button : button.querySelector("button");
      if (target) target.disabled = !open;
    }
  }

  function watchTicket() {
    const ticket = $("#ab-ticket .ab-ticket");
    const trial = ticket ? ticket.dataset.trial : null;
    if (trial && trial !== state.trial) load(ticket);
    else if (!trial && (state.trial || state.buffers)) reset("No pair to play.");
  }

  state.report = () => {
    account();
    return JSON.stringify({ trial: state.trial || "", left_s: state.heard.left, right_s: state.heard.right });
  };
  state.position = position;
  window.abTransport = state;

  new MutationObserver(watchTicket).observe(document.documentElement, { childList: true, subtree: true,
                                                                        attributes: true });
  setInterval(() => {
    if (state.playing) account();
    render();
  }, 50);

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const id = button.id;
    if (id === "ab-toggle") state.playing ? pause() : play();
    else if (id === "ab-play-left") select("left", true);
    else if (id === "ab-play-right") select("right", true);
    else if (id === "ab-loop-from-here") { $("#ab-loop-start").value = position().toFixed(2); restartHere(); }
    else if (id === "ab-loop-to-here") { $("#ab-loop-end").value = position().toFixed(2); restartHere(); }
    else if (button.classList.contains("ab-vote") || button.closest(".ab-vote")) pause();
    else return;
    button.blur();
  });

  document.addEventListener("change", (event) => {
    if (["ab-loop", "ab-loop-start", "ab-loop-end"].includes(event.target.id)) restartHere();
  });
  document.addEventListener("input", (event) => {
    if (event.target.id === "ab-seek") seek(parseFloat(event.target.value));
  });

  document.addEventListener("keydown", (event) => {
    if (event.target.closest && event.target.closest("input, textarea, select")) return;
    const panel = $("#ab-transport");
    if (!panel || panel.offsetParent === null) return;  // only while the Listen tab shows
    if (event.key === " ") {
      event.preventDefault();
      state.playing ? pause() : play();
    } else if (["1", "a", "A", "ArrowLeft"].includes(event.key)) select("left", !state.playing);
    else if (["2", "b", "B", "ArrowRight"].includes(event.key)) select("right", !state.playing);
    else if (["l", "L"].includes(event.key)) {
      const loop = $("#ab-loop");
      if (loop) { loop.checked = !loop.checked; restartHere(); }
    }
  });
})();
