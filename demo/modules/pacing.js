// Pacing shared by the demo's modules: random picks, think time and staggered arrival.
// Imported as './pacing.js'; k6 bundles it with each script (and `k6 archive` too).
import { sleep } from 'k6';
import exec from 'k6/execution';

export function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

// Think time belongs to closed-model runs (constant VUs); under an arrival rate the
// plan sets the pacing and a sleep would only pin VUs.
export function closedModel() {
  const executor = exec.scenario.executor;
  return executor !== 'constant-arrival-rate' && executor !== 'ramping-arrival-rate';
}

export function think(min, max) {
  if (closedModel()) sleep(min + Math.random() * (max - min));
}

// Real users do not all arrive in the same millisecond: spread each VU's first
// iteration over the first seconds (closed model only).
export function arrive() {
  if (closedModel() && exec.vu.iterationInScenario === 0) sleep(Math.random() * 3);
}
