import type { EventName, EventProps } from "./events.js";

export type { EventName, EventProps } from "./events.js";

export interface InitOptions {
  /** Ingest URL, ideally on the site's own domain (e.g. /t/v1/events) so blockers leave it alone. */
  endpoint: string;
  appVersion?: string;
  /** Defaults to an id kept in sessionStorage for the tab's session. */
  sessionId?: string;
  /** Whether analytics consent is already granted (default false: nothing is sent or queued). */
  consent?: boolean;
  /** Events per batch before sending at once (default 20). */
  batchSize?: number;
  /** Longest wait before queued events are sent, in ms (default 5000). */
  flushMs?: number;
  /** Events kept in localStorage across reloads when they cannot be sent (default 200). */
  maxStored?: number;
}

interface QueuedEvent {
  event_id: string;
  name: string;
  ts: string;
  props: object;
  conversation_id?: string;
}

/** Bytes per request: under the 64 KB budget browsers give sendBeacon and keepalive fetch. */
const BUDGET = 60000;
const KEY = "tlm_q";
const TYPE = "text/plain;charset=UTF-8";

let opts: Required<Omit<InitOptions, "appVersion" | "sessionId">> & InitOptions;
let queue: QueuedEvent[] = [];
let granted = false;
let userId: string | undefined;
let sessionId = "";
let timer: ReturnType<typeof setTimeout> | undefined;
let failures = 0;
let unloading = false;

const hex = (bytes: Uint8Array): string => Array.from(bytes, (b) => (b + 256).toString(16).slice(1)).join("");

/** A v4 UUID: crypto.randomUUID, else getRandomValues, else Math.random. */
export function uuid(): string {
  const c = globalThis.crypto;
  if (c && c.randomUUID) return c.randomUUID();
  const b = new Uint8Array(16);
  if (c && c.getRandomValues) c.getRandomValues(b);
  else for (let i = 0; i < 16; i++) b[i] = (Math.random() * 256) | 0;
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function store(): void {
  try {
    if (queue.length) localStorage.setItem(KEY, JSON.stringify(queue.slice(-opts.maxStored)));
    else localStorage.removeItem(KEY);
  } catch {
    /* storage full or blocked: the in-memory queue still holds the events */
  }
}

function stored(): QueuedEvent[] {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(saved) ? saved : [];
  } catch {
    return [];
  }
}

function body(events: QueuedEvent[]): string {
  return JSON.stringify({
    context: { session_id: sessionId, user_id: userId, app_version: opts.appVersion },
    events,
  });
}

/** Split events into request bodies that each stay under the beacon budget. */
export function split(events: QueuedEvent[], budget = BUDGET): string[] {
  const out: string[] = [];
  let part: QueuedEvent[] = [];
  for (const event of events) {
    if (part.length && body(part.concat(event)).length > budget) {
      out.push(body(part));
      part = [];
    }
    part.push(event);
  }
  if (part.length) out.push(body(part));
  return out;
}

function schedule(delay: number): void {
  clearTimeout(timer);
  timer = setTimeout(() => flush(), delay);
}

function retryLater(events: QueuedEvent[], retryAfter: string | null): void {
  queue = events.concat(queue).slice(-opts.maxStored);
  store();
  failures++;
  const seconds = Number(retryAfter);
  // Exponential backoff with full jitter; Retry-After, when given, is the floor.
  const delay = Math.max(seconds > 0 ? seconds * 1000 : 0, Math.random() * Math.min(60000, 1000 * 2 ** failures));
  schedule(delay);
}

function post(events: QueuedEvent[], data: string): void {
  fetch(opts.endpoint, { method: "POST", body: data, keepalive: true, headers: { "Content-Type": TYPE } })
    .then((response) => {
      if (response.status >= 500 || response.status === 429) retryLater(events, response.headers.get("Retry-After"));
      else failures = 0; // 2xx, or a 4xx that a retry cannot fix
    })
    .catch(() => retryLater(events, null));
}

/** Send every queued event now (beacons while the page is being hidden or unloaded). */
export function flush(): void {
  clearTimeout(timer);
  if (!granted || !opts || !queue.length) return;
  const events = queue;
  queue = [];
  let start = 0;
  for (const data of split(events)) {
    const count = (JSON.parse(data).events as QueuedEvent[]).length;
    const part = events.slice(start, (start += count));
    const beacon = unloading && navigator.sendBeacon && navigator.sendBeacon(opts.endpoint, data);
    if (!beacon) post(part, data);
  }
  store();
}

function onHide(): void {
  if (document.visibilityState === "hidden") {
    unloading = true;
    flush();
  } else unloading = false;
}

/** Start the client: restores events left unsent by an earlier page, listens for unload. */
export function init(options: InitOptions): void {
  opts = { consent: false, batchSize: 20, flushMs: 5000, maxStored: 200, ...options };
  granted = !!opts.consent;
  try {
    sessionId = opts.sessionId || sessionStorage.getItem("tlm_s") || uuid();
    sessionStorage.setItem("tlm_s", sessionId);
  } catch {
    sessionId = opts.sessionId || uuid();
  }
  if (granted) {
    queue = stored();
    if (queue.length) schedule(0);
  }
  addEventListener("visibilitychange", onHide);
  addEventListener("pagehide", () => {
    unloading = true;
    flush();
  });
}

/** Record an event of the registry; nothing happens before consent. */
export function track<K extends EventName>(name: K, props: EventProps[K], extra: { conversationId?: string } = {}): void {
  if (!granted || !opts) return;
  const event: QueuedEvent = { event_id: uuid(), name, ts: new Date().toISOString(), props };
  if (extra.conversationId) event.conversation_id = extra.conversationId;
  queue.push(event);
  if (queue.length > opts.maxStored * 5) queue.shift();
  // While the page is going away, send in this same unload.
  if (unloading || queue.length >= opts.batchSize) flush();
  else if (!timer) schedule(opts.flushMs);
}

/** The signed-in user (sent as user_id; the server stores only its pseudonym). */
export function identify(id: string | undefined): void {
  userId = id;
}

/** Grant or revoke consent; revoking drops everything queued or stored. */
export function setConsent(value: boolean): void {
  granted = value;
  if (!value) {
    queue = [];
    clearTimeout(timer);
  }
  store();
}

/** Start a performance measure; call the returned function to end it and emit ui.performance. */
export function mark(name: string): () => void {
  const start = `${name}:start`;
  performance.mark(start);
  return () => {
    const entry = performance.measure(name, start);
    track("ui.performance", { name, duration_ms: Math.round(entry.duration * 100) / 100 });
  };
}

/** Run fn (sync or async) and emit its duration as ui.performance. */
export function measure<T>(name: string, fn: () => T): T {
  const end = mark(name);
  const result = fn();
  if (result instanceof Promise) return result.finally(end) as T;
  end();
  return result;
}
