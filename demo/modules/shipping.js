// shipping module: checkout pages ask shipping-api for quotes (shipping-api).
//
// One iteration = one quote request (a POST: quotes are never cached). Each quote
// waits on the carrier's rate API inside one of the instance's few request slots, so
// one instance serves about MAX_INFLIGHT / CARRIER_MS quotes per second (5 / 0.2 s =
// 25); more instances are the fix.
// The load shape (VUs or arrival rate, duration) comes from the plan, not from here.
import http from 'k6/http';
import { check } from 'k6';
import { arrive, pick, think } from './pacing.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8002').replace(/\/+$/, '');
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const ORIGINS = ['DE', 'DE', 'DE', 'FR', 'GB'];
const DESTINATIONS = ['DE', 'FR', 'GB', 'US', 'CA', 'IN', 'SG', 'KE', 'BR', 'JP'];

export default function () {
  arrive();
  const body = JSON.stringify({
    origin: pick(ORIGINS),
    destination: pick(DESTINATIONS),
    weight_kg: Math.round((0.2 + Math.random() * 9.8) * 10) / 10,
  });
  const res = http.post(`${BASE_URL}/quotes`, body, { headers: JSON_HEADERS, tags: { name: 'shipping_quote' } });
  check(res, { 'shipping_quote status 200': (r) => r.status === 200 });
  think(1, 3);
}
