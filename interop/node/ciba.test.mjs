// Countersign driven by openid-client 6, a third-party OpenID client, the
// way a Node agent would use it; every token is checked with jose against
// the server's JWKS. cmd/countersign/interop_node_test.go starts the server,
// registers the clients and passes them in COUNTERSIGN_INTEROP; run it with
// `go test -run TestOpenIDClientInterop ./cmd/countersign`.
import { describe, test, before } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import * as client from 'openid-client'
import * as jose from 'jose'

const CIBA = 'urn:openid:params:grant-type:ciba'
const read = [{ type: 'agent_action', action: 'read', resource: 'calendar' }]
const payment = [{ type: 'payment_initiation', action: 'transfer', amount: 25000, currency: 'EUR', creditor: { name: 'ACME GmbH' } }]

if (!process.env.COUNTERSIGN_INTEROP) {
  throw new Error('COUNTERSIGN_INTEROP is not set: run `go test -run TestOpenIDClientInterop ./cmd/countersign`')
}
// { issuer, user, phone, clients: { basic, post, jwt, dpop, ping, rs: { id, secret?, key?, port? } } }
const env = JSON.parse(process.env.COUNTERSIGN_INTEROP)
const issuer = new URL(env.issuer)

// The keys a resource server would fetch: jwks_uri of the discovery document.
let jwks
before(async () => {
  const config = await client.discovery(issuer, env.clients.basic.id, undefined, undefined, { execute: [client.allowInsecureRequests] })
  jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri))
})

// configure discovers the server for one client; plain http is the test
// server on loopback.
async function configure (id, auth) {
  const config = await client.discovery(issuer, id, undefined, auth, { execute: [client.allowInsecureRequests] })
  // The ID token's signature is checked against the JWKS too, not only its claims.
  client.enableNonRepudiationChecks(config)
  return config
}

// checkTokens verifies both tokens with jose as a resource server and a
// relying party would, and returns their payloads.
async function checkTokens (tokens, clientId, approvedBy) {
  const at = await jose.jwtVerify(tokens.access_token, jwks, { issuer: env.issuer, audience: env.issuer, typ: 'at+jwt', algorithms: ['ES256'] })
  assert.equal(at.payload.sub, env.user)
  assert.equal(at.payload.client_id, clientId)
  assert.deepEqual(at.payload.act, { sub: clientId })
  assert.equal(at.payload.approval.by, approvedBy)
  const idt = await jose.jwtVerify(tokens.id_token, jwks, { issuer: env.issuer, audience: clientId, algorithms: ['ES256'] })
  assert.equal(idt.payload.sub, env.user)
  assert.equal(idt.payload.acr, `urn:countersign:acr:${approvedBy}`)
  // openid-client validated the same ID token.
  assert.equal(tokens.claims().sub, env.user)
  return { at: at.payload, idt: idt.payload }
}

