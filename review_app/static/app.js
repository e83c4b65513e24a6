// kaalwatch review page: copy buttons and the proof download link (the viewer and compare: viewer.js).
// Plain JavaScript, no build step; CSP-safe (no inline code, styles set through the CSSOM only).
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

function bindPage() {
  document.querySelectorAll("button.copy").forEach((button) => {
    button.addEventListener("click", () => copyFrom(button.dataset.copy, button));
  });
  setupProofLink();
}

document.addEventListener("DOMContentLoaded", bindPage);
// live.js swaps the page's content in place when it changes; its new buttons need their handlers again.
document.addEventListener("kaalwatch:refreshed", bindPage);
