// The web extension's DOM-free modules under plain Node (node --test): axis arithmetic, chart state keyed by graph
// load / execution id / prompt, subgraph execution ids, training metric panels. Run by test_chart_logic.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatNumber, hoverAt, integerTicks, niceTicks, normalizeSpec, rangeText, yDomain } from "../../web/lib/chart_math.js";
import { ChartStore, attemptsSpec, executingNodeId } from "../../web/lib/chart_store.js";
import { executionIdsOf, nodeByExecutionId, walkNodes } from "../../web/lib/graph.js";
import { describeJob, metricPanels } from "../../web/lib/jobs.js";
import { breakdownText } from "../../web/lib/sidebar.js";

const close = (a, b) => a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) < 1e-9);

test("ticks are 1-2-5 steps inside the range; counts get integer ticks", () => {
  assert.ok(close(niceTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]));
  assert.ok(close(niceTicks(0.95, 1, 5), [0.95, 0.96, 0.97, 0.98, 0.99, 1]));
  assert.ok(close(niceTicks(-3, 47, 5), [0, 10, 20, 30, 40]));
  assert.deepEqual(integerTicks(1, 3), [1, 2, 3]);
  assert.ok(integerTicks(1, 400).every((t) => Number.isInteger(t)));
});

test("a 1e-5 wiggle stays flat; the threshold is always on the axis", () => {
  const wiggle = [1.0, 0.99999, 0.99998, 1.0];
  const d = yDomain(wiggle, { range: [-1, 1] });
  assert.ok((1.0 - 0.99998) / (d.hi - d.lo) < 0.01, JSON.stringify(d));
  assert.ok(d.hi <= 1 && d.lo <= 0.99998);
  const t = yDomain([0.2, 0.4], { range: [0, 1], threshold: 0.85 });
  assert.ok(t.lo <= 0.2 && t.hi >= 0.85 && t.hi <= 1);
  const unbounded = yDomain([-120, -119.99], { range: [null, 0] });
  assert.ok(0.01 / (unbounded.hi - unbounded.lo) < 0.01);
  assert.equal(rangeText([null, 1]), "<= 1");
  assert.equal(formatNumber(0.798312), "0.7983");
});

test("both spec versions normalise; hover finds the nearest point of every series", () => {
  const old = normalizeSpec({ title: "reward per attempt", series: [{ name: "reward", values: [0.5, null, 0.9] }], threshold: 0.85 });
  assert.deepEqual(old.series[0].x, [0, 1, 2]);
  assert.equal(old.threshold, 0.85);
  const p = normalizeSpec({ x_min: 0, x_max: 32, series: [
    { name: "ssim", x: [0, 8, 16], y: [1, 0.9, 1], style: "points" }, { name: "lpips", x: [0.5, 7.5], y: [0.8, 0.7] }] });
  assert.equal(p.series[0].style, "points");
  assert.equal(normalizeSpec({ series: [{ name: "ssim", y: [1], about: "SSIM at the keyframes" }] }).series[0].about,
               "SSIM at the keyframes");  // shown as the chart's tooltip with the range
  assert.deepEqual(hoverAt(p, 7.9), { x: 8, values: [0.9, null] });
  assert.deepEqual(hoverAt(p, 0.6), { x: 0.5, values: [null, 0.8] });
});

test("charts belong to the graph load and the prompt that made them", () => {
  const changed = [];
  const s = new ChartStore((id) => changed.push(id));
  s.setCharts("3", "p1", [{ title: "a" }]);
  assert.equal(s.get("3").promptId, "p1");
  s.executing("3", "p1");                   // the same run: kept
  assert.ok(s.get("3"));
  assert.equal(executingNodeId("3"), "3");  // the frontends' `executing` detail is the node id ...
  assert.equal(executingNodeId({ node: "9", display_node: "3" }), "3");
  assert.equal(executingNodeId(null), null);  // ... and null when the prompt ends
  s.executing("3", "p2");                   // a new execution of the node: cleared at once
  assert.equal(s.get("3"), null);
  s.setStatus("3", "p2", "flow", false);     // a reward's stage: gone when its result arrives
  s.setCharts("3", "p2", [{ title: "b" }]);
  assert.equal(s.get("3").status, "");
  s.setStatus("7", "p2", "done after 3/6 attempts", true);  // a loop's verdict: stays with its chart
  s.setCharts("7", "p2", [{ title: "reward per attempt" }]);
  assert.equal(s.get("7").status, "done after 3/6 attempts");
  s.executing("7", "p3");                   // ... until the node runs again
  assert.equal(s.get("7"), null);
  s.setCharts("12:5", "p2", [{ title: "in a subgraph" }]);
  s.graphLoaded(["p2"]);                    // another workflow opened: nothing of the old one
  assert.equal(s.get("12:5"), null);
  assert.equal(s.setCharts("12:5", "p2", [{ title: "late" }]), false);  // a late message of the old graph's prompt
  assert.equal(s.get("12:5"), null);
  assert.ok(changed.includes("12:5") && changed.includes("3"));
});

