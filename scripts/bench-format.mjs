// Shared by scripts/bench.mjs and scripts/bench-table.mjs: how a figure and a target are printed.

/** Two decimals for ratios (three below 0.1), a precision that suits the size for quantities. */
export function formatValue(v, unit = 'x') {
  const digits = unit === 'x' ? (Math.abs(v) < 0.1 ? 3 : 2) : Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  const n = Number(v.toFixed(digits)).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return unit === 'x' ? `${n}x` : unit === 'count' ? n : `${n} ${unit}`;
}

/** Whether `value` meets `target` (`{ op: '>=' | '<=', value }`); undefined without a target. */
export function meets(value, target) {
  if (target === undefined) return undefined;
  return target.op === '>=' ? value >= target.value : value <= target.value;
}

/** `≥ 0.90x` / `≤ 3.00 µs`. */
export function formatTarget(target, unit = 'x') {
  return `${target.op === '>=' ? '≥' : '≤'} ${formatValue(target.value, unit)}`;
}

/** Median of a non-empty list. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
