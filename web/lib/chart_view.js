// One chart component for every RewardLoop chart (node widgets and the sidebar): a header with the panel's
// title (and a panel picker when a node has several scales), a canvas with nice-tick axes, a labelled
// threshold, the legend beside the plot and a hover readout. The element takes whatever size its container
// gives it (a DOM widget slot on a node, or a block in the sidebar) and never draws outside it.
import { formatNumber, hoverAt, integerTicks, niceTicks, normalizeSpec, rangeText, tickDecimals, tickStep,
         yDomain } from "./chart_math.js";

export const COLORS = ["#5fb3ff", "#ffb347", "#7bd389", "#ff6f91", "#c39bff", "#f4e285", "#78dcdc", "#e68c5a",
                       "#aaaaaa", "#96c85a", "#dc78dc", "#5a8ce6", "#f0c8a0"];
const STYLE_ID = "rewardloop-chart-style";
const CSS = `
div.rewardloop-chart { box-sizing: border-box; display: flex; flex-direction: column; width: 100%; min-width: 0;
  max-width: 100%; contain: inline-size; flex: none; height: var(--rewardloop-chart-height, 180px);
  min-height: var(--rewardloop-chart-height, 180px); overflow: hidden; border-radius: 6px; background: #1d1d21;
  color: #ddd; font: 11px sans-serif; }
.dom-widget > div.rewardloop-chart { height: 100%; min-height: 0; }
.rewardloop-chart .rl-chart-head { display: flex; align-items: center; gap: 6px; padding: 2px 6px 0 6px;
  height: 20px; flex: none; overflow: hidden; white-space: nowrap; }
.rewardloop-chart .rl-chart-title { flex: 1; overflow: hidden; text-overflow: ellipsis; }
.rewardloop-chart select { max-width: 55%; font: 11px sans-serif; background: #222; color: #ddd;
  border: 1px solid #555; border-radius: 4px; padding: 0 2px; height: 17px; }
.rewardloop-chart .rl-chart-status { flex: none; padding: 0 6px; height: 14px; line-height: 14px; color: #9ab;
  font-size: 10px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.rewardloop-chart canvas { flex: 1; min-height: 0; width: 100%; display: block; }
`;

export function ensureStyle() {
  if (document.getElementById(STYLE_ID)) return;
  const style = document.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  document.head.appendChild(style);
}

export class ChartView {
  constructor({ placeholder = "Run the workflow to see this chart.", height = null } = {}) {
    ensureStyle();
    this.placeholder = placeholder;
    this.panels = [];
    this.active = 0;
    this.hoverX = null;
    this.layout = null;
    this.element = document.createElement("div");
    this.element.className = "rewardloop-chart";
    if (height) this.element.style.setProperty("--rewardloop-chart-height", `${height}px`);
    const head = document.createElement("div");
    head.className = "rl-chart-head";
    this.titleEl = document.createElement("span");
    this.titleEl.className = "rl-chart-title";
    this.select = document.createElement("select");
    this.select.style.display = "none";
    this.select.title = "Which chart to show (rewards on different scales get their own chart)";
    this.select.addEventListener("change", () => { this.active = Number(this.select.value) || 0; this.draw(); });
    head.append(this.titleEl, this.select);
    this.statusEl = document.createElement("div");
    this.statusEl.className = "rl-chart-status";
    this.statusEl.style.display = "none";
    this.canvas = document.createElement("canvas");
    this.element.append(head, this.statusEl, this.canvas);
    this.canvas.addEventListener("pointermove", (e) => this.onHover(e));
    this.canvas.addEventListener("pointerleave", () => { this.hoverX = null; this.draw(); });
    if (typeof ResizeObserver === "function") new ResizeObserver(() => this.draw()).observe(this.canvas);
    this.draw();
  }

  setPanels(specs, meta = {}) {
    const previous = this.panels[this.active]?.panel;
    this.panels = (specs ?? []).map(normalizeSpec).filter((p) => p.series.length);
    const keep = this.panels.findIndex((p) => p.panel === previous);
    this.active = keep >= 0 ? keep : 0;
    this.select.replaceChildren(...this.panels.map((p, i) => new Option(p.panel, String(i))));
    this.select.value = String(this.active);
    this.select.style.display = this.panels.length > 1 ? "" : "none";
    const points = this.panels.reduce((n, p) => n + p.series.reduce((m, s) => m + s.y.filter((v) => v !== null).length, 0), 0);
    Object.assign(this.element.dataset, { panels: String(this.panels.length), points: String(points),
                                          prompt: meta.promptId ?? "" });
    this.draw();
  }

