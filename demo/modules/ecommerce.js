// ecommerce module: shoppers browse a category, search, open products; a third put
// something in a cart and most of those check out (core-api).
// The load shape (VUs or arrival rate, duration) comes from the plan, not from here.
import http from 'k6/http';
import { check } from 'k6';
import { arrive, pick, think } from './pacing.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const JSON_HEADERS = { 'Content-Type': 'application/json' };
const CATEGORIES = ['laptops', 'phones', 'audio', 'monitors', 'keyboards', 'cameras', 'wearables', 'gaming'];
const SEARCH_TERMS = ['nimbus', 'vertex', 'orbit', 'pro', 'mini', 'ultra', 'headphones', 'watch'];
const USERS = 1000;

export default function () {
  arrive();
  const category = pick(CATEGORIES);
  const page = Math.random() < 0.8 ? 1 : 2;
  const list = http.get(`${BASE_URL}/products?category=${category}&page=${page}`, { tags: { name: 'products_list' } });
  check(list, { 'products_list status 200': (r) => r.status === 200 });
  think(0.5, 1.5);

  let products = list.status === 200 ? list.json('items.#.id') : [];
  if (Math.random() < 0.3) {
    const search = http.get(`${BASE_URL}/products/search?q=${pick(SEARCH_TERMS)}`, { tags: { name: 'products_search' } });
    check(search, { 'products_search status 200': (r) => r.status === 200 });
    if (search.status === 200) products = products.concat(search.json('items.#.id'));
    think(0.5, 1.5);
  }
  if (!Array.isArray(products) || products.length === 0) return;

  const viewed = [];
  for (let i = 0; i < 2; i++) {
    const productId = pick(products);
    const detail = http.get(`${BASE_URL}/products/${productId}`, { tags: { name: 'product_detail' } });
    check(detail, { 'product_detail status 200': (r) => r.status === 200 });
    viewed.push(productId);
    think(0.5, 1.5);
  }

  if (Math.random() >= 0.35) return;
  const userId = 1 + Math.floor(Math.random() * USERS);
  const cart = http.post(`${BASE_URL}/carts`, JSON.stringify({ user_id: userId }),
    { headers: JSON_HEADERS, tags: { name: 'cart_create' } });
  if (!check(cart, { 'cart_create status 201': (r) => r.status === 201 })) return;
  const cartId = cart.json('id');
  for (const productId of viewed.slice(0, 1 + Math.floor(Math.random() * 2))) {
    const add = http.post(`${BASE_URL}/carts/${cartId}/items`,
      JSON.stringify({ product_id: productId, quantity: 1 + Math.floor(Math.random() * 2) }),
      { headers: JSON_HEADERS, tags: { name: 'cart_add' } });
    check(add, { 'cart_add status 201': (r) => r.status === 201 });
  }
  think(0.5, 1);
  const got = http.get(`${BASE_URL}/carts/${cartId}`, { tags: { name: 'cart_get' } });
  check(got, { 'cart_get status 200': (r) => r.status === 200 });
  think(1, 2);

  if (Math.random() >= 0.6) return;
  const order = http.post(`${BASE_URL}/orders`, JSON.stringify({ cart_id: cartId }),
    { headers: JSON_HEADERS, tags: { name: 'order_create' } });
  if (!check(order, { 'order_create status 201': (r) => r.status === 201 })) return;
  think(0.5, 1);
  const status = http.get(`${BASE_URL}/orders/${order.json('id')}`, { tags: { name: 'order_get' } });
  check(status, { 'order_get status 200': (r) => r.status === 200 });
}
