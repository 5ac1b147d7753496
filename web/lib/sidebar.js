// The RewardLoop sidebar tab: training jobs (status, step/total, ETA, curves by step, cancel / resume, where the
// output is) and the recent retry loops of this tab (attempt table; click a loop to jump to its node).
import { ChartView } from "./chart_view.js";
import { formatNumber } from "./chart_math.js";
import { describeJob, metricPanels } from "./jobs.js";

const CSS = `
.rewardloop-sidebar { box-sizing: border-box; padding: 8px 10px; font: 12px sans-serif; color: var(--fg-color, #ddd);
  display: flex; flex-direction: column; gap: 8px; height: 100%; overflow-y: auto; }
.rewardloop-sidebar h3 { margin: 6px 0 2px 0; font-size: 13px; display: flex; align-items: center; gap: 6px; }
.rewardloop-sidebar h3 .rl-spacer { flex: 1; }
.rewardloop-sidebar button { font: 11px sans-serif; padding: 2px 7px; border-radius: 4px; border: 1px solid #666;
  background: #2b2b2f; color: #ddd; cursor: pointer; }
.rewardloop-sidebar button:disabled { opacity: 0.5; cursor: default; }
.rewardloop-sidebar .rl-empty { color: #999; }
.rewardloop-sidebar .rl-job, .rewardloop-sidebar .rl-loop { border: 1px solid #444; border-radius: 6px; padding: 6px;
  display: flex; flex-direction: column; gap: 4px; }
.rewardloop-sidebar .rl-job.selected { border-color: #5fb3ff; }
.rewardloop-sidebar .rl-row { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; }
.rewardloop-sidebar .rl-muted { color: #999; }
.rewardloop-sidebar .rl-path { font-family: monospace; font-size: 10px; color: #aaa; word-break: break-all; }
.rewardloop-sidebar .rl-badge { padding: 0 6px; border-radius: 8px; background: #555; }
.rewardloop-sidebar .rl-badge.running, .rewardloop-sidebar .rl-badge.starting { background: #2a6fb0; }
.rewardloop-sidebar .rl-badge.finished, .rewardloop-sidebar .rl-badge.passed { background: #2e8b57; }
.rewardloop-sidebar .rl-badge.failed, .rewardloop-sidebar .rl-badge.gate_failed,
.rewardloop-sidebar .rl-badge.not-passed { background: #b03a3a; }
.rewardloop-sidebar .rl-badge.cancelled, .rewardloop-sidebar .rl-badge.cancelling { background: #8a6d2a; }
.rewardloop-sidebar .rl-bar { height: 6px; border-radius: 3px; background: #333; overflow: hidden; }
.rewardloop-sidebar .rl-bar > div { height: 100%; background: #5fb3ff; }
.rewardloop-sidebar .rl-error { color: #ff8a8a; white-space: pre-wrap; max-height: 6em; overflow: auto; font-size: 11px; }
.rewardloop-sidebar table { border-collapse: collapse; width: 100%; font-size: 11px; }
.rewardloop-sidebar td, .rewardloop-sidebar th { padding: 1px 4px; text-align: right; border-bottom: 1px solid #3a3a3a; }
.rewardloop-sidebar td:last-child, .rewardloop-sidebar th:last-child { text-align: left; }
.rewardloop-sidebar td.rl-seed { font-family: monospace; font-size: 10px; word-break: break-all; }
.rewardloop-sidebar tr.rl-breakdown td { text-align: left; color: #999; font-size: 10px; border-bottom: 1px solid #3a3a3a; }
.rewardloop-sidebar .rl-loop-head { cursor: pointer; }
.rewardloop-sidebar .rl-loop-head:hover { text-decoration: underline; }
`;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(text, onClick, title = "") {
  const b = el("button", "", text);
  b.title = title;
  b.addEventListener("click", (e) => { e.stopPropagation(); onClick(b); });
  return b;
}

export class RewardLoopPanel {
  // fetchJson(path, init) -> parsed JSON (throws with the server's message); focus(executionId) -> bool;
  // loops() -> recent loops (chart store); notify(severity, summary, detail).
  constructor({ fetchJson, focus, loops, notify, chartHeight }) {
    Object.assign(this, { fetchJson, focus, loops, notify, chartHeight });
    this.jobs = [];
    this.selected = null;
    this.metrics = new Map();  // job id -> rows
    this.chart = new ChartView({ placeholder: "No metrics logged yet.", height: chartHeight() });
    this.chart.element.dataset.rewardloop = "job-chart";
    this.root = el("div", "rewardloop-sidebar");
    this.root.dataset.rewardloop = "sidebar";
    const jobsHead = el("h3", "", "Training jobs");
    jobsHead.append(el("span", "rl-spacer"), button("Refresh", () => this.refresh(), "Read the job list again"));
    this.jobsEl = el("div", "rl-jobs");
    this.loopsEl = el("div", "rl-loops");
    this.root.append(jobsHead, this.jobsEl, el("h3", "", "Recent retry loops"), this.loopsEl);
    this.timer = null;
    this.lastRefresh = 0;
  }