// The flows are independent: they run at once, as several agents would.
describe('openid-client against Countersign', { concurrency: true }, () => {
  test('discovery names what a CIBA client needs', async () => {
    const config = await configure(env.clients.basic.id, client.ClientSecretBasic(env.clients.basic.secret))
    const m = config.serverMetadata()
    assert.equal(m.issuer, env.issuer)
    assert.ok(m.grant_types_supported.includes(CIBA))
    assert.deepEqual([...m.backchannel_token_delivery_modes_supported].sort(), ['ping', 'poll', 'push'])
    for (const method of ['client_secret_basic', 'client_secret_post', 'private_key_jwt']) {
      assert.ok(m.token_endpoint_auth_methods_supported.includes(method), method)
    }
    assert.ok(m.dpop_signing_alg_values_supported.includes('ES256'))
  })

  test('poll, client_secret_basic: a read approved by policy', async () => {
    const { id, secret } = env.clients.basic
    const config = await configure(id, client.ClientSecretBasic(secret))
    const started = await client.initiateBackchannelAuthentication(config, {
      scope: 'openid', login_hint: env.user, binding_message: 'Book train 4711', authorization_details: JSON.stringify(read)
    })
    assert.ok(started.interval >= 1, `interval ${started.interval}`)
    assert.equal(started.expires_in, 300)
    const tokens = await client.pollBackchannelAuthenticationGrant(config, started)
    assert.equal(tokens.token_type, 'bearer')
    const { at } = await checkTokens(tokens, id, 'policy')
    assert.deepEqual(at.authorization_details, read)
    // Redeemed once: the same auth_req_id is spent.
    await assert.rejects(client.genericGrantRequest(config, CIBA, { auth_req_id: started.auth_req_id }), { error: 'invalid_grant' })
  })

  test('poll, client_secret_post: a payment waits for the phone', async () => {
    const { id, secret } = env.clients.post
    const config = await configure(id, client.ClientSecretPost(secret))
    const started = await client.initiateBackchannelAuthentication(config, {
      scope: 'openid', login_hint: env.user, binding_message: 'Pay ACME 25k', authorization_details: JSON.stringify(payment)
    })
    assert.equal(started.interval, 5)
    await assert.rejects(client.genericGrantRequest(config, CIBA, { auth_req_id: started.auth_req_id }), { error: 'authorization_pending' })
    // The user approves on the phone (the test's stub phone, through its owner).
    const res = await fetch(new URL(`/approve?id=${encodeURIComponent(started.auth_req_id)}`, env.phone), { method: 'POST' })
    assert.equal(res.status, 204, await res.text())
    const tokens = await client.pollBackchannelAuthenticationGrant(config, started)
    const { at } = await checkTokens(tokens, id, 'device')
    assert.deepEqual(at.authorization_details, payment)
    assert.ok(at.approval.device_id && at.approval.decision_jti)
  })

  test('private_key_jwt with a signed request object', async () => {
    const { id, key } = env.clients.jwt
    const privateKey = await jose.importJWK(key, 'ES256')
    const config = await configure(id, client.PrivateKeyJwt({ key: privateKey, kid: key.kid }))
    const now = Math.floor(Date.now() / 1000)
    const request = await new jose.SignJWT({
      scope: 'openid', login_hint: env.user, binding_message: 'Signed 7', requested_expiry: '120', authorization_details: read
    }).setProtectedHeader({ alg: 'ES256', kid: key.kid, typ: 'oauth-authz-req+jwt' })
      .setIssuer(id).setAudience(env.issuer).setIssuedAt(now).setNotBefore(now).setExpirationTime(now + 300).setJti(crypto.randomUUID())
      .sign(privateKey)
    const started = await client.initiateBackchannelAuthentication(config, { request })
    assert.equal(started.expires_in, 120)
    const tokens = await client.pollBackchannelAuthenticationGrant(config, started)
    const { at } = await checkTokens(tokens, id, 'policy')
    assert.deepEqual(at.authorization_details, read)
    // Parameters outside a request object are refused for a client that signs them.
    await assert.rejects(client.initiateBackchannelAuthentication(config, { scope: 'openid', login_hint: env.user }), { error: 'invalid_request' })
  })

  test('DPoP: the token is bound to the agent key (server nonces on)', async () => {
    const { id, secret } = env.clients.dpop
    const config = await configure(id, client.ClientSecretBasic(secret))
    const keyPair = await client.randomDPoPKeyPair('ES256')
    const DPoP = client.getDPoPHandle(config, keyPair)
    const started = await client.initiateBackchannelAuthentication(config, {
      scope: 'openid', login_hint: env.user, authorization_details: JSON.stringify(read)
    })
    // The first /token call gets use_dpop_nonce; openid-client retries with the nonce.
    const tokens = await client.pollBackchannelAuthenticationGrant(config, started, undefined, { DPoP })
    assert.equal(tokens.token_type, 'dpop')
    const { at } = await checkTokens(tokens, id, 'policy')
    const jkt = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey))
    assert.deepEqual(at.cnf, { jkt })
  })

  test('introspection by a resource server, revocation by the agent', async () => {
    const { id, secret } = env.clients.basic
    const agent = await configure(id, client.ClientSecretBasic(secret))
    const started = await client.initiateBackchannelAuthentication(agent, {
      scope: 'openid', login_hint: env.user, authorization_details: JSON.stringify(read)
    })
    const tokens = await client.pollBackchannelAuthenticationGrant(agent, started)
    const rs = await configure(env.clients.rs.id, client.ClientSecretBasic(env.clients.rs.secret))
    const info = await client.tokenIntrospection(rs, tokens.access_token)
    assert.equal(info.active, true)
    assert.equal(info.sub, env.user)
    assert.equal(info.client_id, id)
    await client.tokenRevocation(agent, tokens.access_token)
    assert.equal((await client.tokenIntrospection(rs, tokens.access_token)).active, false)
  })

  test('ping, client_secret_basic: the notification carries the client_notification_token', async (t) => {
    const { id, secret, port } = env.clients.ping
    const receiver = await pingReceiver(port)
    t.after(() => receiver.close())
    const config = await configure(id, client.ClientSecretBasic(secret))
    const token = jose.base64url.encode(crypto.getRandomValues(new Uint8Array(24)))
    const started = await client.initiateBackchannelAuthentication(config, {
      scope: 'openid', login_hint: env.user, client_notification_token: token, authorization_details: JSON.stringify(read)
    })
    const ping = await receiver.ping(started.auth_req_id)
    assert.equal(`${ping.method} ${ping.url}`, 'POST /cb')
    assert.equal(ping.authorization, `Bearer ${token}`)
    assert.equal(ping.contentType.split(';')[0], 'application/json')
    assert.deepEqual(ping.body, { auth_req_id: started.auth_req_id })
    // Pinged: one /token call, no polling.
    const tokens = await client.genericGrantRequest(config, CIBA, { auth_req_id: started.auth_req_id })
    await checkTokens(tokens, id, 'policy')
  })
})

// pingReceiver is the agent's notification endpoint on loopback: it records
// every POST by auth_req_id and answers 204.
function pingReceiver (port) {
  const seen = new Map()
  const waiting = new Map()
  const server = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (c) => { raw += c })
    req.on('end', () => {
      let body
      try { body = JSON.parse(raw) } catch { body = raw }
      const ping = { method: req.method, url: req.url, authorization: req.headers.authorization, contentType: req.headers['content-type'] ?? '', body }
      res.writeHead(204).end()
      const id = body?.auth_req_id
      seen.set(id, ping)
      waiting.get(id)?.(ping)
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, '127.0.0.1', () => resolve({
      close: () => server.close(),
      ping: (id) => seen.has(id)
        ? Promise.resolve(seen.get(id))
        : new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no ping for ${id} within 15 s`)), 15000)
          waiting.set(id, (p) => { clearTimeout(timer); resolve(p) })
        })
    }))
  })
}
