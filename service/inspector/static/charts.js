// Plain-SVG charts for the inspector: per-layer line charts with reference bands, a forecast fan chart and a
// layer x time heatmap. No library, nothing fetched: the page works air-gapped. Every drawn value also sits in a
// data- attribute, so tests (and curious people) can read exactly what is shown.
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];

  function el(name, attrs = {}, parent = null) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function extent(values) {
    const finite = values.filter((v) => Number.isFinite(v));
    if (!finite.length) return [0, 1];
    let lo = Math.min(...finite), hi = Math.max(...finite);
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const pad = (hi - lo) * 0.06;
    return [lo - pad, hi + pad];
  }

  function fmt(v) {
    if (!Number.isFinite(v)) return "–";
    const a = Math.abs(v);
    return a !== 0 && (a < 0.01 || a >= 1e4) ? v.toExponential(1) : v.toPrecision(3);
  }

  function frame(width, height, margin, xDomain, yDomain) {
    const x = (v) => margin.left + ((v - xDomain[0]) / (xDomain[1] - xDomain[0] || 1)) * (width - margin.left - margin.right);
    const y = (v) => height - margin.bottom - ((v - yDomain[0]) / (yDomain[1] - yDomain[0])) * (height - margin.top - margin.bottom);
    return { x, y };
  }

  function axes(svg, width, height, margin, yDomain, y, title) {
    el("text", { x: margin.left, y: 14, class: "chart-title" }, svg).textContent = title;
    for (const v of [yDomain[0], (yDomain[0] + yDomain[1]) / 2, yDomain[1]]) {
      el("line", { x1: margin.left, x2: width - margin.right, y1: y(v), y2: y(v), class: "grid" }, svg);
      el("text", { x: margin.left - 4, y: y(v) + 4, class: "tick", "text-anchor": "end" }, svg).textContent = fmt(v);
    }
  }

  // series: [{name, color, values: [number|null per layer], band: [{lo, hi}|null per layer]}]
  function layerChart(container, { title, stat, layers, series }) {
    const width = 340, height = 220, margin = { top: 22, right: 8, bottom: 28, left: 52 };
    const all = series.flatMap((s) => [...s.values, ...s.band.flatMap((b) => (b ? [b.lo, b.hi] : []))]);
    const yDomain = extent(all.map((v) => (v === null ? NaN : v)));
    const { x, y } = frame(width, height, margin, [0, Math.max(layers.length - 1, 1)], yDomain);
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "layer-chart", "data-stat": stat, role: "img" });
    el("title", {}, svg).textContent = `${title}: per layer, one line per model, reference mean ± 2 std shaded`;
    axes(svg, width, height, margin, yDomain, y, title);
    layers.forEach((name, i) => {
      if (layers.length <= 20 || i % 2 === 0) {
        el("text", { x: x(i), y: height - margin.bottom + 12, class: "tick", "text-anchor": "middle" }, svg).textContent = i;
      }
    });
    el("text", { x: width / 2, y: height - 2, class: "tick", "text-anchor": "middle" }, svg).textContent = "layer";
    for (const s of series) {
      const upper = [], lower = [];
      s.band.forEach((b, i) => { if (b) { upper.push(`${x(i)},${y(b.hi)}`); lower.unshift(`${x(i)},${y(b.lo)}`); } });
      if (upper.length) {
        el("polygon", { points: [...upper, ...lower].join(" "), fill: s.color, class: "band", "data-model": s.name }, svg);
      }
    }
    for (const s of series) {
      const points = s.values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
      el("polyline", { points: points.join(" "), stroke: s.color, class: "line", "data-model": s.name }, svg);
      s.values.forEach((v, i) => {
        if (v === null) return;
        const dot = el("circle", {
          cx: x(i), cy: y(v), r: 2.6, fill: s.color, class: "point",
          "data-model": s.name, "data-layer": i, "data-layer-name": layers[i], "data-value": v,
        }, svg);
        el("title", {}, dot).textContent = `${s.name} · ${layers[i]} · ${stat} ${fmt(v)}`;
      });
    }
    container.appendChild(svg);
    return svg;
  }

  // history: numbers; quantiles: {"0.1": [...], "0.5": [...], ...} over the horizon
  function fanChart(container, { history, quantiles, color = PALETTE[0] }) {
    const width = 900, height = 280, margin = { top: 22, right: 12, bottom: 24, left: 60 };
    const levels = Object.keys(quantiles).map(Number).sort((a, b) => a - b);
    const horizon = quantiles[String(levels[0])].length;
    const n = history.length;
    const yDomain = extent([...history, ...levels.flatMap((q) => quantiles[keyOf(quantiles, q)])]);
    const { x, y } = frame(width, height, margin, [0, n + horizon - 1], yDomain);
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, id: "fan-chart", role: "img" });
    el("title", {}, svg).textContent = "forecast fan chart: the series, then the forecast quantiles";
    axes(svg, width, height, margin, yDomain, y, `forecast: ${levels.length} quantiles over ${horizon} steps`);
    for (let i = 0; i < Math.floor(levels.length / 2); i++) {
      const lo = quantiles[keyOf(quantiles, levels[i])], hi = quantiles[keyOf(quantiles, levels[levels.length - 1 - i])];
      const top = hi.map((v, t) => `${x(n + t)},${y(v)}`), bottom = lo.map((v, t) => `${x(n + t)},${y(v)}`).reverse();
      el("polygon", {
        points: [...top, ...bottom].join(" "), fill: color, class: "fan",
        "fill-opacity": 0.12 + 0.12 * i, "data-lower": levels[i], "data-upper": levels[levels.length - 1 - i],
      }, svg);
    }
    el("polyline", { points: history.map((v, t) => `${x(t)},${y(v)}`).join(" "), stroke: "#333", class: "line history" }, svg);
    const median = levels.includes(0.5) ? quantiles[keyOf(quantiles, 0.5)] : null;
    if (median) {
      el("polyline", {
        points: [`${x(n - 1)},${y(history[n - 1])}`, ...median.map((v, t) => `${x(n + t)},${y(v)}`)].join(" "),
        stroke: color, class: "line median", "data-values": JSON.stringify(median),
      }, svg);
    }
    el("line", { x1: x(n - 1), x2: x(n - 1), y1: margin.top, y2: height - margin.bottom, class: "now" }, svg);
    container.appendChild(svg);
    return svg;
  }

  function keyOf(quantiles, level) {
    return Object.keys(quantiles).find((k) => Number(k) === level);
  }

  function driftColor(v) {
    if (v === null || !Number.isFinite(v)) return "#d9d9d9";
    const t = Math.min(v / 4, 1); // 0: as the reference ... 4 and above: far off (the alert is at 3)
    const hue = 120 - 120 * t;
    return `hsl(${hue}, 70%, ${88 - 38 * t}%)`;
  }

  // columns: [{label, samples, drift: [number|null per layer]}], oldest first
  function heatmap(container, { layers, columns }) {
    const cell = 14, labelWidth = 150, top = 20;
    const width = labelWidth + Math.max(columns.length, 1) * cell + 10, height = top + layers.length * cell + 22;
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, id: "drift-heatmap", role: "img" });
    el("title", {}, svg).textContent = "drift per layer (rows) over time (columns)";
    layers.forEach((name, row) => {
      el("text", { x: labelWidth - 6, y: top + row * cell + cell - 3, class: "tick", "text-anchor": "end" }, svg).textContent = name;
    });
    columns.forEach((column, c) => {
      column.drift.forEach((v, row) => {
        const rect = el("rect", {
          x: labelWidth + c * cell, y: top + row * cell, width: cell - 1, height: cell - 1, fill: driftColor(v),
          class: "cell", "data-layer": layers[row], "data-column": c, "data-drift": v === null ? "" : v,
        }, svg);
        el("title", {}, rect).textContent = `${layers[row]} at ${column.label}: drift ${fmt(v)} (${column.samples} samples)`;
      });
    });
    if (columns.length) {
      el("text", { x: labelWidth, y: height - 6, class: "tick" }, svg).textContent = columns[0].label;
      el("text", { x: width - 10, y: height - 6, class: "tick", "text-anchor": "end" }, svg).textContent = columns[columns.length - 1].label;
    }
    container.replaceChildren(svg);
    return svg;
  }

  return { PALETTE, layerChart, fanChart, heatmap, fmt };
})();
