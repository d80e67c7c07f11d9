// notifications module: users open their notification list, read one, and services
// create new notifications for them (core-api).
// The load shape (VUs or arrival rate, duration) comes from the plan, not from here.
import http from 'k6/http';
import { check } from 'k6';
import { arrive, pick, think } from './pacing.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const USERS = 1000;
const KINDS = ['message', 'job_alert', 'order', 'mention', 'system'];

export default function () {
  arrive();
  const userId = 1 + Math.floor(Math.random() * USERS);
  const unreadOnly = Math.random() < 0.5;
  const list = http.get(`${BASE_URL}/users/${userId}/notifications${unreadOnly ? '?unread=1' : ''}`,
    { tags: { name: 'notifications_list' } });
  check(list, { 'notifications_list status 200': (r) => r.status === 200 });
  think(1, 2);

  if (list.status === 200 && Math.random() < 0.5) {
    const unread = (list.json('items') || []).filter((n) => !n.read);
    if (unread.length > 0) {
      const res = http.post(`${BASE_URL}/users/${userId}/notifications/${pick(unread).id}/read`, null,
        { tags: { name: 'notifications_mark_read' } });
      check(res, { 'notifications_mark_read status 200': (r) => r.status === 200 });
      think(0.5, 1);
    }
  }

  if (Math.random() < 0.1) {
    const body = JSON.stringify({ kind: pick(KINDS), title: 'Your weekly summary', body: '3 new jobs match your alert.' });
    const res = http.post(`${BASE_URL}/users/${userId}/notifications`, body,
      { headers: JSON_HEADERS, tags: { name: 'notifications_create' } });
    check(res, { 'notifications_create status 201': (r) => r.status === 201 });
  }
}
