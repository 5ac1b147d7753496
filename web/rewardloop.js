// ComfyUI-RewardLoop front-end extension. Bundled, no CDN (the CSP blocks other origins with --disable-api-nodes).
//  - Charts: a DOM widget (node.addDOMWidget) on every reward, composite, report and loop node, so the classic
//    canvas and Nodes 2.0 both lay it out with the node's other widgets. Filled from the node's `rewardloop_chart`
//    UI output and, while a retry loop runs, from `rewardloop.loop` events; state keyed by the loaded graph and
//    the node's execution id, tagged with the prompt that produced it (web/lib/chart_store.js).
//  - Training Job node: a status widget fed by its `rewardloop_job` output and `rewardloop.training` events for
//    that job only.
//  - A RewardLoop sidebar tab (training jobs with curves by step, cancel / resume; recent retry loops) and toasts
//    when a job finishes or fails or a loop ends without passing.
// Newer frontend APIs (sidebar tabs, toasts, settings) are feature-detected; the charts work without them.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

import { ChartStore, executingNodeId } from "./lib/chart_store.js";
import { executionIdsOf, focusNode, nodeByExecutionId, rootGraph, walkNodes } from "./lib/graph.js";
import { RewardLoopPanel } from "./lib/sidebar.js";
import { addChartWidget, addJobWidget, fitNode } from "./lib/widgets.js";

const VERSION = "0.2.0";
const SETTING_ENABLED = "RewardLoop.Charts.Enabled";
const SETTING_HEIGHT = "RewardLoop.Charts.Height";
const DEFAULT_HEIGHT = 180;
// Nodes that send charts besides the scorers (recognised by their REWARDLOOP_SCORES output).
const CHART_NODES = new Set(["RewardLoopRewardReport", "RewardLoopRetryClose", "RewardLoopBestOfN",
                             "RewardLoopJoinSegments"]);
const JOB_NODES = new Set(["RewardLoopTrainingJob"]);
const TERMINAL = new Set(["finished", "failed", "cancelled", "gate_failed"]);

function setting(id, fallback) {
  const value = app.extensionManager?.setting?.get?.(id) ?? app.ui?.settings?.getSettingValue?.(id);
  return value === undefined || value === null ? fallback : value;
}

const settings = {
  enabled: () => setting(SETTING_ENABLED, true) !== false,
  height: () => Math.max(100, Math.min(600, Number(setting(SETTING_HEIGHT, DEFAULT_HEIGHT)) || DEFAULT_HEIGHT)),
};

function toast(severity, summary, detail, life = 8000) {
  const t = app.extensionManager?.toast;
  if (t?.add) t.add({ severity, summary, detail, life });
  else console.log(`[rewardloop] ${summary}: ${detail}`);
  state.toasts.push({ severity, summary, detail });
}

function chartState(node) {
  return node?.__rewardloop?.kind === "chart" ? node.__rewardloop : null;
}

function redraw(executionId) {
  const node = nodeByExecutionId(app, executionId);
  const chart = chartState(node);
  if (!chart) return;
  const entry = store.get(executionId);
  chart.view.setPanels(entry?.specs ?? [], { promptId: entry?.promptId });
  chart.view.setStatus(entry?.status ?? "");
  chart.view.element.dataset.executionId = String(executionId);
}

const store = new ChartStore(redraw);
let currentPrompt = null;
const seenJobStatus = new Map();
let panel = null;
const state = { version: VERSION, store, toasts: [], settings, api };

function eachChartNode(fn) {
  for (const [, node] of walkNodes(rootGraph(app))) {
    const chart = chartState(node);
    if (chart) fn(node, chart);
  }
}

// Setting handlers run before the frontend stores the new value: read it once the change is in.
function applySettingsSoon() {
  setTimeout(applySettings, 0);
}

function applySettings() {
  eachChartNode((node, chart) => chart.apply());
  app.canvas?.setDirty?.(true, true);
}

async function queuedPromptIds() {
  try {
    const queue = await api.getQueue?.();
    const items = [...(queue?.Running ?? []), ...(queue?.Pending ?? [])];
    return items.map((item) => item.prompt?.[1] ?? item.prompt_id).filter(Boolean);
  } catch {
    return [];
  }
}

function onExecuted({ detail }) {
  const executionId = String(detail?.display_node ?? detail?.node ?? "");
  const output = detail?.output;
  if (!executionId || !output) return;
  const promptId = detail.prompt_id ?? currentPrompt;
  if (Array.isArray(output.rewardloop_chart)) store.setCharts(executionId, promptId, output.rewardloop_chart);
  if (Array.isArray(output.rewardloop_log) && output.rewardloop_log[0]) {
    const node = nodeByExecutionId(app, executionId);
    const result = store.loopLog(executionId, promptId, output.rewardloop_log[0], node?.title ?? "");
    if (result?.endedNow && !result.loop.passed) loopFailedToast(result.loop);
    panel?.renderLoops();
  }
  if (Array.isArray(output.rewardloop_job) && output.rewardloop_job.length) {
    const node = nodeByExecutionId(app, executionId);
    const job = node?.__rewardloop?.kind === "job" ? node.__rewardloop : null;
    const info = output.rewardloop_job[0];
    if (job) info.jobs ? job.showList(info.jobs) : job.show(info);
  }
}

function loopFailedToast(loop) {
  const best = typeof loop.bestReward === "number" ? loop.bestReward.toFixed(4) : "n/a";
  toast("warn", "Retry loop ended without passing",
        `${loop.title || `node ${loop.executionId}`}: best reward ${best} after ${loop.attempts.length} attempt(s), `
        + `threshold ${loop.threshold}. The best attempt was returned.`);
}