  static ensureStyle() {
    if (document.getElementById("rewardloop-sidebar-style")) return;
    const style = el("style");
    style.id = "rewardloop-sidebar-style";
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  mount(container) {
    RewardLoopPanel.ensureStyle();
    if (container.firstChild !== this.root) container.replaceChildren(this.root);
    this.renderLoops();
    this.refresh();
    if (!this.timer) {
      // Poll only while the tab is open and a job runs; websocket events refresh in between.
      this.timer = setInterval(() => {
        if (!this.root.isConnected) { clearInterval(this.timer); this.timer = null; return; }
        if (this.jobs.some((j) => ["running", "starting", "cancelling"].includes(j.status))) this.refresh();
      }, 3000);
    }
  }

  visible() {
    return this.root.isConnected;
  }

  async refresh() {
    this.lastRefresh = Date.now();
    try {
      const data = await this.fetchJson("/rewardloop/jobs");
      this.jobs = data.jobs ?? [];
      this.error = null;
    } catch (e) {
      this.error = String(e.message ?? e);
    }
    if (!this.selected || !this.jobs.some((j) => j.id === this.selected)) {
      const running = [...this.jobs].reverse().find((j) => ["running", "starting"].includes(j.status));
      this.selected = (running ?? this.jobs[this.jobs.length - 1])?.id ?? null;
    }
    await this.loadMetrics();
    this.renderJobs();
  }

  // A `rewardloop.training` event: update that job at once, re-read the list at most every second.
  onTrainingEvent(detail) {
    const job = this.jobs.find((j) => j.id === detail.job_id);
    if (job) Object.assign(job, { status: detail.status, step: detail.step, stage: detail.stage,
                                  last_metrics: detail.metrics ?? job.last_metrics, error: detail.error });
    if (this.visible()) {
      if (Date.now() - this.lastRefresh > 1000) this.refresh(); else this.renderJobs();
    }
  }

  async loadMetrics() {
    if (!this.selected) return;
    const rows = this.metrics.get(this.selected) ?? [];
    const after = rows.length ? rows[rows.length - 1].step : -1;
    try {
      const data = await this.fetchJson(`/rewardloop/jobs/${encodeURIComponent(this.selected)}/metrics?after=${after}`);
      // A resumed job re-logs steps after its checkpoint: keep the newest row per step.
      const merged = new Map(rows.map((r) => [r.step, r]));
      for (const r of data.rows ?? []) merged.set(r.step, r);
      this.metrics.set(this.selected, [...merged.values()].sort((a, b) => a.step - b.step));
    } catch { /* the list shows the job's error */ }
  }

  async act(job, action, btn) {
    btn.disabled = true;
    try {
      const updated = await this.fetchJson(`/rewardloop/jobs/${encodeURIComponent(job.id)}/${action}`, { method: "POST" });
      Object.assign(job, updated);
      this.notify("info", `Training job ${action === "cancel" ? "cancelling" : "resumed"}`, job.id);
    } catch (e) {
      this.notify("error", `Could not ${action} ${job.id}`, String(e.message ?? e));
    }
    await this.refresh();
  }

  renderJobs() {
    const rows = [];
    if (this.error) rows.push(el("div", "rl-error", `Could not list training jobs: ${this.error}`));
    if (!this.jobs.length && !this.error) {
      rows.push(el("div", "rl-empty", "No training jobs yet. Queue a workflow with a Launch node (e.g. train_grpo)."));
    }
    for (const job of [...this.jobs].reverse()) rows.push(this.jobCard(job));
    this.jobsEl.replaceChildren(...rows);
  }

  jobCard(job) {
    const d = describeJob(job);
    const card = el("div", `rl-job${job.id === this.selected ? " selected" : ""}`);
    Object.assign(card.dataset, { jobId: job.id, status: d.status, step: String(d.step) });
    card.addEventListener("click", () => { this.selected = job.id; this.refresh(); });
    const head = el("div", "rl-row");
    head.append(el("span", `rl-badge ${d.status}`, d.status), el("b", "", job.method ?? ""), el("span", "rl-muted", job.id));
    const bar = el("div", "rl-bar"), fill = el("div");
    fill.style.width = `${Math.round(d.fraction * 100)}%`;
    bar.append(fill);
    const progress = el("div", "rl-row");
    progress.append(el("span", "rl-step", d.progress || "starting"));
    if (d.eta) progress.append(el("span", "rl-muted", d.eta));
    card.append(head, bar, progress);
    if (d.metrics) card.append(el("div", "rl-muted", d.metrics));
    if (d.error) card.append(el("div", "rl-error", job.error));
    const actions = el("div", "rl-row");
    if (["running", "starting"].includes(job.status)) {
      const b = button("Cancel", (btn) => this.act(job, "cancel", btn), "Checkpoint and stop the trainer");
      b.dataset.action = "cancel";
      actions.append(b);
    }
    if (["cancelled", "failed"].includes(job.status)) {
      const b = button("Resume", (btn) => this.act(job, "resume", btn), "Continue from the newest checkpoint");
      b.dataset.action = "resume";
      actions.append(b);
    }
    const folder = job.lora_path || job.run_dir;
    if (folder) {
      actions.append(button("Copy output path", () => this.copy(folder), "Copy the path of the job's output"));
    }
    card.append(actions);
    if (job.lora_path) card.append(el("div", "rl-path", `LoRA: ${job.lora_path}`));
    if (job.run_dir) card.append(el("div", "rl-path", `Run folder: ${job.run_dir}`));
    if (job.id === this.selected) {
      this.chart.setHeight(this.chartHeight());
      this.chart.setPanels(metricPanels(this.metrics.get(job.id) ?? []), { promptId: job.id });
      card.append(this.chart.element);
    }
    return card;
  }

  async copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      this.notify("info", "Path copied", text);
    } catch {
      this.notify("info", "Output path", text);
    }
  }

  renderLoops() {
    const loops = this.loops();
    if (!loops.length) {
      this.loopsEl.replaceChildren(el("div", "rl-empty", "No retry loop has run in this tab yet."));
      return;
    }
    this.loopsEl.replaceChildren(...loops.map((loop) => this.loopCard(loop)));
  }

  loopCard(loop) {
    const card = el("div", "rl-loop");
    Object.assign(card.dataset, { executionId: loop.executionId, prompt: loop.promptId ?? "" });
    const head = el("div", "rl-row rl-loop-head");
    head.title = "Show this node on the canvas";
    const state = loop.done ? (loop.passed ? "passed" : "not-passed") : "running";
    head.append(el("span", `rl-badge ${state}`, loop.done ? (loop.passed ? "passed" : "not passed") : "running"),
                el("b", "", loop.title || `node ${loop.executionId}`),
                el("span", "rl-muted", `${loop.attempts.length}${loop.total ? `/${loop.total}` : ""} ${loop.what ?? "attempt"}s`));
    if (typeof loop.threshold === "number") head.append(el("span", "rl-muted", `threshold ${loop.threshold}`));
    head.addEventListener("click", () => {
      if (!this.focus(loop)) this.notify("info", "Node not in the open workflow", `node ${loop.executionId}`);
    });
    const table = el("table");
    const hr = el("tr");
    for (const h of ["#", "reward", "time", "seed"]) hr.append(el("th", "", h));
    table.append(hr);
    for (const a of loop.attempts) {
      const tr = el("tr");
      if (a.attempt === loop.bestAttempt) tr.style.fontWeight = "bold";
      tr.append(el("td", "", String(a.attempt + 1)), el("td", "", `${formatNumber(a.reward, 4)}${a.passed ? " ✓" : ""}`),
                el("td", "", typeof a.seconds === "number" ? `${a.seconds.toFixed(1)} s` : ""),
                el("td", "rl-seed", String(a.seed ?? "")));
      table.append(tr);
      const parts = breakdownText(a.breakdown);
      if (parts) {  // the breakdown on its own line under its attempt
        const br = el("tr", "rl-breakdown"), td = el("td", "", parts);
        td.colSpan = 4;
        br.append(td);
        table.append(br);
      }
    }
    card.append(head, table);
    return card;
  }
}

// A compact "name value" list of a breakdown (a scores bundle or any JSON object of numbers).
export function breakdownText(b) {
  if (!b || typeof b !== "object") return "";
  const scores = b.scores && typeof b.scores === "object" ? Object.fromEntries(
    Object.entries(b.scores).map(([k, v]) => [k, v?.value])) : b;
  return Object.entries(scores).filter(([, v]) => typeof v === "number")
    .slice(0, 4).map(([k, v]) => `${k} ${formatNumber(v, 3)}`).join(", ");
}
