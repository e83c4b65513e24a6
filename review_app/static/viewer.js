// kaalwatch viewer: the artwork large, zoomable down to the original's pixels, and compare (side by side,
// wipe, onion skin, difference) with one zoom and pan shared by every pane. Plain JavaScript, CSP-safe.
//
// The image is drawn on canvases from 512-px tiles (views/tiles.py): at any zoom only the tiles of the
// level that matches the screen are fetched, so a 100-megapixel original never reaches the browser
// whole. Coordinates: the "frame" is the shown version's (B's) original pixels; another version (A) is
// scaled onto it when its size differs. The proof toggle draws each version's watermarked preview instead:
// exactly the file the buyer is sent.
"use strict";

(function () {
  const KEY_MODES = { "0": "single", "1": "side", "2": "wipe", "3": "onion", "4": "diff" };
  const MAX_TILES = 600;
  const cache = new Map(); // url -> {img, ok}; insertion order is the LRU order
  const asked = new Set(); // levels (tile URL prefix + level) whose first tile was asked for
  const ready = new Set(); // levels whose first tile has come (or finally failed): the rest may be asked

  function image(url, onload) {
    let entry = cache.get(url);
    if (entry) {
      cache.delete(url);
      cache.set(url, entry);
      return entry;
    }
    const img = new Image();
    entry = { img, ok: false, tries: 1 };
    img.addEventListener("load", () => { entry.ok = true; onload(); });
    // A tile of a level still being built is answered 503: ask again every 300 ms (a 100-megapixel level
    // takes a few seconds); a tile that never comes (a file that will not decode) is given up after 12 s.
    img.addEventListener("error", () => {
      if (entry.tries >= 40) { entry.failed = true; onload(); return; }
      setTimeout(() => { entry.tries += 1; img.src = url + "?try=" + entry.tries; }, 300);
    });
    img.src = url;
    cache.set(url, entry);
    if (cache.size > MAX_TILES) cache.delete(cache.keys().next().value);
    return entry;
  }

  // Keys belong to a field being typed in; a checkbox, a slider or a button leaves them to the viewer.
  function typing(target) {
    if (!target) return false;
    if (target.tagName === "INPUT") return !/^(checkbox|radio|range|button|submit)$/.test(target.type);
    return target.isContentEditable || target.tagName === "TEXTAREA" || target.tagName === "SELECT";
  }

  class Viewer {
    constructor(section) {
      this.section = section;
      this.stage = section.querySelector("#viewer-stage");
      this.mode = "single";
      this.proof = false;
      this.opacity = 0.5;
      this.wipe = 0.5;
      this.fit = true;
      this.scale = 1;
      this.cx = 0;
      this.cy = 0;
      this.aAuto = true;
      this.panes = [];
      this.frameRequested = false;
      this.data = JSON.parse(section.dataset.viewer);
      const vs = this.data.versions;
      this.b = this.find(this.data.b) || vs[vs.length - 1];
      this.a = this.find(this.data.a) || this.before(this.b);
      if (this.data.a && this.data.b) { this.mode = "side"; this.aAuto = false; }
      this.bindControls();
      this.bindPointer();
      new ResizeObserver(() => this.layout()).observe(this.stage);
      this.setMode(this.mode);
    }

    find(number) { return this.data.versions.find((v) => v.n === number); }
    before(v) {
      const vs = this.data.versions;
      const i = vs.indexOf(v);
      return i > 0 ? vs[i - 1] : (vs[i + 1] || v);
    }
    get compare() { return this.mode !== "single"; }

    // ---------------------------------------------------------------------------------- controls
    $(selector) { return this.section.querySelector(selector); }

    bindControls() {
      this.fillSelects();
      this.$("#viewer-version").addEventListener("change", (e) => this.show(this.find(Number(e.target.value))));
      this.$("#viewer-against").addEventListener("change", (e) => {
        this.a = this.find(Number(e.target.value));
        this.aAuto = false;
        this.changed();
      });
      this.section.querySelectorAll(".viewer-modes button").forEach((button) => {
        button.addEventListener("click", () => this.setMode(button.dataset.mode));
      });
      this.$("#viewer-opacity").addEventListener("input", (e) => { this.opacity = Number(e.target.value) / 100; this.changed(); });
      this.$("#viewer-fit").addEventListener("click", () => this.zoomFit());
      this.$("#viewer-100").addEventListener("click", () => this.zoomActual());
      this.$("#viewer-proof").addEventListener("change", (e) => { this.proof = e.target.checked; this.changed(); });
      const refsButton = this.$("#viewer-refs-toggle");
      if (refsButton) refsButton.addEventListener("click", () => this.toggleRefs());
      document.addEventListener("keydown", (e) => this.key(e));
    }

    fillSelects() {
      const label = (v) => "v" + v.n + " · " + v.saved + (v.approved ? " · approved" : "");
      for (const [id, chosen] of [["#viewer-version", this.b], ["#viewer-against", this.a]]) {
        const select = this.$(id);
        select.replaceChildren(...this.data.versions.slice().reverse().map((v) => {
          const option = new Option(label(v), String(v.n));
          option.selected = v === chosen;
          return option;
        }));
      }
    }

    key(e) {
      if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target) || !this.section.isConnected) return;
      const vs = this.data.versions;
      const i = vs.indexOf(this.b);
      let handled = true;
      if (e.key === "ArrowLeft") this.show(vs[Math.max(0, i - 1)]);
      else if (e.key === "ArrowRight") this.show(vs[Math.min(vs.length - 1, i + 1)]);
      else if (e.key in KEY_MODES) this.setMode(KEY_MODES[e.key]);
      else if (e.key === "Escape") this.setMode("single");
      else if (e.key === "z" || e.key === "Z") { if (this.fit) this.zoomActual(); else this.zoomFit(); }
      else if (e.key === "p" || e.key === "P") { const box = this.$("#viewer-proof"); box.checked = !box.checked; this.proof = box.checked; this.changed(); }
      else if ((e.key === "r" || e.key === "R") && this.$("#viewer-refs-toggle")) this.toggleRefs();
      else if (e.key === "+" || e.key === "=") this.zoomBy(1.25);
      else if (e.key === "-") this.zoomBy(0.8);
      else handled = false;
      if (handled) e.preventDefault();
    }

    show(v) {
      if (!v || v === this.b) return;
      const sameSize = v.w === this.b.w && v.h === this.b.h;
      this.b = v;
      if (this.aAuto || this.a === v) this.a = this.before(v);
      this.fillSelects();
      if (!sameSize) this.fit = true;
      this.changed();
    }

    setMode(mode) {
      this.mode = mode;
      this.section.dataset.mode = mode;
      this.section.querySelectorAll(".viewer-modes button").forEach((b) => b.classList.toggle("current", b.dataset.mode === mode));
      this.section.classList.toggle("vw-comparing", this.compare);
      this.section.classList.toggle("vw-onion", mode === "onion");
      this.buildPanes();
      this.layout();
    }

    toggleRefs() {
      const aside = this.$("#viewer-refs");
      aside.hidden = !aside.hidden;
      if (!aside.hidden && !aside.dataset.ready) {
        const big = this.$("#viewer-ref-image");
        const list = this.$("#viewer-ref-list");
        this.data.refs.forEach((ref, i) => {
          const button = document.createElement("button");
          button.type = "button";
          button.textContent = ref.label;
          button.addEventListener("click", () => { big.src = ref.url; big.alt = ref.label; });
          list.append(button);
          if (i === 0) { big.src = ref.url; big.alt = ref.label; }
        });
        aside.dataset.ready = "1";
      }
      this.$("#viewer-refs-toggle").classList.toggle("current", !aside.hidden);
    }

    // -------------------------------------------------------------------------------- live data
    update(data) {
      const wasLatest = this.b === this.data.versions[this.data.versions.length - 1];
      const b = this.b.n;
      const a = this.a.n;
      this.data = Object.assign({}, data, { a: null, b: null });
      if (!this.data.versions.length) return;
      const latest = this.data.versions[this.data.versions.length - 1];
      const keep = this.find(b);
      this.b = null;
      this.b = wasLatest || !keep ? latest : keep;
      this.a = (!this.aAuto && this.find(a)) || this.before(this.b);
      if (keep && (keep.w !== this.b.w || keep.h !== this.b.h)) this.fit = true;
      this.fillSelects();
      this.changed();
    }

    // ----------------------------------------------------------------------------------- panes
    buildPanes() {
      const count = this.mode === "side" ? 2 : 1;
      this.stage.replaceChildren();
      this.panes = [];
      for (let i = 0; i < count; i++) {
        const pane = document.createElement("div");
        pane.className = "vw-pane";
        const canvas = document.createElement("canvas");
        const label = document.createElement("span");
        label.className = "vw-label";
        pane.append(canvas, label);
        this.stage.append(pane);
        this.panes.push({ pane, canvas, label });
      }
      if (this.mode === "wipe") {
        const line = document.createElement("div");
        line.className = "vw-wipe-line";
        this.panes[0].pane.append(line);
        this.panes[0].line = line;
      }
    }

    layout() {
      const dpr = window.devicePixelRatio || 1;
      for (const p of this.panes) {
        const w = Math.max(1, p.pane.clientWidth);
        const h = Math.max(1, p.pane.clientHeight);
        p.w = w;
        p.h = h;
        p.canvas.width = Math.round(w * dpr);
        p.canvas.height = Math.round(h * dpr);
      }
      if (this.fit) this.zoomFit(); else this.changed();
    }

    fitScale() {
      const p = this.panes[0];
      return Math.min(p.w / this.b.w, p.h / this.b.h);
    }

    zoomFit() {
      this.fit = true;
      this.scale = this.fitScale();
      this.cx = this.b.w / 2;
      this.cy = this.b.h / 2;
      this.changed();
    }

    zoomActual() {
      this.fit = false;
      this.scale = 1 / (window.devicePixelRatio || 1);
      this.changed();
    }

    zoomBy(factor, px, py) {
      const p = this.panes[0];
      const x = px === undefined ? p.w / 2 : px;
      const y = py === undefined ? p.h / 2 : py;
      const fx = this.cx + (x - p.w / 2) / this.scale;
      const fy = this.cy + (y - p.h / 2) / this.scale;
      const min = Math.min(this.fitScale(), 1) / 2;
      const max = 16 / (window.devicePixelRatio || 1);
      this.scale = Math.min(max, Math.max(min, this.scale * factor));
      this.cx = fx - (x - p.w / 2) / this.scale;
      this.cy = fy - (y - p.h / 2) / this.scale;
      this.fit = false;
      this.changed();
    }

    // One pointer drags (pans, or moves the wipe); two pointers (a phone) pinch to zoom around their middle.
    bindPointer() {
      let drag = null;
      const touches = new Map();
      let pinch = null;
      const spread = () => {
        const [a, b] = Array.from(touches.values());
        return { d: Math.hypot(a.x - b.x, a.y - b.y), x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      };
      this.stage.addEventListener("pointerdown", (e) => {
        const pane = e.target.closest(".vw-pane");
        if (!pane || e.button > 1) return;
        touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
        try { this.stage.setPointerCapture(e.pointerId); } catch (err) { /* a pointer already gone */ }
        e.preventDefault();
        if (touches.size === 2) { drag = null; pinch = Object.assign(spread(), { pane }); return; }
        const wiping = this.mode === "wipe" && !e.shiftKey && e.button === 0;
        drag = { x: e.clientX, y: e.clientY, wiping, pane };
        if (wiping) this.moveWipe(e, pane);
      });
      this.stage.addEventListener("pointermove", (e) => {
        if (touches.has(e.pointerId)) touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
        if (pinch && touches.size === 2) {
          const now = spread();
          const box = pinch.pane.getBoundingClientRect();
          if (pinch.d > 0) this.zoomBy(now.d / pinch.d, now.x - box.left, now.y - box.top);
          this.pan(now.x - pinch.x, now.y - pinch.y);
          Object.assign(pinch, now);
          return;
        }
        if (!drag) return;
        if (drag.wiping) { this.moveWipe(e, drag.pane); return; }
        this.pan(e.clientX - drag.x, e.clientY - drag.y);
        drag.x = e.clientX;
        drag.y = e.clientY;
      });
      const end = (e) => {
        touches.delete(e.pointerId);
        if (touches.size < 2) pinch = null;
        drag = null;
      };
      this.stage.addEventListener("pointerup", end);
      this.stage.addEventListener("pointercancel", end);
      this.stage.addEventListener("wheel", (e) => {
        const pane = e.target.closest(".vw-pane");
        if (!pane) return;
        e.preventDefault();
        const box = pane.getBoundingClientRect();
        this.zoomBy(Math.pow(1.0015, -e.deltaY), e.clientX - box.left, e.clientY - box.top);
      }, { passive: false });
    }

    pan(dx, dy) {
      this.cx -= dx / this.scale;
      this.cy -= dy / this.scale;
      this.fit = false;
      this.changed();
    }

    moveWipe(e, pane) {
      const box = pane.getBoundingClientRect();
      this.wipe = Math.min(1, Math.max(0, (e.clientX - box.left) / box.width));
      this.changed();
    }

    // ------------------------------------------------------------------------------------ draw
    changed() {
      if (this.frameRequested) return;
      this.frameRequested = true;
      requestAnimationFrame(() => { this.frameRequested = false; this.draw(); });
    }

    draw() {
      if (!this.panes.length || !this.b) return;
      const dpr = window.devicePixelRatio || 1;
      this.pending = 0;
      const tag = (v) => "v" + v.n + (this.proof ? " · proof" : "");
      this.panes.forEach((p, i) => {
        const ctx = p.canvas.getContext("2d");
        ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
        ctx.globalAlpha = 1;
        ctx.globalCompositeOperation = "source-over";
        ctx.clearRect(0, 0, p.w, p.h);
        if (this.mode === "single") { this.paint(ctx, p, this.b); p.label.textContent = tag(this.b); }
        else if (this.mode === "side") { const v = i === 0 ? this.a : this.b; this.paint(ctx, p, v); p.label.textContent = tag(v); }
        else if (this.mode === "wipe") {
          this.paint(ctx, p, this.a);
          ctx.save();
          ctx.beginPath();
          ctx.rect(p.w * this.wipe, 0, p.w, p.h);
          ctx.clip();
          this.paint(ctx, p, this.b);
          ctx.restore();
          p.line.style.left = (this.wipe * 100) + "%";
          p.label.textContent = tag(this.a) + " | " + tag(this.b);
        } else if (this.mode === "onion") {
          this.paint(ctx, p, this.a);
          ctx.globalAlpha = this.opacity;
          this.paint(ctx, p, this.b);
          p.label.textContent = tag(this.b) + " at " + Math.round(this.opacity * 100) + " % over " + tag(this.a);
        } else {
          this.paint(ctx, p, this.a);
          ctx.globalCompositeOperation = "difference";
          this.paint(ctx, p, this.b);
          p.label.textContent = "difference " + tag(this.a) + " − " + tag(this.b) + " (black: identical)";
        }
      });
      const percent = Math.round(this.scale * dpr * 100);
      this.$("#viewer-scale").textContent = this.fit ? "fit (" + percent + " %)" : percent + " %";
      Object.assign(this.section.dataset, {
        version: this.b.n, against: this.a.n, scale: (this.scale * dpr).toFixed(4),
        wipe: this.wipe.toFixed(3), proof: this.proof ? "1" : "0", pending: String(this.pending),
      });
    }

    // One version onto one pane, in the shared frame: the proof image, or the tiles the zoom needs
    // (coarser tiles already loaded are drawn first, so a zoom never shows an empty hole).
    paint(ctx, p, v) {
      const dpr = window.devicePixelRatio || 1;
      const k = this.b.w / v.w; // v's pixels onto the frame
      const s = this.scale * k;
      const ox = Math.round((p.w / 2 - this.cx * this.scale) * dpr) / dpr;
      const oy = Math.round((p.h / 2 - this.cy * this.scale) * dpr) / dpr;
      ctx.imageSmoothingEnabled = s * dpr < 1;
      const redraw = () => this.changed();
      if (this.proof) {
        const entry = image(v.proof, redraw);
        if (entry.ok) ctx.drawImage(entry.img, ox, oy, v.w * s, v.h * s);
        else this.pending += 1;
        return;
      }
      const want = Math.min(v.levels - 1, Math.max(0, Math.floor(Math.log2(1 / (s * dpr)) + 1e-9)));
      const x0 = (0 - ox) / s;
      const y0 = (0 - oy) / s;
      const x1 = (p.w - ox) / s;
      const y1 = (p.h - oy) / s;
      for (let level = v.levels - 1; level >= want; level--) {
        const span = v.tile * Math.pow(2, level);
        const cols = Math.ceil(v.w / span);
        const rows = Math.ceil(v.h / span);
        const tx0 = Math.max(0, Math.floor(x0 / span));
        const ty0 = Math.max(0, Math.floor(y0 / span));
        const tx1 = Math.min(cols - 1, Math.floor(x1 / span));
        const ty1 = Math.min(rows - 1, Math.floor(y1 / span));
        const fetch = level === want || level === v.levels - 1;
        // The first tile of a level may make the server build the level (one decode of the original): ask
        // for one and the rest once it has come, and for the coarsest level's before any other level's,
        // instead of a dozen requests racing for one build (the server would answer all but one 503).
        const levelKey = v.tiles + level;
        for (let ty = ty0; ty <= ty1; ty++) {
          for (let tx = tx0; tx <= tx1; tx++) {
            const url = v.tiles + level + "/" + tx + "/" + ty;
            let entry = cache.get(url);
            const first = !asked.has(levelKey) && (level === v.levels - 1 || ready.has(v.tiles));
            if (fetch && (entry || ready.has(levelKey) || first)) {
              asked.add(levelKey);
              entry = image(url, () => { ready.add(levelKey); ready.add(v.tiles); redraw(); });
            }
            if (entry && entry.ok) {
              const scale = Math.pow(2, level) * s;
              ctx.drawImage(entry.img, ox + tx * span * s, oy + ty * span * s,
                entry.img.naturalWidth * scale, entry.img.naturalHeight * scale);
            } else if (level === want && !(entry && entry.failed)) {
              this.pending += 1;
            }
          }
        }
      }
    }
  }

  function mount(section) {
    if (!section || !section.dataset.viewer || !section.querySelector("#viewer-stage")) return null;
    section.viewer = new Viewer(section);
    return section.viewer;
  }

  window.kaalwatchViewer = { mount };
  document.addEventListener("DOMContentLoaded", () => mount(document.getElementById("viewer")));
})();
