"use strict";
// Values crossing the JSON control channels keep their types: binary is {"$bin": base64}, a Date is
// {"$date": iso}, undefined is {"$undefined": true}, a function (an ack callback) is {"$fn": true}, NaN and
// ±Infinity are {"$number": "NaN"}.

function enc(v) {
  if (v === undefined) return { $undefined: true };
  if (v === null || typeof v !== "object") {
    if (typeof v === "function") return { $fn: true };
    if (typeof v === "number" && !Number.isFinite(v)) return { $number: String(v) };
    return v;
  }
  if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) {
    return { $bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") };
  }
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (v instanceof Date) return { $date: v.toISOString() };
  if (v instanceof Set) return [...v].map(enc);
  if (v instanceof Map) return Object.fromEntries([...v].map(([k, x]) => [k, enc(x)]));
  if (Array.isArray(v)) return v.map(enc);
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = enc(x);
  return out;
}

function dec(v) {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(dec);
  const keys = Object.keys(v);
  if (keys.length === 1) {
    if (keys[0] === "$bin") return Buffer.from(v.$bin, "base64");
    if (keys[0] === "$date") return new Date(v.$date);
    if (keys[0] === "$undefined") return undefined;
    if (keys[0] === "$number") return Number(v.$number);
  }
  const out = {};
  for (const [k, x] of Object.entries(v)) out[k] = dec(x);
  return out;
}

module.exports = { enc, dec };
