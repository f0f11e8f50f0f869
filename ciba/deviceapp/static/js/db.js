// IndexedDB: the enrolled device (its non-extractable key included) and
// the history of this device's decisions, which only this device keeps.

const NAME = "countersign";
const VERSION = 1;
let opened = null;

function open() {
  opened ??= new Promise((resolve, reject) => {
    const r = indexedDB.open(NAME, VERSION);
    r.onupgradeneeded = () => {
      r.result.createObjectStore("kv");
      r.result.createObjectStore("history", { keyPath: "id" });
    };
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
  return opened;
}

async function run(store, mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const t = db.transaction(store, mode);
    const req = fn(t.objectStore(store));
    t.oncomplete = () => resolve(req.result);
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
}

/** device is the enrolled device record, or undefined. */
export const device = () => run("kv", "readonly", (s) => s.get("device"));
/** saveDevice stores the device record (CryptoKey objects included). */
export const saveDevice = (d) => run("kv", "readwrite", (s) => s.put(d, "device"));
/** forget removes the device and its history. */
export async function forget() {
  await run("kv", "readwrite", (s) => s.delete("device"));
  await run("history", "readwrite", (s) => s.clear());
}
/** remember records one decision. */
export const remember = (entry) => run("history", "readwrite", (s) => s.put(entry));
/** history lists the decisions, newest first. */
export async function history() {
  const all = await run("history", "readonly", (s) => s.getAll());
  return all.sort((a, b) => (a.decided_at < b.decided_at ? 1 : -1));
}
