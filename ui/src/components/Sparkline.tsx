// A sparkline as inline SVG: the points scaled to the box, the last value as text.
export function Sparkline({ label, values, unit, digits = 1 }: { label: string; values: (number | null)[]; unit: string; digits?: number }) {
  const width = 240, height = 48;
  const known = values.map((v, i) => [i, v] as const).filter((p): p is readonly [number, number] => p[1] !== null);
  const max = Math.max(1e-9, ...known.map(([, v]) => v));
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const points = known.map(([i, v]) => `${(i * step).toFixed(1)},${(height - 2 - (v / max) * (height - 4)).toFixed(1)}`).join(" ");
  const last = known.length ? known[known.length - 1][1] : null;
  return (
    <figure className="spark">
      <figcaption>
        {label}: <strong data-testid={`spark-${label}`}>{last === null ? "—" : `${last.toFixed(digits)} ${unit}`}</strong>
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height}`} width="100%" height={height} role="img" aria-label={`${label} over the last ${values.length} samples, max ${max.toFixed(digits)} ${unit}`}>
        <polyline points={points} fill="none" stroke="currentColor" strokeWidth="2" />
      </svg>
    </figure>
  );
}