  setStatus(text) {
    const t = String(text ?? "");
    if (t === this.statusEl.textContent) return;
    this.statusEl.textContent = t;
    this.statusEl.title = t;
    this.statusEl.style.display = t ? "" : "none";
    this.element.dataset.status = t;
  }

  setHeight(px) {
    this.element.style.setProperty("--rewardloop-chart-height", `${px}px`);
  }

  onHover(e) {
    const L = this.layout;
    if (!L) return;
    const r = this.canvas.getBoundingClientRect();
    const px = ((e.clientX - r.left) / (r.width || 1)) * L.width;
    this.hoverX = px >= L.left && px <= L.right ? L.x0 + ((px - L.left) / (L.right - L.left)) * (L.x1 - L.x0) : null;
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "10px sans-serif";
    const panel = this.panels[this.active];
    this.titleEl.textContent = panel ? panel.title : "";
    // what each reward measures and its scale, on hover over the chart
    this.element.title = panel ? panel.series.map((s) => [`${s.name}${s.range ? ` (${rangeText(s.range)})` : ""}`,
      s.about, s.note].filter(Boolean).join(": ")).join("\n") : "";
    if (!panel) {
      this.layout = null;
      ctx.fillStyle = "#999";
      ctx.textAlign = "center";
      wrapText(ctx, this.placeholder, w / 2, h / 2 - 6, w - 16, 13);
      return;
    }
    this.layout = drawPanel(ctx, panel, w, h, this.hoverX);
  }
}

function wrapText(ctx, text, x, y, maxWidth, lineHeight) {
  const words = text.split(" ");
  let line = "";
  for (const word of words) {
    const next = line ? `${line} ${word}` : word;
    if (ctx.measureText(next).width > maxWidth && line) {
      ctx.fillText(line, x, y);
      y += lineHeight;
      line = word;
    } else line = next;
  }
  if (line) ctx.fillText(line, x, y);
}

function fit(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let t = text;
  while (t.length > 1 && ctx.measureText(`${t}…`).width > width) t = t.slice(0, -1);
  return `${t}…`;
}

