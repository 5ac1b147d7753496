// The pack's DOM widgets (node.addDOMWidget: both the classic canvas and Nodes 2.0 lay them out with the other
// widgets): the chart on reward / loop nodes and the status panel of the Training Job node. Neither is a workflow
// value: they are never saved in widgets_values nor sent to the server.
import { ChartView } from "./chart_view.js";
import { describeJob } from "./jobs.js";

export const CHART_WIDGET = "rewardloop_chart";
export const JOB_WIDGET = "rewardloop_job";
export const JOB_WIDGET_HEIGHT = 112;
const MARGIN = 6;

function addWidget(node, name, element, height) {
  const widget = node.addDOMWidget(name, name, element, {
    serialize: false, hideOnZoom: true, margin: MARGIN,
    getMinHeight: () => height() + 2 * MARGIN, getMaxHeight: () => height() + 2 * MARGIN,
    getHeight: () => height() + 2 * MARGIN,
    getValue: () => "", setValue: () => {},
  });
  widget.serialize = false;
  return widget;
}

// Grows the node to what its widgets need (a saved workflow may carry an older, smaller size); never shrinks it.
export function fitNode(node) {
  if (!node?.computeSize || !node.size) return;
  const [w, h] = node.computeSize();
  if (node.size[0] < w || node.size[1] < h) node.setSize([Math.max(node.size[0], w), Math.max(node.size[1], h)]);
  node.setDirtyCanvas?.(true, true);
}

export function addChartWidget(node, settings) {
  const view = new ChartView({ placeholder: "Run the workflow to see this node's rewards here.", height: settings.height() });
  view.element.dataset.rewardloop = "chart";
  const height = () => (settings.enabled() ? settings.height() : 0);
  const widget = addWidget(node, CHART_WIDGET, view.element, height);
  const state = { view, widget, apply() {
    view.setHeight(height());
    view.element.style.display = settings.enabled() ? "" : "none";
    fitNode(node);
  } };
  state.apply();
  return state;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const JOB_CSS = `
div.rewardloop-job { box-sizing: border-box; height: ${JOB_WIDGET_HEIGHT}px; min-height: ${JOB_WIDGET_HEIGHT}px; flex: none;
  width: 100%; min-width: 0; max-width: 100%; contain: inline-size; overflow: hidden; padding: 5px 7px;
  border-radius: 6px; background: #1d1d21; color: #ddd; font: 11px sans-serif; display: flex;
  flex-direction: column; gap: 3px; }
.dom-widget > div.rewardloop-job { height: 100%; min-height: 0; }
.rewardloop-job .rl-row { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.rewardloop-job .rl-badge { display: inline-block; padding: 0 5px; border-radius: 8px; background: #555; margin-right: 5px; }
.rewardloop-job .rl-badge.running, .rewardloop-job .rl-badge.starting { background: #2a6fb0; }
.rewardloop-job .rl-badge.finished { background: #2e8b57; }
.rewardloop-job .rl-badge.failed, .rewardloop-job .rl-badge.gate_failed { background: #b03a3a; }
.rewardloop-job .rl-badge.cancelled, .rewardloop-job .rl-badge.cancelling { background: #8a6d2a; }
.rewardloop-job .rl-bar { height: 6px; border-radius: 3px; background: #333; overflow: hidden; flex: none; }
.rewardloop-job .rl-bar > div { height: 100%; background: #5fb3ff; width: 0; }
.rewardloop-job .rl-error { color: #ff8a8a; white-space: normal; overflow: hidden; flex: 1; }
`;

export function addJobWidget(node) {
  if (!document.getElementById("rewardloop-job-style")) {
    const style = el("style");
    style.id = "rewardloop-job-style";
    style.textContent = JOB_CSS;
    document.head.appendChild(style);
  }
  const root = el("div", "rewardloop-job");
  root.dataset.rewardloop = "job";
  const head = el("div", "rl-row"), badge = el("span", "rl-badge", "no job"), idText = el("span", "", "");
  head.append(badge, idText);
  const bar = el("div", "rl-bar"), fill = el("div");
  bar.append(fill);
  const progress = el("div", "rl-row"), metrics = el("div", "rl-row"), extra = el("div", "rl-error");
  root.append(head, bar, progress, metrics, extra);
  progress.textContent = "Queue the workflow to launch the job or show its status.";
  const widget = addWidget(node, JOB_WIDGET, root, () => JOB_WIDGET_HEIGHT);
  const state = {
    widget, element: root, jobId: null,
    show(job) {
      const d = describeJob(job);
      state.jobId = job.job_id ?? job.id ?? state.jobId;
      badge.textContent = d.status;
      badge.className = `rl-badge ${d.status}`;
      idText.textContent = state.jobId ?? "";
      fill.style.width = `${Math.round(d.fraction * 100)}%`;
      progress.textContent = [d.progress, d.eta].filter(Boolean).join(" · ");
      metrics.textContent = d.metrics;
      extra.textContent = d.error || (d.lora ? `LoRA: ${d.lora}` : "");
      extra.style.color = d.error ? "" : "#9fd39f";
      Object.assign(root.dataset, { status: d.status, step: String(d.step), job: state.jobId ?? "" });
    },
    showList(jobs) {
      state.jobId = null;
      badge.textContent = `${jobs.length} job${jobs.length === 1 ? "" : "s"}`;
      badge.className = "rl-badge";
      idText.textContent = "";
      fill.style.width = "0";
      progress.textContent = jobs.length ? "Give a job_id to follow one; the RewardLoop sidebar lists them all." : "no training jobs yet";
      metrics.textContent = jobs.slice(-2).map((j) => `${j.id}: ${j.status}`).join(" · ");
      extra.textContent = "";
      Object.assign(root.dataset, { status: "list", step: "0", job: "" });
    },
  };
  fitNode(node);
  return state;
}
