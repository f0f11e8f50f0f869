// RFC 8785 (JSON Canonicalization Scheme) for values that came from
// JSON.parse. The server hashes the same canonical form (ad_hash).

/**
 * canonicalize returns the RFC 8785 canonical JSON text of v.
 * @param {unknown} v
 * @returns {string}
 */
export function canonicalize(v) {
  if (v === null) return "null";
  switch (typeof v) {
    case "boolean":
      return v ? "true" : "false";
    case "number":
      // RFC 8785 §3.2.2.3: numbers are serialised as ECMAScript's
      // Number.prototype.toString does; -0 becomes 0; NaN and Infinity are errors.
      if (!Number.isFinite(v)) throw new TypeError("JCS: non-finite number");
      return Object.is(v, -0) ? "0" : String(v);
    case "string":
      // RFC 8785 §3.2.2.2: JSON.stringify's escaping is the canonical one.
      return JSON.stringify(v);
    case "object":
      if (Array.isArray(v)) return "[" + v.map(canonicalize).join(",") + "]";
      // RFC 8785 §3.2.3: members sorted by their names' UTF-16 code units,
      // which is what the default Array.prototype.sort compares.
      return "{" + Object.keys(v).filter((k) => v[k] !== undefined).sort()
        .map((k) => JSON.stringify(k) + ":" + canonicalize(v[k])).join(",") + "}";
  }
  throw new TypeError("JCS: cannot serialise a " + typeof v);
}
