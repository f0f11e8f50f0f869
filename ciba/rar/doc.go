// Package rar owns authorization_details (RFC 9396, Rich Authorization
// Requests): parsing and validating what an agent asks for, the values the
// risk rules and the token derive from it, the canonical hash the phone
// signs, and the attenuation check for token exchange.
//
// Registered types (advertised as authorization_details_types_supported):
//
//	type                members (besides the RFC 9396 §2.2 common ones)
//	payment_initiation  amount (required, > 0: a JSON number or a decimal string),
//	                    currency (required, ISO 4217: three upper-case letters),
//	                    action, remittance_information (strings),
//	                    creditor (object: name, iban, account; all strings)
//	agent_action        action (required), resource (required)
//	mcp_tool_call       server (required: {name, url} or {name, command}),
//	                    tool (required), arguments (required: a JSON object,
//	                    at most MaxArgumentBytes and MaxArgumentDepth),
//	                    annotations (readOnlyHint, destructiveHint,
//	                    idempotentHint, openWorldHint: booleans; title)
//
// The common members locations (absolute http/https URIs), actions,
// datatypes, privileges (non-empty arrays of non-empty strings) and
// identifier (string) are allowed in every type.
//
// Refusals are *oauth.Error invalid_authorization_details (RFC 9396 §5):
// anything but a JSON array of objects, more than MaxEntries entries or
// MaxBytes bytes, a duplicate member name, a missing or unknown type, a
// member of the wrong shape, and any member a registered type does not
// define: an unknown member is refused by name, never silently kept, so
// that the phone shows and the token carries exactly what was validated.
//
// Entries are kept as sent (numbers as json.Number, so they round-trip
// exactly). Canonical is RFC 8785 JSON of the array and Hash is its
// base64url SHA-256, the ad_hash a device signs in its decision.
//
// Narrower decides RFC 8693 attenuation: every requested entry must be
// covered by its own approved entry (one approved entry cannot be spent
// twice). Absent list members mean different things: an absent actions,
// datatypes or privileges list is unrestricted, so a narrow entry may add
// one but may not drop one the wide entry has; absent locations mean the
// default audience, so locations must be absent on both sides or a subset.
//
// It deliberately does not know clients, users, HTTP or storage, and it
// does not decide whether an approved amount is acceptable (that is risk).
package rar
