// Chart and retry-loop state of the open graph, keyed by the graph load that is showing (a generation counter:
// every workflow the pack ships has the same graph id) and the execution id of the node that produced it
// ("12" or "12:5" inside a subgraph), tagged with the prompt id that produced it. No DOM: tested under Node.

export const MAX_LOOPS = 30;

export function attemptsSpec(attempts, { total = null, threshold = null, what = "attempt" } = {}) {
  const n = attempts.length;
  const spec = {
    panel: `reward per ${what}`, title: `reward per ${what}${total ? ` (${n}/${total})` : ""}`,
    x_label: `${what} (1 = first)`, y_label: "reward", x_min: 1, x_max: Math.max(total ?? n, n, 1), integer_x: true,
    series: [{ name: "reward", x: attempts.map((a) => a.attempt + 1), y: attempts.map((a) => a.reward), style: "line" }],
  };
  if (typeof threshold === "number") Object.assign(spec, { threshold, threshold_label: `threshold ${threshold}` });
  return spec;
}

// The node an `executing` message names: the frontends pass its display id as the event's detail (a string, null
// when the prompt ends); an object form is accepted too.
export function executingNodeId(detail) {
  if (detail === null || detail === undefined) return null;
  if (typeof detail === "object") return detail.display_node ?? detail.node ?? null;
  return String(detail);
}

export class ChartStore {
  constructor(onChange = () => {}) {
    this.onChange = onChange;   // (executionId) => void: redraw that node
    this.generation = 0;
    this.entries = new Map();   // `${generation}|${executionId}` -> {promptId, specs, attempts?}
    this.stale = new Set();     // prompt ids queued for an earlier graph: their events draw nothing
    this.loops = [];            // recent retry loops, newest first (sidebar)
  }

  key(executionId) {
    return `${this.generation}|${String(executionId)}`;
  }

  // A workflow was loaded (or a new one opened): nothing of the previous graph may show on this one.
  graphLoaded(previousPromptIds = []) {
    this.generation += 1;
    const dropped = [...this.entries.keys()];
    this.entries.clear();
    for (const id of previousPromptIds) this.stale.add(id);
    for (const k of dropped) this.onChange(k.slice(k.indexOf("|") + 1));
  }

  markStale(promptIds) {
    for (const id of promptIds) this.stale.add(id);
  }

  isStale(promptId) {
    return promptId !== undefined && promptId !== null && this.stale.has(promptId);
  }

  get(executionId) {
    return this.entries.get(this.key(executionId)) ?? null;
  }

  // The node starts running for a prompt: charts of an earlier run of it go.
  executing(executionId, promptId) {
    if (this.isStale(promptId)) return;
    const entry = this.get(executionId);
    if (entry && entry.promptId !== promptId) {
      this.entries.delete(this.key(executionId));
      this.onChange(String(executionId));
    }
  }

  setCharts(executionId, promptId, specs) {
    if (this.isStale(promptId)) return false;
    const prev = this.get(executionId);
    const keep = prev && prev.promptId === promptId && prev.final;  // a loop's verdict outlives its result
    this.entries.set(this.key(executionId), { ...(prev?.promptId === promptId ? prev : {}), promptId,
      specs: Array.isArray(specs) ? specs : [], status: keep ? prev.status : "", final: !!keep });
    this.onChange(String(executionId));
    return true;
  }

  // A `rewardloop.status` line (a reward's stage, a loop's progress or verdict) for the node's widget.
  setStatus(executionId, promptId, text, final = false) {
    if (this.isStale(promptId)) return false;
    let entry = this.get(executionId);
    if (!entry || entry.promptId !== promptId) {
      entry = { promptId, specs: [] };
      this.entries.set(this.key(executionId), entry);
    }
    Object.assign(entry, { status: String(text ?? ""), final: !!final });
    this.onChange(String(executionId));
    return true;
  }

  // One `rewardloop.loop` event (an attempt finished): the node's live chart and the sidebar's loop table.
  loopEvent(executionId, promptId, event) {
    if (this.isStale(promptId) || typeof event?.attempt !== "number") return null;
    let entry = this.get(executionId);
    if (!entry || entry.promptId !== promptId) {
      entry = { promptId, specs: [] };
      this.entries.set(this.key(executionId), entry);
    }
    entry.attempts ??= [];
    const row = { attempt: event.attempt, seed: event.seed, reward: typeof event.reward === "number" ? event.reward : null,
                  passed: !!event.passed, seconds: event.seconds, breakdown: event.breakdown ?? null };
    entry.attempts = entry.attempts.filter((a) => a.attempt !== row.attempt).concat([row]).sort((a, b) => a.attempt - b.attempt);
    const what = event.what ?? "attempt";
    entry.specs = [attemptsSpec(entry.attempts, { total: event.attempts, threshold: event.threshold, what })];
    this.onChange(String(executionId));
    return this.recordLoop(executionId, promptId, {
      attempts: entry.attempts, total: event.attempts, threshold: event.threshold, done: !!event.done,
      bestReward: event.best_reward ?? null, bestAttempt: event.best_attempt ?? null, what,
    });
  }

  // The final attempt log of a loop node (its `rewardloop_log` output), which replaces the live rows.
  loopLog(executionId, promptId, log, title = "") {
    if (this.isStale(promptId) || !log || !Array.isArray(log.attempts)) return null;
    return this.recordLoop(executionId, promptId, {
      attempts: log.attempts.map((a) => ({ attempt: a.attempt, seed: a.seed, reward: a.reward, passed: !!a.passed,
                                           seconds: a.seconds, breakdown: a.breakdown ?? null })),
      total: log.settings?.attempts_allowed ?? null, threshold: log.settings?.threshold ?? null, done: true,
      bestReward: log.best_reward ?? null, bestAttempt: log.chosen_attempt ?? null, passed: !!log.passed, title,
    });
  }

  recordLoop(executionId, promptId, data) {
    const id = `${promptId}|${executionId}`;
    let loop = this.loops.find((l) => l.id === id);
    if (!loop) {
      loop = { id, executionId: String(executionId), promptId, generation: this.generation, started: Date.now() };
      this.loops.unshift(loop);
      this.loops.length = Math.min(this.loops.length, MAX_LOOPS);
    }
    const passed = data.passed ?? (typeof data.bestReward === "number" && typeof data.threshold === "number"
                                   && data.bestReward >= data.threshold);
    const endedNow = data.done && !loop.done;
    Object.assign(loop, data, { passed, title: data.title || loop.title || "" });
    return { loop, endedNow };
  }

  remove(executionId) {
    if (this.entries.delete(this.key(executionId))) this.onChange(String(executionId));
  }

  executionIds() {
    const prefix = `${this.generation}|`;
    return [...this.entries.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
  }
}
