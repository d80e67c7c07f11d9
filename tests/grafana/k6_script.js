// Two endpoints tagged `name`, a check on each; /items/N is slower for some N and
// fails (HTTP 500) for N % 7 == 3, so latency buckets, errors and checks all have data.
import http from 'k6/http';
import { check } from 'k6';

const params = (name) => ({ tags: { name }, headers: { 'X-Testid': __ENV.TESTID } });

export default function () {
  const home = http.get(`${__ENV.BASE_URL}/home`, params('home'));
  check(home, { 'home is 200': (r) => r.status === 200 });
  const item = http.get(`${__ENV.BASE_URL}/items/${__ITER % 28}`, params('item'));
  check(item, { 'item is 200': (r) => r.status === 200 });
}
