// A small SVG chart renderer for the console: line charts over time and horizontal bar charts.
// Linear axes from zero, every series in the legend (a legend never hides data), and each drawn
// value carried on its mark (data-series, data-x, data-y / data-label, data-value) with a
// tooltip, so what is drawn can be read back exactly.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2358c4", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285",
    "#e67700", "#5c940d", "#364fc7", "#a61e4d", "#087f5b"];
  const OTHER = "#9aa3b2";

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, content, attrs) {
    const node = el("text", Object.assign({ x, y }, attrs || {}), parent);
    node.textContent = content;
    return node;
  }

  // Round the top of the axis up to 1, 2 or 5 times a power of ten.
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function timeLabel(seconds, spanS) {
    const d = new Date(seconds * 1000).toISOString();
    return spanS > 3 * 86400 ? d.slice(5, 10) : d.slice(5, 10) + " " + d.slice(11, 16);
  }

  function empty(container, height) {
    const svg = el("svg", { viewBox: `0 0 800 ${height}`, role: "img" });
    text(svg, 400, height / 2, "No data in this range", { "text-anchor": "middle", class: "empty" });
    container.replaceChildren(svg);
    return svg;
  }

  function colorOf(series, index) {
    return series.other ? OTHER : series.color || PALETTE[index % PALETTE.length];
  }

  function legend(svg, items, y) {
    const g = el("g", { class: "legend" }, svg);
    let x = 60;
    items.forEach((item) => {
      el("line", { x1: x, y1: y - 4, x2: x + 18, y2: y - 4, stroke: item.color, "stroke-width": 3,
        "stroke-dasharray": item.dashed ? "5 3" : "none" }, g);
      const label = text(g, x + 22, y, item.name, { "data-series": item.name });
      x += 30 + Math.max(40, item.name.length * 6.5);
      if (x > 760) { x = 60; y += 16; }
      return label;
    });
  }

  // series: [{name, other, dashed, color, points: [{x, y}]}]; y null is a gap (no value).
  function line(container, spec) {
    const series = spec.series.filter((s) => s.points.some((p) => p.y !== null));
    const legendRows = Math.ceil(spec.series.length / 5);
    const height = 240 + legendRows * 16;
    if (!series.length) return empty(container, height);
    const W = 800, top = 12, left = 60, right = 16, plotH = 190;
    const xs = series.flatMap((s) => s.points.map((p) => p.x));
    let x0 = Math.min(...xs), x1 = Math.max(...xs);
    if (spec.xMin !== undefined) x0 = Math.min(x0, spec.xMin);
    if (spec.xMax !== undefined) x1 = Math.max(x1, spec.xMax);
    if (x1 === x0) x1 = x0 + 1;
    const yMax = niceMax(Math.max(...series.flatMap((s) => s.points.map((p) => p.y || 0))));
    const sx = (x) => left + ((x - x0) / (x1 - x0)) * (W - left - right);
    const sy = (y) => top + plotH - (y / yMax) * plotH;
    const fmt = spec.yFormat || ((v) => String(v));
    const svg = el("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", class: "line-chart" });
    const axis = el("g", { class: "axis" }, svg);
    for (let i = 0; i <= 4; i++) {
      const v = (yMax * i) / 4, y = sy(v);
      el("line", { x1: left, y1: y, x2: W - right, y2: y }, axis);
      text(axis, left - 6, y + 4, fmt(v), { "text-anchor": "end" });
    }
    const ticks = Math.min(8, Math.max(2, Math.round((x1 - x0) / (spec.bucketS || 1)) + 1));
    for (let i = 0; i < ticks; i++) {
      const x = x0 + ((x1 - x0) * i) / (ticks - 1);
      const anchor = i === 0 ? "start" : i === ticks - 1 ? "end" : "middle";
      text(axis, sx(x), top + plotH + 16, timeLabel(x, x1 - x0), { "text-anchor": anchor });
    }
    spec.series.forEach((s, index) => {
      const color = colorOf(s, index);
      const g = el("g", { class: "series", "data-series": s.name }, svg);
      const drawn = s.points.filter((p) => p.y !== null).sort((a, b) => a.x - b.x);
      if (drawn.length > 1) {
        const d = drawn.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
        el("path", { d, fill: "none", stroke: color, "stroke-width": 2,
          "stroke-dasharray": s.dashed ? "5 3" : "none" }, g);
      }
      drawn.forEach((p) => {
        const c = el("circle", { class: "point", cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1),
          r: drawn.length > 200 ? 1.5 : 3, fill: color, "data-series": s.name, "data-x": p.x,
          "data-y": p.y }, g);
        el("title", {}, c).textContent = `${s.name} ${timeLabel(p.x, 0)}: ${fmt(p.y)}`;
      });
    });
    legend(svg, spec.series.map((s, i) => ({ name: s.name, color: colorOf(s, i), dashed: s.dashed })),
      top + plotH + 40);
    container.replaceChildren(svg);
    return svg;
  }

  // bars: [{label, value}] drawn from zero, one row each; value null is drawn as "n/a".
  function bars(container, spec) {
    const rows = spec.bars;
    const height = 20 + rows.length * 26;
    if (!rows.length) return empty(container, 80);
    const W = 800, left = 280, right = 80;
    const max = spec.max || niceMax(Math.max(...rows.map((b) => b.value || 0)));
    const fmt = spec.format || ((v) => String(v));
    const svg = el("svg", { viewBox: `0 0 ${W} ${height}`, role: "img", class: "bar-chart" });
    const axis = el("g", { class: "axis" }, svg);
    el("line", { x1: left, y1: 4, x2: left, y2: height - 8 }, axis);
    rows.forEach((b, i) => {
      const y = 10 + i * 26;
      const label = b.label.length > 44 ? "…" + b.label.slice(-43) : b.label;
      text(axis, left - 8, y + 13, label, { "text-anchor": "end" });
      const width = b.value === null ? 0 : ((W - left - right) * b.value) / max;
      const rect = el("rect", { class: "bar", x: left, y, width: width.toFixed(1), height: 18,
        fill: PALETTE[0], "data-label": b.label, "data-value": b.value === null ? "" : b.value }, svg);
      el("title", {}, rect).textContent = `${b.label}: ${b.value === null ? "n/a" : fmt(b.value)}`;
      text(axis, left + width + 6, y + 13, b.value === null ? "n/a" : fmt(b.value));
    });
    container.replaceChildren(svg);
    return svg;
  }

  window.WarmgateCharts = { line, bars, niceMax };
})();