function onLoopEvent({ detail }) {
  const executionId = detail?.node_id ?? detail?.node;
  if (executionId === undefined || executionId === null) return;
  const result = store.loopEvent(String(executionId), detail.prompt_id ?? currentPrompt, detail);
  if (!result) return;
  const node = nodeByExecutionId(app, executionId);
  if (node && !result.loop.title) result.loop.title = node.title ?? "";
  if (result.endedNow && !result.loop.passed) loopFailedToast(result.loop);
  panel?.renderLoops();
}

function onTrainingEvent({ detail }) {
  if (!detail?.job_id) return;
  // Only widgets following this job update: a training event never draws on other nodes.
  for (const [, node] of walkNodes(rootGraph(app))) {
    const job = node.__rewardloop?.kind === "job" ? node.__rewardloop : null;
    if (job && job.jobId === detail.job_id) job.show(detail);
  }
  panel?.onTrainingEvent(detail);
  const before = seenJobStatus.get(detail.job_id);
  seenJobStatus.set(detail.job_id, detail.status);
  if (before !== detail.status && TERMINAL.has(detail.status) && detail.status !== "cancelled") {
    if (detail.status === "finished") {
      toast("success", "Training job finished", `${detail.job_id}${detail.lora_path ? `: ${detail.lora_path.split(/[\\/]/).pop()}` : ""}`);
    } else {
      toast("error", `Training job ${detail.status === "gate_failed" ? "stopped at a curriculum gate" : "failed"}`,
            `${detail.job_id}: ${String(detail.error ?? "").split("\n")[0].slice(0, 300)}`, 15000);
    }
  }
}

async function fetchJson(path, init) {
  const res = await api.fetchApi(path, init);
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) throw new Error(body?.error ?? `${res.status} ${res.statusText}`);
  return body;
}

function registerSidebar() {
  const manager = app.extensionManager;
  const register = manager?.registerSidebarTab ?? manager?.sidebarTab?.registerSidebarTab;
  if (typeof register !== "function") return false;
  panel = new RewardLoopPanel({
    fetchJson, loops: () => store.loops,
    notify: (severity, summary, detail) => toast(severity, summary, detail, 4000),
    chartHeight: settings.height,
    focus: (loop) => {
      if (loop.generation !== store.generation) return false;
      return focusNode(app, nodeByExecutionId(app, loop.executionId));
    },
  });
  register.call(manager, {
    id: "rewardloop", icon: "pi pi-chart-line", title: "RewardLoop", tooltip: "RewardLoop: training jobs and retry loops",
    type: "custom", render: (el) => panel.mount(el),
  });
  return true;
}

app.registerExtension({
  name: "rewardloop.core",
  settings: [
    { id: SETTING_ENABLED, category: ["RewardLoop", "Charts", "Enabled"], name: "Show reward charts on nodes",
      type: "boolean", defaultValue: true, onChange: applySettingsSoon },
    { id: SETTING_HEIGHT, category: ["RewardLoop", "Charts", "Height"], name: "Chart height on nodes (px)",
      type: "slider", attrs: { min: 100, max: 600, step: 10 }, defaultValue: DEFAULT_HEIGHT,
      onChange: applySettingsSoon },
  ],
  async setup() {
    api.addEventListener("execution_start", ({ detail }) => { currentPrompt = detail?.prompt_id ?? null; });
    api.addEventListener("executing", ({ detail }) => {
      const id = executingNodeId(detail);
      if (id !== null) store.executing(String(id), detail?.prompt_id ?? currentPrompt);
    });
    api.addEventListener("executed", onExecuted);
    api.addEventListener("rewardloop.loop", onLoopEvent);
    api.addEventListener("rewardloop.status", ({ detail }) => {
      if (detail?.node_id) store.setStatus(String(detail.node_id), detail.prompt_id ?? currentPrompt, detail.text, detail.final);
    });
    api.addEventListener("rewardloop.training", onTrainingEvent);
    state.sidebar = registerSidebar();
    window.__REWARDLOOP = state;
    console.log("[rewardloop] extension loaded");
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!nodeData?.name?.startsWith("RewardLoop")) return;
    (window.__REWARDLOOP_NODE_DEFS ??= []).push(nodeData.name);
    const outputs = nodeData.output ?? [];
    const kind = CHART_NODES.has(nodeData.name) || outputs.includes("REWARDLOOP_SCORES") ? "chart"
      : JOB_NODES.has(nodeData.name) ? "job" : null;
    if (!kind) return;
    nodeType.prototype.__rewardloopKind = kind;
    const onRemoved = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      onRemoved?.apply(this, arguments);
      for (const id of store.executionIds()) if (nodeByExecutionId(app, id) === this || !nodeByExecutionId(app, id)) store.remove(id);
    };
  },
  nodeCreated(node) {
    if (node.__rewardloop || !node.__rewardloopKind || typeof node.addDOMWidget !== "function") return;
    const kind = node.__rewardloopKind;
    node.__rewardloop = Object.assign(kind === "chart" ? addChartWidget(node, settings) : addJobWidget(node), { kind });
    // an existing node gets charts already stored for it (a node pasted back, a subgraph opened)
    for (const id of executionIdsOf(app, node)) if (store.get(id)) redraw(id);
  },
  loadedGraphNode(node) {
    if (node.__rewardloop) fitNode(node);
  },
  async beforeConfigureGraph() {
    store.graphLoaded();
    store.markStale(await queuedPromptIds());
  },
});
