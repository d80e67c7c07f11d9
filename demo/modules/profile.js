// profile module: the Profile API of the field report in the README (profile-api).
//
// One iteration = one request, chosen by MIX; every profile id is drawn from a
// Zipf distribution (exponent ZIPF_S) over ids 1..PROFILE_IDS, so the hottest 20 %
// of profiles get 76 % of the traffic. demo/traffic.py holds the same constants and
// predicts a TTL cache's hit ratio from them: keep both in step.
// Each request carries its cache key in the `key` tag (stored as a field, not a tag), so
// loadbearing can count distinct keys and predict a cache's hit ratio.
// The load shape (VUs or arrival rate, duration) comes from the plan, not from here.
import http from 'k6/http';
import { check } from 'k6';
import { arrive, pick, think } from './pacing.js';

const PROFILE_IDS = 500;
const ZIPF_S = 1.0;
const MIX = { profile_get: 0.6, profile_feed: 0.3, profile_put: 0.1 };
// Popularity rank -> profile id: a fixed permutation, so the hot ids are scattered.
const SCRAMBLE = 7919; // prime, coprime with PROFILE_IDS

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8001').replace(/\/+$/, '');
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const HEADLINES = ['Staff Engineer at Acme Cloud', 'Building reliable APIs', 'SRE, load testing fan',
  'Data Engineer at Globex', 'Open to new roles', 'Platform team lead'];
const CITIES = ['Berlin', 'London', 'Lisbon', 'Bangalore', 'Toronto', 'Austin', 'Singapore', 'Nairobi'];

const CDF = (() => {
  const cdf = new Array(PROFILE_IDS);
  let total = 0;
  for (let k = 1; k <= PROFILE_IDS; k++) {
    total += 1 / Math.pow(k, ZIPF_S);
    cdf[k - 1] = total;
  }
  for (let i = 0; i < PROFILE_IDS; i++) cdf[i] /= total;
  return cdf;
})();

function profileId() {
  const u = Math.random();
  let lo = 0;
  let hi = PROFILE_IDS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (CDF[mid] < u) lo = mid + 1; else hi = mid;
  }
  return ((lo * SCRAMBLE) % PROFILE_IDS) + 1; // rank lo (0 = hottest)
}

export default function () {
  arrive();
  const id = profileId();
  const r = Math.random();
  if (r < MIX.profile_get) {
    const res = http.get(`${BASE_URL}/profiles/${id}`, { tags: { name: 'profile_get', key: `profile:${id}` } });
    check(res, { 'profile_get status 200': (x) => x.status === 200 });
  } else if (r < MIX.profile_get + MIX.profile_feed) {
    const res = http.get(`${BASE_URL}/profiles/${id}/feed`, { tags: { name: 'profile_feed', key: `feed:${id}` } });
    check(res, { 'profile_feed status 200': (x) => x.status === 200 });
  } else {
    const body = JSON.stringify({ headline: pick(HEADLINES), location: pick(CITIES) });
    const res = http.put(`${BASE_URL}/profiles/${id}`, body, { headers: JSON_HEADERS, tags: { name: 'profile_put', key: `profile:${id}` } });
    check(res, { 'profile_put status 200': (x) => x.status === 200 });
  }
  think(1, 3);
}
