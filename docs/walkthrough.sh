#!/usr/bin/env bash
# The curl walkthrough of README.md ("Walkthrough with curl"), line for line
# after this header. cmd/countersign/readme_test.go checks that README.md
# shows exactly these lines, runs them against a fresh `countersign serve`
# and compares every answer with the comment under its command. Needs curl
# and jq, a running server and COUNTERSIGN_ADMIN_TOKEN.
set -euo pipefail

A="Authorization: Bearer $COUNTERSIGN_ADMIN_TOKEN"
CS=${COUNTERSIGN_ISSUER:-http://127.0.0.1:8080}
# an agent (a CIBA poll client); the secret is shown once (agent.json keeps it)
curl -s -H "$A" -d '{"client_id":"trip-agent","client_name":"Trip planner","agent":{"trust_tier":"standard","owner":"acme"}}' \
  $CS/admin/clients | tee agent.json
# {"client_id":"trip-agent","client_secret":"FVc9iGx8...","client_name":"Trip planner",...}
SECRET=$(jq -r .client_secret agent.json)
# a user whose rules read a spending limit
curl -s -H "$A" -d '{"id":"alice","email":"alice@example.com","attributes":{"spending_limit":1000,"timezone":"Europe/Berlin"}}' \
  $CS/admin/users
# {"id":"alice","email":"alice@example.com","attributes":{"spending_limit":1000,"timezone":"Europe/Berlin"},...}

# low risk: a calendar read is approved by policy at once
curl -s -u trip-agent:$SECRET -d scope=openid -d login_hint=alice -d binding_message="Book train 4711" \
  --data-urlencode 'authorization_details=[{"type":"agent_action","action":"read","resource":"calendar"}]' \
  $CS/bc-authorize | tee request.json
# {"auth_req_id":"0brnUfdD...","expires_in":300,"interval":1}
curl -s -u trip-agent:$SECRET -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$(jq -r .auth_req_id request.json) \
  $CS/token
# {"access_token":"eyJ...","token_type":"Bearer","expires_in":300,"id_token":"eyJ...","scope":"openid",...}

# high risk: 25,000 EUR is over alice's limit, so it waits for her phone
curl -s -u trip-agent:$SECRET -d scope=openid -d login_hint=alice \
  --data-urlencode 'authorization_details=[{"type":"payment_initiation","action":"transfer","amount":25000,"currency":"EUR","creditor":{"name":"ACME GmbH"}}]' \
  $CS/bc-authorize | tee request.json
# {"auth_req_id":"0b117srW...","expires_in":300,"interval":5}
curl -s -u trip-agent:$SECRET -d grant_type=urn:openid:params:grant-type:ciba -d auth_req_id=$(jq -r .auth_req_id request.json) \
  $CS/token
# {"error":"authorization_pending","error_description":"the user has not decided yet"}
