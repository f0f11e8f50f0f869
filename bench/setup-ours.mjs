// setup-ours.mjs registers what the peer benchmark needs on a running
// Countersign: USERS users user-0 … user-(USERS-1), a poll agent and (with
// PING=1) a ping agent whose notification endpoint is cibaload's loopback
// callback. It prints the clients as JSON on stdout.
//
//   node bench/setup-ours.mjs http://127.0.0.1:18180 ADMIN_TOKEN 10000 1
//
// Loopback only: the URL must be on 127.0.0.1. Node >= 18 (global fetch,
// which keeps connections alive).
const [base, token, usersArg = '10000', pingArg = '0', cb = 'http://127.0.0.1:18091/cb'] = process.argv.slice(2);
if (!base || !token) {
  console.error('usage: node setup-ours.mjs BASE_URL ADMIN_TOKEN [USERS] [PING 0|1] [CALLBACK_URL]');
  process.exit(2);
}
if (new URL(base).hostname !== '127.0.0.1') {
  console.error(`refusing ${base}: the benchmark only talks to 127.0.0.1`);
  process.exit(2);
}
const users = Number(usersArg);

async function admin(path, body) {
  const r = await fetch(base + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status !== 201) throw new Error(`${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

const agent = { trust_tier: 'standard', owner: 'bench' };
const out = {};
const poll = await admin('/admin/clients', { client_id: 'bench-poll', client_name: 'Bench poll agent', agent });
out.poll = { client_id: poll.client_id, client_secret: poll.client_secret };
if (pingArg === '1') {
  const ping = await admin('/admin/clients', {
    client_id: 'bench-ping', client_name: 'Bench ping agent', agent,
    backchannel_token_delivery_mode: 'ping', backchannel_client_notification_endpoint: cb,
  });
  out.ping = { client_id: ping.client_id, client_secret: ping.client_secret };
}

// Users, 16 requests in flight: the default ruleset counts requests per
// agent and user and hour, so the load is spread over many users.
let next = 0;
async function worker() {
  while (next < users) {
    const i = next++;
    await admin('/admin/users', { id: `user-${i}`, attributes: { spending_limit: 1000, timezone: 'UTC' } });
  }
}
await Promise.all(Array.from({ length: 16 }, worker));
out.users = users;
console.log(JSON.stringify(out));
