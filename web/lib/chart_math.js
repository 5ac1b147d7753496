// Pure chart arithmetic (no DOM): axis ranges, nice ticks, number formatting, spec normalisation and hover
// lookup. Kept free of the browser so tests/browser/test_chart_logic.py can run it under plain Node.

// Steps of 1, 2 or 5 times a power of ten, the usual "nice" tick spacing.
export function tickStep(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return 1;
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const err = raw / power;
  const factor = err >= 7.07 ? 10 : err >= 3.16 ? 5 : err >= 1.41 ? 2 : 1;
  return factor * power;
}

// Tick values covering [lo, hi] at a nice step (both ends included when they fall on a step).
export function niceTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const step = tickStep(lo, hi, count);
  const first = Math.ceil(lo / step - 1e-9);
  const last = Math.floor(hi / step + 1e-9);
  const ticks = [];
  for (let i = first; i <= last && ticks.length < 50; i++) ticks.push(roundTo(i * step, step));
  return ticks;
}

// Integer ticks for counts (attempts, segments, steps): never a fractional attempt.
export function integerTicks(lo, hi, count = 6) {
  const step = Math.max(1, Math.round(tickStep(lo, hi, count)));
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 && ticks.length < 50; v += step) ticks.push(v);
  return ticks.length ? ticks : [Math.round(lo)];
}

function roundTo(v, step) {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(12, digits)));
}

// Decimals needed to tell ticks `step` apart.
export function tickDecimals(step) {
  if (!(step > 0)) return 0;
  return Math.max(0, Math.min(8, -Math.floor(Math.log10(step) + 1e-9)));
}

export function formatNumber(v, digits = 4) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "n/a";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

// The y range a panel is drawn with. A spread smaller than `minSpanFraction` of the rewards' documented range
// (or of the value itself, for unbounded rewards) is shown as the flat line it is, never stretched to full
// height; the threshold, when given, is always inside; the ends are rounded out to nice ticks.
export function yDomain(values, { range = null, threshold = null, minSpanFraction = 0.05 } = {}) {
  const vals = values.filter((v) => typeof v === "number" && Number.isFinite(v));
  if (typeof threshold === "number" && Number.isFinite(threshold)) vals.push(threshold);
  if (!vals.length) return { lo: 0, hi: 1 };
  const dmin = Math.min(...vals), dmax = Math.max(...vals);
  let lo = dmin, hi = dmax;
  const bounded = range && Number.isFinite(range[0]) && Number.isFinite(range[1]) && range[1] > range[0];
  const scale = bounded ? range[1] - range[0] : Math.max(Math.abs(lo), Math.abs(hi), 1e-9);
  const minSpan = scale * minSpanFraction;
  if (hi - lo < minSpan) {
    const mid = (lo + hi) / 2;
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
    if (bounded) { // inside the documented range where the data are
      const top = Math.max(range[1], dmax), bottom = Math.min(range[0], dmin);
      if (hi > top) { lo -= hi - top; hi = top; }
      if (lo < bottom) { hi += bottom - lo; lo = bottom; }
    }
  } else {
    const pad = (hi - lo) * 0.06;
    lo -= pad;
    hi += pad;
    if (bounded) { lo = Math.max(lo, Math.min(range[0], dmin)); hi = Math.min(hi, Math.max(range[1], dmax)); }
  }
  const step = tickStep(lo, hi, 4);
  return { lo: Math.floor(lo / step + 1e-9) * step, hi: Math.ceil(hi / step - 1e-9) * step };
}

export function rangeText(range) {
  if (!Array.isArray(range) || range.length !== 2) return "";
  const [lo, hi] = range;
  const f = (v) => (v === null || v === undefined || !Number.isFinite(v) ? null : formatNumber(v, 3));
  if (f(lo) !== null && f(hi) !== null) return `${f(lo)}..${f(hi)}`;
  if (f(hi) !== null) return `<= ${f(hi)}`;
  if (f(lo) !== null) return `>= ${f(lo)}`;
  return "unbounded";
}

// Any chart spec (this version's {series: [{x, y}]} or the first version's {series: [{values}]}) -> one shape.
export function normalizeSpec(spec) {
  const series = (spec?.series ?? []).map((s) => {
    const y = (s.y ?? s.values ?? []).map((v) => (typeof v === "number" && Number.isFinite(v) ? v : null));
    const x = Array.isArray(s.x) && s.x.length === y.length ? s.x.map(Number) : y.map((_, i) => i);
    return { name: String(s.name ?? "value"), x, y, style: s.style === "points" ? "points" : "line",
             value: typeof s.value === "number" ? s.value : null, range: s.range ?? null, note: s.note ?? "",
             about: String(s.about ?? "") };
  });
  const xs = series.flatMap((s) => s.x).filter(Number.isFinite);
  return {
    title: String(spec?.title ?? ""),
    panel: String(spec?.panel ?? spec?.title ?? "chart"),
    xLabel: String(spec?.x_label ?? ""),
    yLabel: String(spec?.y_label ?? ""),
    xMin: Number.isFinite(spec?.x_min) ? spec.x_min : xs.length ? Math.min(...xs) : 0,
    xMax: Number.isFinite(spec?.x_max) ? spec.x_max : xs.length ? Math.max(...xs) : 1,
    integerX: spec?.integer_x === true,
    range: spec?.range ?? series.find((s) => s.range)?.range ?? null,
    threshold: typeof spec?.threshold === "number" && Number.isFinite(spec.threshold) ? spec.threshold : null,
    thresholdLabel: String(spec?.threshold_label ?? "threshold"),
    refs: (spec?.refs ?? []).filter((r) => typeof r?.value === "number").map((r) => ({ value: r.value, label: String(r.label ?? "") })),
    series,
  };
}

// The x of the data point nearest to `x` over every series, and each series' value there (null = none).
export function hoverAt(panel, x) {
  let best = null;
  for (const s of panel.series) {
    s.x.forEach((px, i) => {
      if (s.y[i] === null) return;
      if (best === null || Math.abs(px - x) < Math.abs(best - x)) best = px;
    });
  }
  if (best === null) return null;
  return { x: best, values: panel.series.map((s) => {
    const i = s.x.findIndex((px, j) => px === best && s.y[j] !== null);
    return i < 0 ? null : s.y[i];
  }) };
}
