// ComfyUI-RewardLoop front-end extension. Bundled, no CDN (the CSP blocks other origins with
// --disable-api-nodes). Draws the pack's charts on its nodes:
//  - after a run, from the node's UI output `rewardloop_chart` (per-frame rewards, attempts, losses);
//  - live, from websocket events `rewardloop.loop` (one point per attempt) and `rewardloop.training`
//    (metrics per step), so a loop or a training job is visible while it runs and after a tab reload.
// Chart spec (Python side): {title, x_label?, series: [{name, values: [number|null]}], threshold?}.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EVENTS = ["rewardloop.loop", "rewardloop.training", "rewardloop.rewards"];
const MAX_EVENTS = 500;
const MAX_POINTS = 2000;
const CHART_HEIGHT = 150;
const COLORS = ["#5fb3ff", "#ffb347", "#7bd389", "#ff6f91", "#c39bff", "#f4e285"];

const state = { events: [], charts: new Map() }; // charts: node id -> [chart spec]

function nodeById(id) {
  return app.graph?.getNodeById?.(Number(id)) ?? app.graph?.getNodeById?.(id) ?? null;
}

function setCharts(nodeId, charts) {
  state.charts.set(String(nodeId), charts);
  const node = nodeById(nodeId);
  if (node) {
    node.__rewardloopCharts = charts;
    const wanted = CHART_HEIGHT * charts.length + 40;
    if (node.size[1] < wanted + 120) node.setSize([Math.max(node.size[0], 300), node.size[1] + wanted]);
  }
  app.graph?.setDirtyCanvas(true, true);
}

// Live series keyed by node and series name, appended to by websocket events.
function appendPoint(nodeId, title, seriesName, value, threshold) {
  const charts = state.charts.get(String(nodeId)) ?? [];
  let chart = charts.find((c) => c.title === title);
  if (!chart) {
    chart = { title, series: [], threshold };
    charts.push(chart);
  }
  let series = chart.series.find((s) => s.name === seriesName);
  if (!series) {
    series = { name: seriesName, values: [] };
    chart.series.push(series);
  }
  series.values.push(value);
  if (series.values.length > MAX_POINTS) series.values.splice(0, series.values.length - MAX_POINTS);
  if (threshold !== undefined && threshold !== null) chart.threshold = threshold;
  setCharts(nodeId, charts);
}

function onEvent(type, detail) {
  state.events.push({ type, detail, at: Date.now() });
  if (state.events.length > MAX_EVENTS) state.events.splice(0, state.events.length - MAX_EVENTS);
  const nodeId = detail?.node_id ?? detail?.node;
  if (nodeId === undefined || nodeId === null) return;
  if (type === "rewardloop.loop" && typeof detail.reward === "number") {
    appendPoint(nodeId, "reward per attempt", "reward", detail.reward, detail.threshold);
  } else if (type === "rewardloop.training" && detail.metrics) {
    for (const [name, value] of Object.entries(detail.metrics)) {
      if (typeof value === "number") appendPoint(nodeId, `training: ${name}`, name, value);
    }
  }
}

function drawChart(ctx, chart, x, y, w, h) {
  ctx.save();
  ctx.fillStyle = "rgba(0,0,0,0.35)";
  ctx.fillRect(x, y, w, h);
  ctx.fillStyle = "#ddd";
  ctx.font = "11px sans-serif";
  ctx.fillText(chart.title ?? "", x + 6, y + 13);
  const values = chart.series.flatMap((s) => s.values.filter((v) => typeof v === "number" && isFinite(v)));
  if (typeof chart.threshold === "number") values.push(chart.threshold);
  if (!values.length) {
    ctx.restore();
    return;
  }
  let lo = Math.min(...values), hi = Math.max(...values);
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const px = x + 34, py = y + 20, pw = w - 42, ph = h - 30;
  const sy = (v) => py + ph - ((v - lo) / (hi - lo)) * ph;
  ctx.fillStyle = "#aaa";
  ctx.fillText(hi.toFixed(3), x + 2, py + 8);
  ctx.fillText(lo.toFixed(3), x + 2, py + ph);
  if (typeof chart.threshold === "number") {
    ctx.strokeStyle = "#ff5555";
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(px, sy(chart.threshold));
    ctx.lineTo(px + pw, sy(chart.threshold));
    ctx.stroke();
    ctx.setLineDash([]);
  }
  chart.series.forEach((s, i) => {
    const n = s.values.length;
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.fillStyle = ctx.strokeStyle;
    ctx.beginPath();
    let started = false;
    s.values.forEach((v, j) => {
      if (typeof v !== "number" || !isFinite(v)) { started = false; return; }
      const cx = px + (n <= 1 ? pw / 2 : (j / (n - 1)) * pw);
      if (!started) { ctx.moveTo(cx, sy(v)); started = true; } else ctx.lineTo(cx, sy(v));
      if (n <= 40) ctx.fillRect(cx - 1.5, sy(v) - 1.5, 3, 3);
    });
    ctx.stroke();
    ctx.fillText(s.name, px + pw - 90, py + 10 + 12 * i);
  });
  ctx.restore();
}

app.registerExtension({
  name: "rewardloop.core",
  async setup() {
    for (const type of EVENTS) api.addEventListener(type, (e) => onEvent(type, e.detail));
    window.__REWARDLOOP = { version: "0.1.0", state };
    console.log("[rewardloop] extension loaded");
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("RewardLoop")) return;
    (window.__REWARDLOOP_NODE_DEFS ??= []).push(nodeData.name);

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      const charts = output?.rewardloop_chart;
      if (Array.isArray(charts) && charts.length) setCharts(this.id, charts);
    };

    const onDrawForeground = nodeType.prototype.onDrawForeground;
    nodeType.prototype.onDrawForeground = function (ctx) {
      onDrawForeground?.apply(this, arguments);
      const charts = this.__rewardloopCharts ?? state.charts.get(String(this.id));
      if (!charts?.length || this.flags?.collapsed) return;
      const w = this.size[0] - 16;
      let y = this.size[1] - CHART_HEIGHT * charts.length - 6;
      for (const chart of charts) {
        drawChart(ctx, chart, 8, y, w, CHART_HEIGHT - 6);
        y += CHART_HEIGHT;
      }
    };
  },
});
