// The transport: the only way the Listen tab and a study's page play sound.
//
// Each trial arrives as a ticket (#ab-ticket .ab-ticket: a random trial id and single-use links:
// two sides of an A/B pair, or a MUSHRA page's open reference and its conditions in slider order).
// Every sound is fetched once and decoded into memory; one Web Audio source plays at a time, and
// switching starts another at the same position with a 5 ms crossfade. The transport counts how
// long each sound has played (on the audio clock) and opens the vote (or submit) buttons once
// every one reached the minimum the ticket states; the vote sends that count to the server, which
// checks it against its own clock. Keys: Space plays/pauses, L toggles the loop; for a pair,
// 1 / A / Left arrow plays the left side and 2 / B / Right arrow the right; on a MUSHRA page,
// R plays the reference and 1-9 the conditions.
(() => {
  const FADE_S = 0.005;
  const PAIR = ["left", "right"];
  const state = {
    trial: null, buffers: null, duration: 0, required: 0, side: "left", playing: false, sides: PAIR,
    mushra: false, source: null, gain: null, offset: 0, startedAt: 0, lastTick: 0, heard: { left: 0, right: 0 },
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
                           sides: PAIR, mushra: false, offset: 0, heard: { left: 0, right: 0 }, message,
                           loop: null });
    buildRatings();
    render();
  }

  // A MUSHRA page: one row per condition (play button, slider 0-100, its score and listening).
  function buildRatings() {
    const panel = $("#mushra-ratings");
    if (!panel) return;
    panel.replaceChildren();
    if (!state.mushra) return;
    for (const side of state.sides.slice(1)) {
      const row = document.createElement("div");
      row.className = "mushra-row";
      const play = document.createElement("button");
      play.type = "button";
      play.id = `mushra-play-${side}`;
      play.dataset.side = side;
      play.textContent = `Sound ${side}`;
      play.disabled = true;
      const slider = document.createElement("input");
      slider.type = "range";
      slider.min = "0";
      slider.max = "100";
      slider.step = "1";
      slider.value = "0";
      slider.id = `mushra-rating-${side}`;
      slider.className = "mushra-rating";
      slider.setAttribute("aria-label", `Rating of sound ${side}, 0 (bad) to 100 (excellent)`);
      const value = document.createElement("output");
      value.id = `mushra-score-${side}`;
      value.textContent = "0";
      slider.addEventListener("input", () => { value.textContent = slider.value; });
      const heard = document.createElement("span");
      heard.className = "mushra-heard";
      heard.dataset.heard = side;
      row.append(play, slider, value, heard);
      panel.append(row);
    }
  }

  function sidesOf(ticket) {
    if (ticket.dataset.sides) {
      const sides = JSON.parse(ticket.dataset.sides);
      return { sides, urls: JSON.parse(ticket.dataset.urls), mushra: true };
    }
    return { sides: PAIR, urls: [ticket.dataset.left, ticket.dataset.right], mushra: false };
  }

  async function load(ticket) {
    const trial = ticket.dataset.trial;
    const { sides, urls, mushra } = sidesOf(ticket);
    reset(mushra ? "Loading the page…" : "Loading the pair…");
    Object.assign(state, { trial, sides, mushra, side: sides[0],
                           heard: Object.fromEntries(sides.map((side) => [side, 0])) });
    state.required = parseFloat(ticket.dataset.required) || 0;
    buildRatings();
    try {
      const decoded = await Promise.all(urls.map(fetchAndDecode));
      if (state.trial !== trial) return;
      state.buffers = Object.fromEntries(sides.map((side, k) => [side, decoded[k]]));
      state.duration = Math.min(...decoded.map((buffer) => buffer.duration));
      const end = $("#ab-loop-end");
      if (end) end.value = Math.min(4, state.duration).toFixed(1);
      const start = $("#ab-loop-start");
      if (start) start.value = "0.0";
      state.message = mushra ? "Ready: press Reference (R), then play every sound (1-9) and rate it."
                             : "Ready: press Play, or 1 and 2 to hear each side.";
    } catch (error) {
      if (state.trial !== trial) return;
      state.message = "This trial could not be loaded; reload the page to get it again.";
    }
    render();
  }

  function votingOpen() {
    return Boolean(state.buffers) && state.sides.every((side) => state.heard[side] + 1e-3 >= state.required);
  }

  function sideName(side) {
    if (side === "left") return "Left";
    if (side === "right") return "Right";
    return side === "reference" ? "Reference" : `Sound ${side}`;
  }

  function heardText(side) {
    const done = state.heard[side] + 1e-3 >= state.required;
    return [done, `${Math.min(state.heard[side] || 0, 999).toFixed(1)} / ${state.required.toFixed(1)} s${done ? " ✓" : ""}`];
  }

  function render() {
    const ready = Boolean(state.buffers);
    for (const element of document.querySelectorAll("#ab-toggle, #ab-seek, [data-side]")) {
      element.disabled = !ready;
      if (element.dataset.side) element.classList.toggle("ab-active", ready && element.dataset.side === state.side);
    }
    const at = position();
    const where = $("#ab-position");
    if (where) {
      where.textContent = `${state.playing ? "Playing" : "Paused"} · ${sideName(state.side)} · ${at.toFixed(2)} / ${state.duration.toFixed(2)} s`;
    }
    const seekBar = $("#ab-seek");
    if (seekBar && seekBar.tagName === "INPUT" && document.activeElement !== seekBar) {
      seekBar.max = String(state.duration || 1);
      seekBar.value = String(at);
    } else if (seekBar) {
      const share = state.duration ? Math.min(1, at / state.duration) : 0;
      const fill = seekBar.querySelector(".ab-seek-fill");
      if (fill) fill.style.width = `${(100 * share).toFixed(2)}%`;
      seekBar.setAttribute("aria-valuenow", String(Math.round(100 * share)));
    }
    const heard = $("#ab-heard");
    if (heard) {
      const shown = state.mushra ? ["reference"] : state.sides;
      const html = ready ? shown.map((side) => {
        const [done, text] = heardText(side);
        return `<span class="${done ? "ab-done" : ""}">${state.mushra ? "reference" : side} ${text}</span>`;
      }).join(" · ") : "";
      if (heard.innerHTML !== html) heard.innerHTML = html;  // unchanged text makes no DOM mutation
    }
    for (const element of document.querySelectorAll("[data-heard]")) {
      const [done, text] = ready ? heardText(element.dataset.heard) : [false, ""];
      if (element.textContent !== text) element.textContent = text;
      element.classList.toggle("ab-done", done);
    }
    const status = $("#ab-status");
    const opened = state.mushra ? "Every sound has been heard: rate each, then submit." : "Voting is open.";
    if (status) status.textContent = ready && votingOpen() ? opened : state.message;
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
    else if (!trial && (state.trial || state.buffers)) reset(state.mushra ? "Nothing left to rate." : "No pair to play.");
  }

  state.report = () => {
    account();
    if (state.mushra) {
      const scores = state.sides.slice(1).map((side) => {
        const slider = document.getElementById(`mushra-rating-${side}`);
        return slider ? Number(slider.value) : null;
      });
      return JSON.stringify({ trial: state.trial || "", heard: state.heard, scores });
    }
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
    else if (button.dataset.side) select(button.dataset.side, true);
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
  document.addEventListener("pointerdown", (event) => {  // a MUSHRA page's position bar (not a slider)
    const bar = event.target.closest && event.target.closest("div#ab-seek");
    if (!bar || !state.buffers) return;
    const box = bar.getBoundingClientRect();
    seek(state.duration * Math.max(0, Math.min(1, (event.clientX - box.left) / box.width)));
  });

  document.addEventListener("keydown", (event) => {
    const field = event.target.closest && event.target.closest("input, textarea, select");
    if (field && !(field.type === "range" && state.mushra && !event.key.startsWith("Arrow"))) return;
    const panel = $("#ab-transport");
    if (!panel || panel.offsetParent === null) return;  // only while the Listen tab shows
    if (event.key === " ") {
      event.preventDefault();
      state.playing ? pause() : play();
    } else if (state.mushra) {
      const side = ["r", "R"].includes(event.key) ? "reference" : event.key;
      if (state.sides.includes(side)) select(side, !state.playing);
      else if (["l", "L"].includes(event.key)) {
        const loop = $("#ab-loop");
        if (loop) { loop.checked = !loop.checked; restartHere(); }
      }
    } else if (["1", "a", "A", "ArrowLeft"].includes(event.key)) select("left", !state.playing);
    else if (["2", "b", "B", "ArrowRight"].includes(event.key)) select("right", !state.playing);
    else if (["l", "L"].includes(event.key)) {
      const loop = $("#ab-loop");
      if (loop) { loop.checked = !loop.checked; restartHere(); }
    }
  });
})();
