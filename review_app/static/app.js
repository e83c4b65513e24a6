// kaalwatch review page: copy buttons, the proof download link, and the compare widget
// (side by side, slider wipe, onion skin, difference). Plain JavaScript, no build step; CSP-safe
// (no inline code, styles set through the CSSOM only).
"use strict";

function copyFrom(selector, button) {
  const field = document.querySelector(selector);
  if (!field) return;
  const done = () => { const old = button.textContent; button.textContent = "Copied"; setTimeout(() => { button.textContent = old; }, 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(field.value).then(done, () => { field.select(); document.execCommand("copy"); done(); });
  } else {
    field.select();
    document.execCommand("copy");
    done();
  }
}

function setupProofLink() {
  const select = document.getElementById("proof-version");
  const link = document.getElementById("proof-download");
  if (!select || !link) return;
  const base = link.dataset.base;
  select.addEventListener("change", () => { link.href = base.replace("/v/0/", "/v/" + select.value + "/"); });
}

function drawDifference(box) {
  const a = box.querySelector(".a img");
  const b = box.querySelector(".b img");
  const canvas = box.querySelector("canvas.diff");
  const draw = () => {
    const width = Math.max(a.naturalWidth, b.naturalWidth);
    const height = Math.max(a.naturalHeight, b.naturalHeight);
    if (!width || !height) return;
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d");
    ctx.globalCompositeOperation = "source-over";
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(a, 0, 0, width, height);
    // Identical pixels cancel to black; every change shows as light.
    ctx.globalCompositeOperation = "difference";
    ctx.drawImage(b, 0, 0, width, height);
    canvas.dataset.ready = "1";
  };
  const pending = [a, b].filter((img) => !img.complete);
  if (pending.length === 0) { draw(); return; }
  pending.forEach((img) => img.addEventListener("load", () => { if (a.complete && b.complete) draw(); }, { once: true }));
}

function setupCompare() {
  const box = document.getElementById("compare-box");
  const range = document.getElementById("compare-range");
  if (!box || !range) return;
  const top = box.querySelector(".b");
  const canvas = box.querySelector("canvas.diff");
  let mode = "side";
  const apply = () => {
    const value = Number(range.value);
    top.style.clipPath = mode === "wipe" ? "inset(0 0 0 " + value + "%)" : "";
    box.style.setProperty("--wipe", value + "%");
    top.style.opacity = mode === "onion" ? String(value / 100) : "";
  };
  document.querySelectorAll(".modes button").forEach((button) => {
    button.addEventListener("click", () => {
      mode = button.dataset.mode;
      document.querySelectorAll(".modes button").forEach((b) => b.classList.toggle("current", b === button));
      box.className = "compare mode-" + mode;
      range.hidden = !(mode === "wipe" || mode === "onion");
      canvas.hidden = mode !== "diff";
      if (mode === "diff") drawDifference(box);
      apply();
    });
  });
  range.addEventListener("input", apply);
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("button.copy").forEach((button) => {
    button.addEventListener("click", () => copyFrom(button.dataset.copy, button));
  });
  setupProofLink();
  setupCompare();
});

// ---- The undo bar (issue 14): it leaves when the server would no longer accept the undo ----
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.getElementById("undo-bar");
  const left = bar ? Number(bar.dataset.left) : NaN;
  if (bar && left > 0) setTimeout(() => { bar.hidden = true; }, left * 1000);
});
