// Drag a deliverable's crop frame along the axis its crop cuts; the range input beside it holds the position
// (0-100 %) the form saves. Without JavaScript the range input alone does the same job.
"use strict";

(function () {
  function setup(figure) {
    const svg = figure.querySelector("svg.frame");
    const range = figure.querySelector("input.frame-position");
    if (!svg || !range || !svg.dataset.axis) return;
    const axis = svg.dataset.axis;
    const art = axis === "x" ? Number(svg.dataset.artW) : Number(svg.dataset.artH);
    const box = axis === "x" ? Number(svg.dataset.boxW) : Number(svg.dataset.boxH);
    const slack = art - box;
    const crop = svg.querySelector("rect.crop");
    const cutA = svg.querySelector("rect.cut-a");
    const cutB = svg.querySelector("rect.cut-b");
    if (slack <= 0 || !crop) return;
    const origin = axis === "x" ? "x" : "y";
    const extent = axis === "x" ? "width" : "height";

    function draw(percent) {
      // Same rounding as kaalwatch.delivery.framing.plan, so the frame drawn is the box built.
      const start = Math.round(slack * percent / 100);
      crop.setAttribute(origin, String(start));
      if (cutA) cutA.setAttribute(extent, String(start));
      if (cutB) {
        cutB.setAttribute(origin, String(start + box));
        cutB.setAttribute(extent, String(art - start - box));
      }
      figure.dataset.start = String(start);
    }

    range.addEventListener("input", function () { draw(Number(range.value)); });

    let dragging = null;
    svg.addEventListener("pointerdown", function (event) {
      dragging = { at: axis === "x" ? event.clientX : event.clientY, from: Number(range.value) };
      svg.setPointerCapture(event.pointerId);
      svg.classList.add("dragging");
      event.preventDefault();
    });
    svg.addEventListener("pointermove", function (event) {
      if (!dragging) return;
      const rect = svg.getBoundingClientRect();
      // Screen pixels to artwork pixels: the SVG is drawn at its view box's aspect, scaled to fit.
      const view = svg.viewBox.baseVal;
      const scale = Math.max(view.width / rect.width, view.height / rect.height);
      const moved = ((axis === "x" ? event.clientX : event.clientY) - dragging.at) * scale;
      const percent = Math.min(100, Math.max(0, dragging.from + moved / slack * 100));
      range.value = String(Math.round(percent * 10) / 10);
      draw(Number(range.value));
    });
    function stop(event) {
      if (!dragging) return;
      dragging = null;
      svg.classList.remove("dragging");
      if (svg.hasPointerCapture(event.pointerId)) svg.releasePointerCapture(event.pointerId);
      figure.classList.add("moved");
    }
    svg.addEventListener("pointerup", stop);
    svg.addEventListener("pointercancel", stop);
    draw(Number(range.value));
  }

  document.querySelectorAll("figure.plan").forEach(setup);
})();
