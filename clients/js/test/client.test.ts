import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it, mock } from "node:test";
import { setHidden, win } from "./setup";

type Client = typeof import("../src/index");
const ENDPOINT = "https://example.test/v1/events";
let loads = 0;

/** A fresh copy of the client module (module state is per page). */
async function fresh(): Promise<Client> {
  return import(new URL(`../src/index.mjs?page=${++loads}`, import.meta.url).href);
}

type Call = [string, { body: string; keepalive: boolean; headers: Record<string, string> }];
let calls: Call[] = [];
let answer: () => Promise<Response> = async () => new Response("{}", { status: 202 });
let beacons: [string, unknown][] = [];
let beaconResult = true;

const sentBodies = (): any[] => calls.map((c) => JSON.parse(c[1].body));
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};
async function advance(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    mock.timers.tick(Math.min(100, ms - t));
    await settle();
  }
}

beforeEach(() => {
  mock.timers.enable({ apis: ["setTimeout"] });
  win.localStorage.clear();
  win.sessionStorage.clear();
  calls = [];
  beacons = [];
  beaconResult = true;
  answer = async () => new Response("{}", { status: 202 });
  (globalThis as any).fetch = (url: string, init: Call[1]) => {
    calls.push([url, init]);
    return answer();
  };
  Object.defineProperty(win.navigator, "sendBeacon", {
    configurable: true,
    value: (url: string, data: unknown) => {
      beacons.push([url, data]);
      return beaconResult;
    },
  });
  setHidden(false);
});

afterEach(() => mock.timers.reset());

describe("consent", () => {
  it("sends and queues nothing before consent; revoking clears queue and storage", async () => {
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, batchSize: 1 });
    t.track("node.expand", { node_id: "n-1" });
    t.flush();
    assert.equal(calls.length, 0);
    assert.equal(win.localStorage.getItem("tlm_q"), null);
    t.setConsent(true);
    t.track("node.expand", { node_id: "n-2" });
    assert.equal(calls.length, 1);
    answer = async () => new Response("", { status: 503 });
    t.track("node.expand", { node_id: "n-3" });
    await settle();
    assert.match(win.localStorage.getItem("tlm_q") ?? "", /n-3/);
    t.setConsent(false);
    assert.equal(win.localStorage.getItem("tlm_q"), null);
    await advance(120000);
    assert.equal(calls.length, 2);
  });
});

describe("batching", () => {
  it("sends by count with the context, as text/plain with keepalive", async () => {
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, batchSize: 3, appVersion: "1.8.0", sessionId: "s-1" });
    t.identify("u-42");
    t.track("node.expand", { node_id: "n-1" });
    t.track("detail_panel.view", { node_id: "n-1", panel: "bias" }, { conversationId: "c-9" });
    assert.equal(calls.length, 0);
    t.track("node.collapse", { node_id: "n-1" });
    assert.equal(calls.length, 1);
    const [url, init] = calls[0];
    assert.equal(url, ENDPOINT);
    assert.equal(init.keepalive, true);
    assert.equal(init.headers["Content-Type"], "text/plain;charset=UTF-8");
    const sent = JSON.parse(init.body);
    assert.deepEqual(sent.context, { session_id: "s-1", user_id: "u-42", app_version: "1.8.0" });
    assert.deepEqual(sent.events.map((e: any) => e.name), ["node.expand", "detail_panel.view", "node.collapse"]);
    assert.equal(sent.events[1].conversation_id, "c-9");
    for (const e of sent.events) {
      assert.match(e.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(new Date(e.ts).toISOString(), e.ts);
    }
  });

  it("sends by time", async () => {
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, flushMs: 2000 });
    t.track("node.expand", { node_id: "n-1" });
    await advance(1900);
    assert.equal(calls.length, 0);
    await advance(200);
    assert.equal(calls.length, 1);
  });

  it("splits batches to stay under the beacon budget", async () => {
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true });
    const events = Array.from({ length: 300 }, (_, i) => ({
      event_id: `id-${i}`, name: "node.expand", ts: "2026-11-24T10:00:00.000Z", props: { node_id: "n".repeat(500) },
    }));
    const parts = t.split(events, 60000);
    assert.ok(parts.length > 2);
    for (const part of parts) assert.ok(part.length <= 60000);
    assert.deepEqual(parts.flatMap((p) => JSON.parse(p).events.map((e: any) => e.event_id)), events.map((e) => e.event_id));
  });
});

