// kaalwatch live page: ask the server a few times a second whether this page's data changed (a conditional GET
// of a tiny stamp, see views/live.py for why this and not server-sent events); when it did, fetch the
// page again and swap its content in place. What the owner is doing survives the swap: the viewer (its
// zoom, pan, mode) is kept as it is and only given the new data, typed text and choices in forms are
// carried over, and the focused field keeps focus and caret.
"use strict";

(function () {
  let etag = null;
  let timer = null;
  let busy = false;
  let interval = 300; // the server says (poll_ms in views/live.py)

  function fieldKey(field) {
    const form = field.form ? field.form.getAttribute("action") || "" : "";
    return form + "|" + (field.name || field.id || "");
  }

  function edited(root) {
    const kept = new Map();
    root.querySelectorAll("input, textarea, select").forEach((field) => {
      if (!field.name && !field.id) return;
      if (field.type === "hidden" || field.type === "file" || field.closest("#viewer")) return;
      let changed;
      if (field.type === "checkbox" || field.type === "radio") changed = field.checked !== field.defaultChecked;
      else if (field.tagName === "SELECT") changed = Array.from(field.options).some((o) => o.selected !== o.defaultSelected);
      else changed = field.value !== field.defaultValue;
      if (changed) kept.set(fieldKey(field) + (field.type === "radio" ? "=" + field.value : ""), field);
    });
    return kept;
  }

  function restore(root, kept, focusKey, selection) {
    root.querySelectorAll("input, textarea, select").forEach((field) => {
      const key = fieldKey(field);
      const old = kept.get(key + (field.type === "radio" ? "=" + field.value : ""));
      if (old) {
        if (field.type === "checkbox" || field.type === "radio") field.checked = old.checked;
        else if (field.tagName !== "SELECT" || Array.from(field.options).some((o) => o.value === old.value)) field.value = old.value;
      }
      if (focusKey && key === focusKey) {
        field.focus({ preventScroll: true });
        if (selection && typeof field.setSelectionRange === "function") {
          try { field.setSelectionRange(selection[0], selection[1]); } catch (e) { /* not a text field */ }
        }
      }
    });
  }

  async function refresh() {
    // The header keeps the server from handing this refresh the messages meant for the page an action
    // is redirecting to (base.html): only <main> is swapped in, so they would be lost.
    const response = await fetch(window.location.href,
      { credentials: "same-origin", headers: { "X-Kaalwatch-Refresh": "1" } });
    if (response.redirected) { window.location.reload(); return; }
    if (!response.ok || !(response.headers.get("Content-Type") || "").startsWith("text/html")) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const main = document.querySelector("main");
    const next = fresh.querySelector("main");
    if (!main || !next) return;
    const kept = edited(main);
    const active = document.activeElement && main.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = active && active.closest("#viewer") === null ? fieldKey(active) : null;
    const selection = active && "selectionStart" in active && active.selectionStart !== null
      ? [active.selectionStart, active.selectionEnd] : null;
    const imported = document.importNode(next, true);
    const oldViewer = main.querySelector("#viewer");
    const newViewer = imported.querySelector("#viewer");
    let mountViewer = null;
    if (oldViewer && newViewer && oldViewer.viewer && newViewer.dataset.viewer) {
      newViewer.replaceWith(oldViewer); // the live viewer keeps its zoom; it gets the new data below
      oldViewer.viewer.update(JSON.parse(newViewer.dataset.viewer));
    } else if (newViewer) {
      mountViewer = newViewer;
    }
    main.replaceWith(imported);
    restore(imported, kept, focusKey, selection);
    if (mountViewer && window.kaalwatchViewer) window.kaalwatchViewer.mount(mountViewer);
    const status = document.getElementById("status");
    const freshStatus = fresh.getElementById("status");
    if (status && freshStatus) status.replaceWith(document.importNode(freshStatus, true));
    document.dispatchEvent(new CustomEvent("kaalwatch:refreshed"));
  }

  async function poll() {
    timer = null;
    const url = document.querySelector('meta[name="kaalwatch-live"]').content;
    if (!busy && !document.hidden) {
      busy = true;
      try {
        const headers = etag ? { "If-None-Match": etag } : {};
        const response = await fetch(url, { credentials: "same-origin", headers, cache: "no-store" });
        if (response.redirected) { window.location.reload(); return; } // logged out meanwhile: show the login
        if (response.status === 200) {
          const body = await response.json();
          interval = body.poll_ms || interval;
          const tag = response.headers.get("ETag");
          if (etag !== null && tag !== etag) await refresh();
          etag = tag;
          document.body.dataset.live = "ok";
        } else if (response.status !== 304) {
          document.body.dataset.live = "error";
        }
      } catch (e) {
        document.body.dataset.live = "offline"; // the daemon restarting: try again on the next tick
      } finally {
        busy = false;
      }
    }
    timer = setTimeout(poll, interval);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const meta = document.querySelector('meta[name="kaalwatch-live"]');
    if (!meta) return;
    etag = '"' + meta.dataset.stamp + '"'; // the state this page was rendered from
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && timer !== null) { clearTimeout(timer); poll(); }
    });
    poll();
  });
})();