test("live attempts restart with a new run and count from 1", () => {
  const s = new ChartStore();
  s.loopEvent("5", "p1", { attempt: 0, seed: 1, reward: 0.5, attempts: 3, threshold: 0.85 });
  s.loopEvent("5", "p1", { attempt: 1, seed: 2, reward: 0.6, attempts: 3, threshold: 0.85 });
  assert.deepEqual(s.get("5").specs[0].series[0].x, [1, 2]);
  const r = s.loopEvent("5", "p2", { attempt: 0, seed: 9, reward: 0.7, attempts: 3, threshold: 0.85 });
  assert.deepEqual(s.get("5").specs[0].series[0].y, [0.7]);  // the previous run's points are gone
  assert.equal(r.endedNow, false);
  const end = s.loopEvent("5", "p2", { attempt: 2, seed: 3, reward: 0.8, attempts: 3, threshold: 0.85, done: true, best_reward: 0.8 });
  assert.equal(end.endedNow, true);
  assert.equal(end.loop.passed, false);
  assert.equal(s.loopLog("5", "p2", { attempts: [], settings: {}, passed: false }).endedNow, false);  // toast once
  assert.equal(attemptsSpec([{ attempt: 0, reward: 1 }], { total: 6, threshold: 0.85 }).threshold_label, "threshold 0.85");
});

test("execution ids resolve through subgraphs", () => {
  const graph = (nodes) => ({ _nodes: nodes, getNodeById: (id) => nodes.find((n) => String(n.id) === String(id)) ?? null });
  const inner = { id: 5, title: "inner" };
  const sub = graph([inner]);
  const outer = { id: 12, subgraph: sub };
  const plain = { id: 3 };
  const app = { graph: graph([plain, outer]) };
  assert.equal(nodeByExecutionId(app, "12:5"), inner);
  assert.equal(nodeByExecutionId(app, "3"), plain);
  assert.equal(nodeByExecutionId(app, "5"), null);        // a bare inner id is not a root node
  assert.equal(nodeByExecutionId(app, "3:5"), null);
  assert.deepEqual([...walkNodes(app.graph)].map(([id]) => id), ["3", "12", "12:5"]);
  assert.deepEqual(executionIdsOf(app, inner), ["12:5"]);
});

test("training metrics become panels by step; jobs read as people read them", () => {
  const rows = [1, 2, 3].map((step) => ({ step, reward_mean: 0.1 * step, gold_mean: 0.2, reward_std: 0.01, loss: 1 / step,
                                          lr: 1e-4, step_time_s: 0.5, val_temporal_smoothness: -0.1 }));
  const panels = metricPanels(rows);
  assert.deepEqual(panels.map((p) => p.title), ["reward vs held-out gold reward", "loss", "learning rate", "validation",
                                                "step_time_s"]);
  assert.deepEqual(panels[0].series.map((s) => s.name), ["reward_mean", "gold_mean"]);
  assert.deepEqual(panels[0].series[0].x, [1, 2, 3]);
  const d = describeJob({ status: "running", step: 3, max_steps: 400, eta_s: 125, last_metrics: { loss: 0.25 } });
  assert.equal(d.progress, "step 3/400");
  assert.equal(d.eta, "about 2 min 5 s left");
  assert.equal(d.metrics, "loss 0.25");
  assert.equal(describeJob({ status: "failed", error: "boom\nline2\nline3\nline4" }).error, "boom line2 line3");
  assert.equal(breakdownText({ scores: { keyframe_ssim: { value: 0.91234 } } }), "keyframe_ssim 0.912");
});