describe("unload", () => {
  it("beacons a string when the page is hidden; events tracked then leave at once", async () => {
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, batchSize: 100 });
    t.track("node.expand", { node_id: "n-1" });
    setHidden(true);
    assert.equal(beacons.length, 1);
    assert.equal(typeof beacons[0][1], "string");
    assert.equal(JSON.parse(beacons[0][1] as string).events[0].props.node_id, "n-1");
    t.track("node.collapse", { node_id: "n-1" }); // e.g. from a pagehide handler
    assert.equal(beacons.length, 2);
    assert.equal(calls.length, 0);
  });

  it("falls back to fetch keepalive when sendBeacon refuses", async () => {
    beaconResult = false;
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, batchSize: 100 });
    t.track("node.expand", { node_id: "n-1" });
    win.dispatchEvent(new win.Event("pagehide"));
    assert.ok(beacons.length >= 1);
    assert.equal(calls.length, 1);
    assert.equal(calls[0][1].keepalive, true);
  });
});

describe("retries and storage", () => {
  it("retries a 503 no sooner than Retry-After, keeping events in localStorage meanwhile", async () => {
    let first = true;
    answer = async () => {
      if (first) {
        first = false;
        return new Response("", { status: 503, headers: { "Retry-After": "7" } });
      }
      return new Response("{}", { status: 202 });
    };
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, batchSize: 1 });
    t.track("node.expand", { node_id: "n-1" });
    await settle();
    assert.equal(JSON.parse(win.localStorage.getItem("tlm_q")!)[0].props.node_id, "n-1");
    await advance(6900);
    assert.equal(calls.length, 1);
    await advance(1200);
    assert.equal(calls.length, 2);
    assert.equal(sentBodies()[1].events[0].event_id, sentBodies()[0].events[0].event_id);
    await settle();
    assert.equal(win.localStorage.getItem("tlm_q"), null);
  });

  it("retries network failures with growing backoff and does not retry a 4xx", async () => {
    answer = async () => { throw new TypeError("offline"); };
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, batchSize: 1 });
    t.track("node.expand", { node_id: "n-1" });
    await advance(200000);
    const attempts = calls.length;
    assert.ok(attempts > 2 && attempts < 40, `attempts ${attempts}`);
    answer = async () => new Response("{}", { status: 400 });
    await advance(120000);
    const after = calls.length;
    await advance(120000);
    assert.equal(calls.length, after);
  });

  it("events left unsent survive a reload and go out on the next page load", async () => {
    answer = async () => new Response("", { status: 503 });
    const first = await fresh();
    first.init({ endpoint: ENDPOINT, consent: true, batchSize: 1 });
    first.track("node.expand", { node_id: "n-1" });
    await settle();
    const id = sentBodies()[0].events[0].event_id;
    mock.timers.reset();
    mock.timers.enable({ apis: ["setTimeout"] });
    calls = [];
    answer = async () => new Response("{}", { status: 202 });
    const next = await fresh(); // the next page
    next.init({ endpoint: ENDPOINT, consent: true });
    await advance(100);
    assert.deepEqual(sentBodies()[0].events.map((e: any) => e.event_id), [id]);
  });

  it("bounds what it stores", async () => {
    answer = async () => new Response("", { status: 503 });
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, batchSize: 1000, maxStored: 10 });
    for (let i = 0; i < 50; i++) t.track("node.expand", { node_id: `n-${i}` });
    t.flush();
    await settle();
    const kept = JSON.parse(win.localStorage.getItem("tlm_q")!);
    assert.equal(kept.length, 10);
    assert.equal(kept[9].props.node_id, "n-49");
  });
});

describe("helpers", () => {
  it("makes v4 UUIDs without crypto.randomUUID", async () => {
    const t = await fresh();
    const real = globalThis.crypto;
    try {
      Object.defineProperty(globalThis, "crypto", { configurable: true, value: { getRandomValues: (b: Uint8Array) => b.fill(255) } });
      assert.equal(t.uuid(), "ffffffff-ffff-4fff-bfff-ffffffffffff");
      Object.defineProperty(globalThis, "crypto", { configurable: true, value: undefined });
      assert.match(t.uuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      Object.defineProperty(globalThis, "crypto", { configurable: true, value: real });
    }
  });

  it("measure and mark emit ui.performance", async () => {
    const t = await fresh();
    t.init({ endpoint: ENDPOINT, consent: true, batchSize: 2 });
    assert.equal(t.measure("map.render", () => 5), 5);
    t.mark("panel.open")();
    const sent = sentBodies()[0].events;
    assert.deepEqual(sent.map((e: any) => [e.name, e.props.name]), [["ui.performance", "map.render"], ["ui.performance", "panel.open"]]);
    assert.equal(typeof sent[0].props.duration_ms, "number");
    assert.equal(await t.measure("async.op", async () => 7), 7);
  });
});
