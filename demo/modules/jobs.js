// jobs module: a job seeker browses listings, searches, opens postings, sometimes
// applies; a recruiter now and then posts a job (core-api).
// The load shape (VUs or arrival rate, duration) comes from the plan, not from here.
import http from 'k6/http';
import { check } from 'k6';
import exec from 'k6/execution';
import { arrive, pick, think } from './pacing.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const SEARCH_TERMS = ['python', 'backend', 'remote', 'kubernetes', 'designer', 'data', 'senior', 'go', 'aws',
  'mobile', 'security', 'platform'];
const CITIES = ['Berlin', 'London', 'Lisbon', 'Bangalore', 'Toronto', 'Austin', 'Singapore', 'Nairobi',
  'Sao Paulo', 'Warsaw', 'Amsterdam', 'Seattle'];

function ids(res) {
  if (res.status !== 200) return [];
  const found = res.json('items.#.id');
  return Array.isArray(found) ? found : [];
}

export default function () {
  arrive();
  // Most people stay on the first pages; a third filter by city.
  const page = 1 + Math.floor(Math.pow(Math.random(), 3) * 5);
  const filter = Math.random() < 0.33 ? `&location=${encodeURIComponent(pick(CITIES))}` : '';
  const list = http.get(`${BASE_URL}/jobs?page=${page}${filter}`, { tags: { name: 'jobs_list' } });
  check(list, { 'jobs_list status 200': (r) => r.status === 200 });
  think(0.5, 1.5);

  const term = encodeURIComponent(pick(SEARCH_TERMS));
  const search = http.get(`${BASE_URL}/jobs/search?q=${term}`, { tags: { name: 'jobs_search' } });
  check(search, { 'jobs_search status 200': (r) => r.status === 200 });
  think(0.5, 1.5);

  const candidates = ids(search).concat(ids(list));
  if (candidates.length === 0) return;
  const jobId = pick(candidates);
  const detail = http.get(`${BASE_URL}/jobs/${jobId}`, { tags: { name: 'jobs_detail' } });
  check(detail, { 'jobs_detail status 200': (r) => r.status === 200 });
  think(1, 2);

  if (Math.random() < 0.1) {
    const body = JSON.stringify({ applicant: `seeker-${exec.vu.idInTest}`, cover_letter: 'I load test for fun.' });
    const res = http.post(`${BASE_URL}/jobs/${jobId}/applications`, body,
      { headers: JSON_HEADERS, tags: { name: 'jobs_apply' } });
    check(res, { 'jobs_apply status 201': (r) => r.status === 201 });
    think(0.5, 1);
  }
  if (Math.random() < 0.02) {
    const low = 60000 + Math.floor(Math.random() * 60) * 1000;
    const body = JSON.stringify({
      title: `${pick(['Senior', 'Staff', ''])} Backend Engineer`.trim(), company: 'Load Bearing Inc.',
      location: pick(CITIES), remote: Math.random() < 0.5, salary_min: low, salary_max: low + 30000,
      tags: ['python', 'k6'], description: 'Help us keep our APIs standing.',
    });
    const res = http.post(`${BASE_URL}/jobs`, body, { headers: JSON_HEADERS, tags: { name: 'jobs_create' } });
    check(res, { 'jobs_create status 201': (r) => r.status === 201 });
  }
}
