/* The span editor: selection, keyboard, brand autocomplete. Everything else is htmx.
 *
 * Offsets: every token carries data-start/data-end in Python code points, computed on the server.
 * JS strings are UTF-16, so we never use a JS string index as an offset; in exact-character mode the
 * offset inside a token is counted with Array.from(), which walks code points.
 */
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const codePoints = (s) => Array.from(s).length;

  // --- brand autocomplete (editor and the brand-candidates page) -------------------------------
  function autocomplete(input, onPick) {
    const list = input.parentElement.querySelector(".ac-list");
    const url = document.body.dataset.autocompleteUrl || (($("#editor") || {}).dataset || {}).autocompleteUrl;
    let timer = null, seq = 0;
    const options = () => $$("[role=option]", list);
    const close = () => { list.hidden = true; list.innerHTML = ""; };
    const load = () => {
      const mine = ++seq;
      fetch(url + "?q=" + encodeURIComponent(input.value), { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then((r) => r.text())
        .then((html) => {
          if (mine !== seq || document.activeElement !== input) return;
          list.innerHTML = html;
          list.hidden = !options().length;
          const first = options()[0];
          if (first) first.classList.add("active");
        });
    };
    input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(load, 120); });
    input.addEventListener("focus", () => { input.select(); if (input.value) load(); });
    input.addEventListener("blur", () => setTimeout(close, 150));
    input.addEventListener("keydown", (e) => {
      const opts = options();
      const i = opts.findIndex((o) => o.classList.contains("active"));
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        if (!opts.length) return load();
        const next = (i + (e.key === "ArrowDown" ? 1 : -1) + opts.length) % opts.length;
        opts.forEach((o, k) => o.classList.toggle("active", k === next));
        opts[next].scrollIntoView({ block: "nearest" });
      } else if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
        e.preventDefault();
        e.stopPropagation();
        if (opts.length) { onPick(opts[Math.max(0, i)]); close(); }
      } else if (e.key === "Escape") {
        e.stopPropagation();
        close();
        input.blur();
      }
    });
    list.addEventListener("mousedown", (e) => {
      const opt = e.target.closest("[role=option]");
      if (opt) { e.preventDefault(); onPick(opt); close(); }
    });
  }

  // Brand-candidates page: picking fills the form's hidden brand_id.
  $$("input[data-pick=fill]").forEach((input) => autocomplete(input, (opt) => {
    const form = input.closest("form");
    form.querySelector("[name=brand_id]").value = opt.dataset.brandId || "";
    input.value = opt.dataset.name || input.value;
  }));

  const ed = $("#editor");
  if (!ed) return;
  const textEl = $("#text");
  const toks = $$(".tok", textEl);
  let selected = null;   // "start:end" of the selected span
  let anchor = null;     // token clicked first, for shift-click
  const state = $("#save-state");

  // --- time spent actively editing (idle over a minute does not count) --------------------------
  let activeMs = 0, lastTick = Date.now(), lastInput = Date.now();
  setInterval(() => {
    const now = Date.now();
    if (!document.hidden && now - lastInput < 60000) activeMs += now - lastTick;
    lastTick = now;
  }, 1000);
  ["keydown", "mousedown", "wheel"].forEach((ev) => document.addEventListener(ev, () => { lastInput = Date.now(); }, { passive: true }));

  document.body.addEventListener("htmx:configRequest", (e) => {
    if (e.detail.verb !== "post") return;
    const v = $("#version");
    if (v) e.detail.parameters["version"] = v.value;  // always the newest, even for queued requests
    e.detail.parameters["active_ms"] = Math.round(activeMs);
    activeMs = 0;
    setState("Saving…", "saving");
  });
  document.body.addEventListener("htmx:responseError", () => setState("Not saved: the server did not answer. Try again.", "error"));
  document.body.addEventListener("htmx:sendError", () => setState("Not saved: you seem to be offline. Try again.", "error"));

  function setState(msg, kind) {
    state.textContent = msg;
    state.className = "save-state " + (kind || "");
  }

  function change(values, url) {
    return htmx.ajax("POST", url || ed.dataset.changeUrl, {
      source: ed, target: "#panel", swap: "outerHTML", values: values,
    });
  }

  // --- painting spans and suggestions onto the tokens ---------------------------------------
  const overlapping = (s, e) => toks.filter((t) => +t.dataset.start < e && +t.dataset.end > s);

  function paint() {
    $$(".tag", textEl).forEach((t) => t.remove());
    toks.forEach((t) => t.classList.remove("in-span", "s-first", "s-last", "sel", "unl", "sg", "sg-teacher", "sg-student", "sg-gazetteer", "pending"));
    $$("[data-span]").forEach((row) => {
      const covered = overlapping(+row.dataset.start, +row.dataset.end);
      if (!covered.length) return;
      const isSel = row.dataset.key === selected;
      covered.forEach((t) => {
        t.classList.add("in-span");
        if (isSel) t.classList.add("sel");
        if (row.classList.contains("unlinked")) t.classList.add("unl");
      });
      covered[0].classList.add("s-first");
      const last = covered[covered.length - 1];
      last.classList.add("s-last");
      if (row.dataset.label) {
        const tag = document.createElement("span");
        tag.className = "tag" + (isSel ? " sel" : "");
        tag.textContent = row.dataset.label.replace(/^ · /, "");
        tag.setAttribute("aria-hidden", "true");
        last.after(tag);
      }
      row.classList.toggle("selected", isSel);
    });
    $$("[data-sugg][data-state=open]").forEach((li) => {
      overlapping(+li.dataset.start, +li.dataset.end).forEach((t) => {
        if (!t.classList.contains("in-span")) t.classList.add("sg", "sg-" + li.dataset.source);
      });
    });
    if (anchor) anchor.classList.add("pending");
  }

  function rows() { return $$("[data-span]"); }
  function selectedRow() { return selected ? $(`[data-span][data-key="${selected}"]`) : null; }

  function select(key, scroll) {
    selected = key;
    paint();
    const row = selectedRow();
    if (row && scroll !== false) row.scrollIntoView({ block: "nearest" });
  }

  // Which suggestions are taken follows from the spans present, so a change that re-renders only
  // the span list keeps the suggestion lists right without asking the server.
  function syncSuggestions() {
    const have = new Set(rows().map((r) => r.dataset.key));
    $$("[data-sugg]").forEach((li) => {
      const state = have.has(li.dataset.start + ":" + li.dataset.end) ? "accepted" : li.dataset.dismissed ? "rejected" : "open";
      li.dataset.state = state;
      const badge = $(".sg-done", li);
      badge.textContent = state;
      badge.className = "badge sg-done " + state;
    });
    $$("[data-accept-all]").forEach((btn) => {
      const open = $$(`[data-sugg][data-source="${btn.dataset.acceptAll}"][data-state=open]`).length;
      $(".n", btn).textContent = open;
      btn.hidden = !open;
    });
  }

  function onPanel() {
    const panel = $("#panel");
    const section = $("#spans-section");
    if (!panel || !section) return;
    if (section.dataset.focus) selected = section.dataset.focus;
    if (selected && !selectedRow()) selected = null;
    if (!selected && rows().length === 1) selected = rows()[0].dataset.key;
    $$(".brand-input", section).forEach((input) => autocomplete(input, (opt) => {
      const values = { op: "update", start: input.dataset.start, end: input.dataset.end, focus: input.dataset.start + ":" + input.dataset.end };
      if (opt.dataset.brandId) values.brand_id = opt.dataset.brandId;
      else { values.brand_id = ""; values.brand_text = opt.dataset.brandText; }
      change(values);
    }));
    if ($("#conflict", panel)) setState("Conflict: not saved", "error");
    else if (panel.querySelector(".msg-error")) setState("Not saved", "error");
    else if (section.dataset.saved) setState("Saved · " + section.dataset.saved, "saved");
    syncSuggestions();
    paint();
  }
  document.body.addEventListener("htmx:afterSettle", (e) => {
    const ids = [e.target.id, e.detail.elt && e.detail.elt.id];
    if (ids.includes("spans-section") && !ids.includes("panel")) {
      // A change was saved: an earlier conflict or error message no longer applies.
      $$("#panel > #conflict, #panel > .msg-error").forEach((m) => m.remove());
    }
    if (ids.includes("panel") || ids.includes("spans-section")) onPanel();
  });
  onPanel();

  // --- selecting text -------------------------------------------------------------------------
  function rangeFromSelection(sel, exact) {
    if (!sel.rangeCount) return null;
    const range = sel.getRangeAt(0);
    let hit = toks.filter((t) => range.intersectsNode(t));
    if (!hit.length) return null;
    const first = hit[0], last = hit[hit.length - 1];
    // A drag that starts at the very end of a word, or ends at the very start of one, does not take it.
    if (hit.length > 1 && range.startContainer === first.firstChild && range.startOffset >= first.firstChild.length) hit = hit.slice(1);
    if (hit.length > 1 && range.endContainer === last.firstChild && range.endOffset === 0) hit = hit.slice(0, -1);
    const a = hit[0], b = hit[hit.length - 1];
    let start = +a.dataset.start, end = +b.dataset.end;
    if (exact) {
      if (range.startContainer === a.firstChild) start += codePoints(a.firstChild.data.slice(0, range.startOffset));
      if (range.endContainer === b.firstChild) end = +b.dataset.start + codePoints(b.firstChild.data.slice(0, range.endOffset));
    }
    return end > start ? { start, end } : null;
  }

  function spanAt(tok) {
    const at = +tok.dataset.start;
    const row = rows().find((r) => +r.dataset.start <= at && at < +r.dataset.end);
    return row ? row.dataset.key : null;
  }

  function addSpan(r) {
    anchor = null;
    change({ op: "add", start: r.start, end: r.end });
  }

  textEl.addEventListener("mouseup", (e) => {
    if (ed.querySelector("#panel[data-readonly]")) return;
    const tok = e.target.closest(".tok");
    const sel = window.getSelection();
    if (e.shiftKey && anchor && tok) {
      sel.removeAllRanges();
      const a = +anchor.dataset.start, b = +tok.dataset.start;
      const from = a <= b ? anchor : tok, to = a <= b ? tok : anchor;
      return addSpan({ start: +from.dataset.start, end: +to.dataset.end });
    }
    if (!sel.isCollapsed) {
      const r = rangeFromSelection(sel, e.altKey);
      sel.removeAllRanges();
      if (r) addSpan(r);
      return;
    }
    if (!tok) return;
    const key = spanAt(tok);
    if (key) { anchor = null; return select(key); }
    anchor = tok;
    paint();
  });

  // --- keyboard ---------------------------------------------------------------------------------
  function clickIn(sel, root) {
    const el = $(sel, root);
    // A key can land between htmx's swap and its processing of the new panel: process first.
    if (el && !el.disabled) { htmx.process(el); el.click(); }
    return !!el;
  }

  function toggleHelp() {
    const help = $("#help");
    if (!help.hidden) { help.hidden = true; return; }
    if (!help.innerHTML.trim()) {
      htmx.ajax("GET", ed.dataset.helpUrl, { target: "#help", swap: "innerHTML" }).then(() => { help.hidden = false; });
    } else help.hidden = false;
  }

  function moveSelection(step) {
    const all = rows();
    if (!all.length) return;
    const i = all.findIndex((r) => r.dataset.key === selected);
    const next = i < 0 ? (step > 0 ? 0 : all.length - 1) : (i + step + all.length) % all.length;
    select(all[next].dataset.key);
  }

  function goNext() {
    if (ed.dataset.nextUrl) window.location.href = ed.dataset.nextUrl;
    else if (ed.dataset.skipUrl) htmx.ajax("POST", ed.dataset.skipUrl, { source: ed, swap: "none" });
  }

  ed.addEventListener("click", (e) => {
    const action = e.target.closest("[data-action]");
    if (!action) {
      const row = e.target.closest("[data-span]");
      if (row && !e.target.closest("button, input")) select(row.dataset.key, false);
      return;
    }
    if (action.dataset.action === "help") toggleHelp();
    if (action.dataset.action === "dismiss-conflict") { const c = $("#conflict"); if (c) c.remove(); setState("Showing the latest version", ""); }
  });

  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t.matches && t.matches("input[type=text], input:not([type]), textarea, select");
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); clickIn("#submit"); return; }
    if ((e.key === "z" || e.key === "Z") && (e.ctrlKey || e.metaKey) && !typing) { e.preventDefault(); clickIn(`#spans-section button[hx-post="${ed.dataset.undoUrl}"]`); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const help = $("#help");
    if (e.key === "?") { e.preventDefault(); toggleHelp(); return; }
    if (e.key === "Escape") { if (!help.hidden) help.hidden = true; else { selected = null; anchor = null; paint(); } return; }
    const onControl = t.closest && t.closest("button, a, input[type=checkbox]");
    const row = selectedRow();
    switch (e.key) {
      case "Enter":
        if (onControl) return;  // Enter on a focused button presses that button
        e.preventDefault();
        if (anchor) addSpan({ start: +anchor.dataset.start, end: +anchor.dataset.end });
        else clickIn("#submit");
        return;
      case "ArrowLeft":
        if (ed.dataset.prevUrl) window.location.href = ed.dataset.prevUrl;
        return;
      case "ArrowRight":
        goNext();
        return;
      case "j": case "ArrowDown":
        e.preventDefault(); moveSelection(1); return;
      case "k": case "ArrowUp":
        e.preventDefault(); moveSelection(-1); return;
      case "Delete": case "Backspace":
        if (row) { e.preventDefault(); clickIn("button.danger", row); }
        return;
      case "b": case "B":
        if (row) { e.preventDefault(); const i = $(".brand-input", row); i.focus(); }
        return;
      case "a": case "A":
        e.preventDefault(); clickIn("[data-accept-all]:not([hidden])"); return;
      case "s": case "S":
        e.preventDefault(); clickIn("[data-sugg][data-state=open] button.ok"); return;
      case "r": case "R":
        e.preventDefault(); clickIn("[data-sugg][data-state=open] button.reject"); return;
      case "x": case "X":
        e.preventDefault(); clickIn("[data-flag=beauty]"); return;
      case "0":
        e.preventDefault(); clickIn("[data-flag=nobrands]"); return;
      case "u": case "U":
        e.preventDefault(); clickIn(`#spans-section button[hx-post="${ed.dataset.undoUrl}"]`); return;
      case " ":
        if (anchor && !onControl) { e.preventDefault(); addSpan({ start: +anchor.dataset.start, end: +anchor.dataset.end }); }
        return;
      default:
        if (/^[1-8]$/.test(e.key) && row) { e.preventDefault(); clickIn(`.cat[data-cat="${e.key}"]`, row); }
    }
  });
})();