// Draws one panel into a w x h canvas; returns the plot geometry (for the hover lookup).
export function drawPanel(ctx, panel, w, h, hoverX = null) {
  const values = panel.series.flatMap((s) => s.y).concat(panel.refs.map((r) => r.value));
  const { lo, hi } = yDomain(values, { range: panel.range, threshold: panel.threshold });
  const yTicks = niceTicks(lo, hi, 4);
  const yDec = tickDecimals(tickStep(lo, hi, 4));
  let x0 = panel.xMin, x1 = panel.xMax;
  // half a step of room at both ends for a few counted items (attempts, segments), so end markers show whole
  const pad = !(x1 > x0) || (panel.integerX && x1 - x0 <= 20) ? 0.5 : (x1 - x0) * 0.015;
  x0 -= pad;
  x1 += pad;
  const xTicks = panel.integerX ? integerTicks(Math.ceil(x0), Math.floor(x1), 6) : niceTicks(x0 + pad, x1 - pad, 5);

  const legendW = Math.max(70, Math.min(150, Math.round(w * 0.32)));
  const labelW = Math.max(...yTicks.map((t) => ctx.measureText(t.toFixed(yDec)).width), 10);
  const left = Math.round(labelW + 18), right = Math.round(w - legendW - 8), top = 6, bottom = Math.round(h - 28);
  const plotOk = right - left > 20 && bottom - top > 20;
  const sx = (x) => left + ((x - x0) / (x1 - x0)) * (right - left);
  const sy = (y) => bottom - ((y - lo) / (hi - lo || 1)) * (bottom - top);

  // grid, ticks and axis labels
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const t of yTicks) {
    const y = Math.round(sy(t)) + 0.5;
    ctx.strokeStyle = "rgba(255,255,255,0.08)";
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
    ctx.fillStyle = "#aaa";
    ctx.fillText(t.toFixed(yDec), left - 4, y);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of xTicks) {
    const x = Math.round(sx(t)) + 0.5;
    ctx.strokeStyle = "#777";
    ctx.beginPath(); ctx.moveTo(x, bottom); ctx.lineTo(x, bottom + 3); ctx.stroke();
    ctx.fillStyle = "#aaa";
    ctx.fillText(panel.integerX ? String(t) : formatNumber(t, 3), x, bottom + 3);
  }
  ctx.strokeStyle = "#666";
  ctx.strokeRect(left + 0.5, top + 0.5, right - left, bottom - top);
  ctx.fillStyle = "#888";
  ctx.textAlign = "right";
  ctx.fillText(fit(ctx, panel.xLabel, right - left), right, bottom + 15);
  if (panel.yLabel) {
    ctx.save();
    ctx.translate(7, (top + bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(fit(ctx, panel.yLabel, bottom - top), 0, 0);
    ctx.restore();
  }

  // data, clipped to the plot
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, right - left, bottom - top);
  ctx.clip();
  const hLines = panel.refs.map((r) => ({ ...r, color: "#cccccc", dash: [2, 3] }));
  if (panel.threshold !== null) hLines.push({ value: panel.threshold, label: panel.thresholdLabel, color: "#ff5555", dash: [5, 3] });
  ctx.textAlign = "right";
  ctx.textBaseline = "bottom";
  for (const line of hLines) {
    const y = Math.round(sy(line.value)) + 0.5;
    ctx.strokeStyle = line.color;
    ctx.setLineDash(line.dash);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(right, y); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = line.color;
    ctx.fillText(line.label, right - 3, y - 2 < top + 10 ? y + 12 : y - 2);
  }
  panel.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = i === 0 && panel.series.length > 1 ? 2 : 1.5;
    const pts = s.x.map((x, j) => [x, s.y[j]]);
    if (s.style === "line") {
      ctx.beginPath();
      let pen = false;
      for (const [x, y] of pts) {
        if (y === null) { pen = false; continue; }
        if (pen) ctx.lineTo(sx(x), sy(y)); else { ctx.moveTo(sx(x), sy(y)); pen = true; }
      }
      ctx.stroke();
    }
    const r = s.style === "points" ? 3 : pts.length <= 40 ? 2 : 0;
    if (r) for (const [x, y] of pts) {
      if (y === null) continue;
      ctx.beginPath(); ctx.arc(sx(x), sy(y), r, 0, 2 * Math.PI); ctx.fill();
    }
  });
  ctx.lineWidth = 1;
  const hit = hoverX === null || !plotOk ? null : hoverAt(panel, hoverX);
  if (hit) {
    const x = Math.round(sx(hit.x)) + 0.5;
    ctx.strokeStyle = "rgba(255,255,255,0.5)";
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
    const lines = [`${panel.xLabel.split(" ")[0] || "x"} ${formatNumber(hit.x, 4)}`];
    panel.series.forEach((s, i) => { if (hit.values[i] !== null) lines.push([i, `${s.name}: ${formatNumber(hit.values[i], 4)}`]); });
    const boxW = Math.min(right - left - 4, 8 + Math.max(...lines.map((l) => ctx.measureText(Array.isArray(l) ? l[1] : l).width + (Array.isArray(l) ? 10 : 0))));
    const boxH = 6 + 12 * lines.length;
    const bx = x + 6 + boxW > right ? Math.max(left + 2, x - 6 - boxW) : x + 6;
    const by = top + 2;
    ctx.fillStyle = "rgba(20,20,24,0.92)";
    ctx.fillRect(bx, by, boxW, boxH);
    ctx.textAlign = "left";
    ctx.textBaseline = "top";
    lines.forEach((l, k) => {
      if (Array.isArray(l)) {
        ctx.fillStyle = COLORS[l[0] % COLORS.length];
        ctx.fillRect(bx + 4, by + 6 + 12 * k, 6, 6);
        ctx.fillStyle = "#eee";
        ctx.fillText(fit(ctx, l[1], boxW - 16), bx + 13, by + 3 + 12 * k);
      } else {
        ctx.fillStyle = "#ccc";
        ctx.fillText(fit(ctx, l, boxW - 8), bx + 4, by + 3 + 12 * k);
      }
    });
  }
  ctx.restore();

  // legend beside the plot: name, value and scale of each series
  const lx = right + 8;
  let ly = top;
  ctx.textAlign = "left";
  ctx.textBaseline = "top";
  panel.series.forEach((s, i) => {
    if (ly + 11 > h) return;
    ctx.fillStyle = COLORS[i % COLORS.length];
    if (s.style === "points") { ctx.beginPath(); ctx.arc(lx + 4, ly + 5, 3, 0, 2 * Math.PI); ctx.fill(); }
    else ctx.fillRect(lx, ly + 4, 9, 2);
    ctx.fillStyle = "#ddd";
    ctx.fillText(fit(ctx, s.name, w - lx - 14), lx + 13, ly);
    ly += 11;
    const scale = s.range ? rangeText(s.range) : "";
    const detail = s.value !== null ? `${formatNumber(s.value, 4)}${scale ? ` (${scale})` : ""}` : scale;
    if (detail && ly + 11 <= h) {
      ctx.fillStyle = "#999";
      ctx.fillText(fit(ctx, detail, w - lx - 14), lx + 13, ly);
      ly += 12;
    }
    ly += 2;
  });
  return { left, right, top, bottom, x0, x1, width: w };
}
