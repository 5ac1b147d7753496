// Training jobs as people read them, and their logged metrics as chart panels by step. No DOM: tested under Node.
import { formatNumber } from "./chart_math.js";

export function formatDuration(s) {
  if (typeof s !== "number" || !Number.isFinite(s) || s < 0) return "";
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

// Job status as people read it; `job` is a /rewardloop/jobs entry or a `rewardloop.training` event.
export function describeJob(job) {
  const step = job.step ?? 0, total = job.max_steps ?? null;
  const metrics = Object.entries(job.metrics ?? job.last_metrics ?? {})
    .filter(([, v]) => typeof v === "number").slice(0, 4).map(([k, v]) => `${k} ${formatNumber(v, 3)}`).join(" · ");
  return {
    status: job.status ?? "unknown", step, total, fraction: total ? Math.min(1, step / total) : 0,
    progress: total ? `step ${step}/${total}${job.stage ? ` (${job.stage})` : ""}` : job.stage ?? "",
    eta: job.status === "running" && typeof job.eta_s === "number" ? `about ${formatDuration(job.eta_s)} left` : "",
    metrics, error: job.error ? String(job.error).split("\n").slice(0, 3).join(" ") : "",
    lora: job.lora_path ? String(job.lora_path).split(/[\\/]/).pop() : "",
  };
}

const METRIC_GROUPS = [
  ["reward", (k) => /^(reward|gold)_mean$/.test(k)],
  ["loss", (k) => /(^|_)loss$/.test(k)],
  ["learning rate", (k) => k === "lr"],
  ["accuracy", (k) => /(^|_)(implicit_)?acc$/.test(k)],
  ["validation", (k) => /^val_/.test(k)],
];

// Rows of metrics.jsonl ({step, name: value, ...}) -> chart specs with step on the x axis: the reward beside the
// held-out gold reward, the losses, the learning rate, accuracies, validation metrics, then one panel per other metric.
export function metricPanels(rows) {
  const numeric = (v) => typeof v === "number" && Number.isFinite(v);
  const keys = [];
  for (const row of rows) for (const [k, v] of Object.entries(row)) if (k !== "step" && numeric(v) && !keys.includes(k)) keys.push(k);
  const used = new Set();
  const groups = [];
  for (const [title, match] of METRIC_GROUPS) {
    const members = keys.filter((k) => !used.has(k) && match(k));
    members.forEach((k) => used.add(k));
    if (members.length) groups.push([title, members]);
  }
  for (const k of keys) if (!used.has(k) && !/_std$/.test(k)) groups.push([k, [k]]);
  return groups.map(([name, members]) => {
    const title = members.includes("gold_mean") ? "reward vs held-out gold reward" : name;
    const series = members.map((k) => {
      const pts = rows.filter((r) => numeric(r[k]) && numeric(r.step));
      return { name: k, x: pts.map((r) => r.step), y: pts.map((r) => r[k]), style: "line" };
    });
    return { panel: title, title, x_label: "step", y_label: members.length === 1 ? members[0] : "", integer_x: true, series };
  });
}
